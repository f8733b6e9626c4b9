import Foundation
import RetortData
import RetortReports
import RetortSearch

/// `retort search` on a structured task (FORMATS.md §9): loads it, runs ``StructuredSearch`` with progress, writes the
/// run folder (report.json, frontier.md, candidates.csv, report.html, the recommended student's model/) and returns
/// it. Structured searches train every catalog candidate in order (the exhaustive strategy) in this process.
func runStructuredSearch(
    _ job: Job, json: Bool, style: (String) -> String, resuming: Bool, executor: ExecutorChoice,
    history: String?
) async throws -> URL {
    let log = progressLog(json: json)
    let started = Date()
    log("retort: job \(job.name)")
    log("[load] reading rows")
    if resuming {
        throw DataError(
            .usage,
            "--resume continues label searches; a structured search starts again (it keeps no journal of trials)")
    }
    if case .local = executor {
    } else {
        throw DataError(.usage, "structured tasks train in this process; drop --executor")
    }
    let strategy = try SearchSettings.strategy(of: job)
    if job.strategyChosen && strategy != .exhaustive {
        throw DataError(
            .usage,
            "structured tasks are searched exhaustively (every candidate of the catalog's structured: section); drop "
                + "--strategy \(strategy.rawValue)")
    }
    let task = try StructuredTaskData.load(job)
    let invalid = task.splits.map { "\($0.invalidTeacherRows)" }.joined(separator: "/")
    log(
        "[load] structured task \(task.name): \(task.train.count)/\(task.validation.count)/\(task.test.count) rows, "
            + "\(task.schema.keys.count) keys (schema \(task.schemaIsGiven ? "from task.json" : "inferred from train")), "
            + "invalid teacher answers \(invalid)")
    let settings = try SearchSettings(job: job, strategy: .exhaustive, workers: 1)
    let metric = try SearchEngine.primaryMetric(
        kind: task.answerKind, hasGold: task.validation.hasGold && task.test.hasGold, settings: settings)
    let run = try RunDirectory.create(
        root: job.out ?? URL(fileURLWithPath: "results").appendingPathComponent(job.name), date: started)
    let journal = try run.openJournal()
    let progress = ProgressPrinter(metric: metric.rawValue, say: log, live: !json)
    let result: StructuredOutcome
    do {
        result = try StructuredSearch.run(task: task, settings: settings) { event in
            // Phases go to the journal too, for `retort ui`'s live view of the run.
            if case .phase(let name) = event {
                var record = JournalRecord(type: "phase")
                record.phase = name
                record.time = Date().timeIntervalSince1970
                try? journal.append(record, sync: false)
            }
            progress.handle(event)
        }
    } catch {
        progress.finishLine()
        try? FileManager.default.removeItem(at: run.partial)
        throw error
    }
    progress.finishLine()
    let report = RunReport(job: job.name, runId: run.runId, createdAt: started, outcome: result.outcome)
    let recommended = result.recommended
    let candidate = result.outcome.recommendation.candidate
    let final = try run.finish(
        report: report, outcome: result.outcome,
        exportModel: recommended.map { student in { folder in try student.write(to: folder, candidate: candidate) } })
    try printRun(report, at: final, json: json, style: style, log: log)
    recordStructuredRun(final, job: job, runId: run.runId, task: task, report: report, history: history, log: log)
    return final
}

import Foundation
import RetortData
import RetortHistory
import RetortReports
import RetortSearch

/// `retort search` on a structured task (FORMATS.md §9): loads it, runs ``StructuredSearch`` with progress, writes the
/// run folder (report.json, frontier.md, candidates.csv, report.html, the recommended student's model/) and returns
/// it. Structured searches train on the executor (`--workers` runs side by side, in this process, as `retort trial run`
/// processes or on Ray), exhaustively, by halving or by the learned strategy; an interrupted one continues with
/// `--resume RUN_DIR` (its journal and checkpoints).
func runStructuredSearch(
    _ job: Job, json: Bool, style: (String) -> String, resume: (RunDirectory, [JournalRecord])?,
    catalogPath: String?, executor: ExecutorChoice, workers: Int?, history: String?
) async throws -> URL {
    let log = progressLog(json: json)
    let started = Date()
    log("retort: job \(job.name)")
    log("[load] reading rows")
    let strategy = try SearchSettings.strategy(of: job)
    if strategy == .learned && history == nil {
        throw DataError(.usage, "--strategy learned learns from the history; drop --no-history")
    }
    let task = try StructuredTaskData.load(job)
    let invalid = task.splits.map { "\($0.invalidTeacherRows)" }.joined(separator: "/")
    log(
        "[load] structured task \(task.name): \(task.train.count)/\(task.validation.count)/\(task.test.count) rows, "
            + "\(task.schema.keys.count) keys (schema \(task.schemaIsGiven ? "from task.json" : "inferred from train")), "
            + "invalid teacher answers \(invalid)")
    // History: the task's meta-features; the learned strategy when chosen, or (as for labels) when nothing was chosen
    // and the history holds three or more structured tasks scored by the same metric.
    // Training runs go in waves of `--workers` (default: one per core), each timed alone afterwards.
    let workerCount = max(1, workers ?? ProcessInfo.processInfo.activeProcessorCount)
    var settings = try SearchSettings(job: job, strategy: strategy, workers: workerCount)
    var meta: MetaFeatures?
    if let history {
        meta = MetaFeatures(structured: task, seed: job.seed)
        var informed = settings
        if let meta, try informed.learn(fromHistoryAt: history, structured: task, meta: meta) > 0,
            strategy == .learned || (!job.strategyChosen && (informed.historyTasks ?? 0) >= 3 && resume == nil)
        {
            settings = informed
            settings.strategy = .learned
            log(
                "[history] learned strategy: predictions for \(settings.predictions.count) candidates from "
                    + "\(settings.historyTasks ?? 0) past structured task(s)")
        } else if strategy == .learned {
            log("[history] no past structured task to learn from: every candidate trains (exhaustive)")
        }
    }
    let chosen = settings.strategy
    let metric = try SearchEngine.primaryMetric(
        kind: task.answerKind, hasGold: task.validation.hasGold && task.test.hasGold, settings: settings)
    let run =
        try resume?.0
        ?? RunDirectory.create(
            root: job.out ?? URL(fileURLWithPath: "results").appendingPathComponent(job.name), date: started)
    if resume != nil { log("[resume] continuing \(displayPath(run.partial))") }
    let journal = try run.openJournal()
    // Training runs go to the executor (threads here, `retort trial run` processes, or Ray tasks that get the slm base
    // models once); BLAS threads are set for the workers either way.
    let models = Set(settings.catalog.structured.filter { $0.family == .slm && !$0.isMissingBaseModel }.map(\.model))
    try await configureExecutor(
        executor, settings: &settings, job: job, files: models.sorted(), workers: workers, workerCount: workerCount,
        removeOnFailure: resume == nil ? run.partial : nil, log: log)
    defer { closeExecutor(settings.executor) }
    let source =
        job.file.map(displayPath)
        ?? { if case .task(let folder) = job.data { displayPath(folder) } else { job.name } }()
    let storage = RunStorage(
        journal: journal, checkpoints: run.checkpoints, resume: resume?.1, jobName: job.name, source: source,
        options: job.journalOptions(strategy: chosen, catalogPath: catalogPath))
    let progress = ProgressPrinter(metric: metric.rawValue, say: log, live: !json)
    let result: StructuredOutcome
    do {
        result = try StructuredSearch.run(task: task, settings: settings, storage: storage) { event in
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
        // Nothing decided: leave no folder behind. Otherwise the journal and checkpoints let --resume continue.
        let records = (try? JournalRecord.read(journal.url)) ?? []
        if resume == nil && !records.contains(where: { $0.type == "rung" }) {
            try? FileManager.default.removeItem(at: run.partial)
        }
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
    recordStructuredRun(
        final, job: job, runId: run.runId, task: task, report: report, history: history, meta: meta, log: log)
    return final
}

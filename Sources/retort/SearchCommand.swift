import ArgumentParser
import Foundation
import RetortData
import RetortEvals
import RetortNumerics
import RetortReports
import RetortSearch

/// Options shared by `search` and `demo`.
struct SearchOptions: ParsableArguments {
    @Option(help: "Results folder; the run lands in OUT/RUN-ID/ (default: the job's out:, else results/JOB).")
    var out: String?
    @Option(help: "Wall-clock budget: 120, 120s or 2m (default 600 s).")
    var budget: String?
    @Option(help: "Seed for every random choice.")
    var seed: UInt64?
    @Option(name: .customLong("max-size"), help: "Largest model: bytes, 500KB, 2MB.")
    var maxSize: String?
    @Option(name: .customLong("max-latency-ms"), help: "Largest p50 latency in ms.")
    var maxLatencyMs: Double?
    @Option(
        name: .customLong("max-drop"), help: "Allowed drop against the teacher on the primary metric (0.01 = 1 pt).")
    var maxDrop: Double?
    @Option(help: "Primary metric: accuracy, agreement or macro_f1.")
    var metric: String?
    @Option(help: "Search strategy (v0: exhaustive).")
    var strategy: String?

    /// Applies the flags over `job` (flags win).
    func apply(to job: inout Job) throws(DataError) {
        if let budget {
            guard let seconds = DurationText.parse(budget), seconds > 0 else {
                throw DataError(.usage, "--budget \"\(budget)\" is not a duration; write 120, 120s or 2m")
            }
            job.budgetSeconds = seconds
        }
        if let seed { job.seed = seed }
        if let maxSize {
            guard let bytes = ByteSize.parse(maxSize) else {
                throw DataError(.usage, "--max-size \"\(maxSize)\" is not a size; write bytes or 500KB, 2MB")
            }
            job.maxModelBytes = bytes
        }
        if let maxLatencyMs {
            guard maxLatencyMs > 0, maxLatencyMs.isFinite else {
                throw DataError(.usage, "--max-latency-ms must be positive")
            }
            job.maxLatencyMs = maxLatencyMs
        }
        if let maxDrop {
            guard (0...1).contains(maxDrop) else { throw DataError(.usage, "--max-drop must lie in [0, 1], e.g. 0.01") }
            job.maxDrop = maxDrop
        }
        if let metric { job.metric = metric }
        if let strategy { job.strategy = strategy }
        if let out { job.out = URL(fileURLWithPath: out) }
    }
}

struct Search: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Search students for a teacher and recommend one, or no distillation.",
        discussion: """
            Give a job file (FORMATS.md §3) or --task DIR (a folder with train/validation/test.jsonl and task.json).
            Writes results/JOB/RUN-ID/ with report.json, frontier.md, candidates.csv and model/.
            """)

    @Argument(help: "A job file (YAML or JSON).")
    var job: String?
    @Option(help: "A task folder, instead of a job file.")
    var task: String?
    @OptionGroup var options: SearchOptions

    func validate() throws {
        guard (job == nil) != (task == nil) else {
            throw ValidationError("give a job file or --task DIR (one of them)")
        }
    }

    func run() async throws {
        try await ErrorReporting.run {
            var loaded: Job
            if let job {
                loaded = try Job.load(URL(fileURLWithPath: job))
            } else {
                loaded = Job(task: URL(fileURLWithPath: task ?? "."))
            }
            try options.apply(to: &loaded)
            _ = try runSearch(loaded)
        }
    }
}

/// Loads the data, runs the search with progress lines, writes the run folder; returns it.
func runSearch(_ job: Job) throws -> URL {
    guard job.strategy == "exhaustive" else {
        throw DataError(.usage, "unknown strategy \"\(job.strategy)\"; this version has: exhaustive")
    }
    let started = Date()
    say("retort: job \(job.name)")
    say("[load] reading rows")
    let task = try TaskData.load(job)
    say(
        "[load] \(task.kind.rawValue) task \(task.name): \(task.train.count)/\(task.validation.count)/\(task.test.count) rows, \(task.vocabulary.count) labels"
    )
    let catalog = try job.candidates.map { (value) throws(DataError) in try CandidateCatalog(value) } ?? .standard()
    let suite = try job.evals.map { (value) throws(DataError) in try EvalSuite(value) } ?? .standard
    let settings = SearchSettings(
        catalog: catalog, suite: suite, metric: job.metric,
        constraints: Constraints(
            maxModelBytes: job.maxModelBytes, maxLatencyMs: job.maxLatencyMs, maxDrop: job.maxDrop),
        budgetSeconds: job.budgetSeconds, seed: job.seed, usdPerVCPUHour: job.usdPerVCPUHour)
    let metric = try SearchEngine.primaryMetric(task: task, settings: settings).rawValue
    let root = job.out ?? URL(fileURLWithPath: "results").appendingPathComponent(job.name)
    let run = try RunDirectory.create(root: root, date: started)
    let journal: Journal
    do { journal = try Journal(url: run.partial.appendingPathComponent("journal.jsonl")) } catch {
        throw DataError(.cannotCreateOutput, "cannot create journal.jsonl", file: run.partial.relativePath)
    }
    // Trials train on small batches, where a second OpenBLAS thread only spins (measured on letter: 1 thread
    // 18.1 s wall / 0.2 s sys, 2 threads 19.3 s wall / 14.0 s sys). RETORT_BLAS_THREADS overrides.
    BLASThreads.set(ProcessInfo.processInfo.environment["RETORT_BLAS_THREADS"].flatMap(Int.init) ?? 1)
    let outcome: SearchOutcome
    do {
        outcome = try runEngine(task: task, settings: settings, metric: metric, journal: journal)
    } catch {
        // Nothing finished: leave no folder behind. Otherwise the journal of what did finish stays in RUN.partial.
        let journalText = (try? String(contentsOf: journal.url, encoding: .utf8)) ?? ""
        if journalText.isEmpty { try? FileManager.default.removeItem(at: run.partial) }
        throw error
    }
    let report = RunReport(job: job.name, runId: run.runId, createdAt: started, outcome: outcome)
    let final = try run.finish(report: report, outcome: outcome)
    say("")
    say(FrontierTable.markdown(report))
    say("run: \(displayPath(final))")
    return final
}

/// Runs the engine, printing a line per phase and per finished candidate.
func runEngine(task: TaskData, settings: SearchSettings, metric: String, journal: Journal) throws -> SearchOutcome {
    try SearchEngine.run(task: task, settings: settings, journal: journal) { event in
        switch event {
        case .phase(let name):
            say("[phase] \(name)")
        case .trial(let trial, let index, let total):
            let value = trial.metrics[metric].map { String(format: "%@ %.4f", metric, $0.value) } ?? ""
            let latency = trial.latencyMsP50.map { String(format: "p50 %.4f ms", $0) } ?? ""
            let details = [
                trial.status.rawValue, value, latency, trial.status == .skipped ? "" : ByteSize.format(trial.sizeBytes),
                trial.trainSeconds.map { String(format: "trained %.1f s (%d epochs)", $0, trial.epochsRun ?? 0) } ?? "",
                trial.reason ?? "",
            ].filter { !$0.isEmpty }.joined(separator: ", ")
            say("[\(index)/\(total)] \(trial.id): \(details)")
        }
    }
}

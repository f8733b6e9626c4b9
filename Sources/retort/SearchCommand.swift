import ArgumentParser
import Foundation
import RetortData
import RetortEvals
import RetortHistory
import RetortNumerics
import RetortReports
import RetortSearch

/// Where a job comes from: a job file or a task folder (shared by `search` and `candidates`).
struct JobInput: ParsableArguments {
    @Argument(help: "A job file (YAML or JSON).")
    var job: String?
    @Option(help: "A task folder, instead of a job file.")
    var task: String?

    func validate() throws {
        guard job == nil || task == nil else { throw ValidationError("give a job file or --task DIR, not both") }
    }

    /// The job, or nil when neither a job file nor a task folder was given.
    func load() throws -> Job? {
        if let job { return try Job.load(URL(fileURLWithPath: job)) }
        if let task { return Job(task: URL(fileURLWithPath: task)) }
        return nil
    }
}

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
    @Option(
        help:
            "Recommend a student only when the probability that its true drop is within --max-drop reaches this, adjusted for picking among many (default 0.9)."
    )
    var confidence: Double?
    @OptionGroup var trafficOptions: TrafficOptions
    @Option(help: "Primary metric: accuracy, agreement or macro_f1.")
    var metric: String?
    @Option(help: "Search strategy: exhaustive or halving.")
    var strategy: String?
    @Option(help: "Trials trained at once (default: the number of cores).")
    var workers: Int?
    @Option(help: "A candidate catalog (YAML), instead of the job's or the built-in one.")
    var candidates: String?
    @Option(help: "A device profile: phone, edge-cpu, server-vcpu, or a devices/*.yaml file.")
    var device: String?
    @Option(
        name: .customLong("confidence-z"),
        help:
            "Learned strategy: rule a candidate out when its prediction + z standard deviations cannot change the recommendation (default 2; smaller stops earlier)."
    )
    var confidenceZ: Double?
    @Option(
        help:
            "A Hugging Face BERT-family folder (config.json, model.safetensors, vocab.txt) for encoder-head candidates that name no encoder (default: .build-models/all-MiniLM-L6-v2)."
    )
    var encoder: String?

    /// Range checks of the numeric flags. They run in ``apply(to:)`` rather than `validate()`, so that a bad value is
    /// one `error: --flag ...` line (exit 64) like the other flag errors of `search`, `demo` and `suggest`.
    func checkRanges() throws(DataError) {
        do {
            try OptionChecks.duration(budget, "--budget")
            try OptionChecks.size(maxSize, "--max-size")
            try OptionChecks.number(maxLatencyMs, "--max-latency-ms", in: .positive(upTo: 86_400_000), unit: "ms")
            try OptionChecks.number(maxDrop, "--max-drop", in: NumberRange(0, 1))
            try OptionChecks.number(confidence, "--confidence", in: NumberRange(0.5, 0.999))
            try OptionChecks.integer(workers, "--workers", in: 1...1024)
            try OptionChecks.number(confidenceZ, "--confidence-z", in: NumberRange(0, 100))
        } catch {
            throw DataError(.usage, "\(error)")
        }
    }

    /// Applies the flags over `job` (flags win).
    func apply(to job: inout Job) throws(DataError) {
        try checkRanges()
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
        if let confidence { job.confidence = confidence }
        if let traffic = try trafficOptions.resolve() {
            job.trafficPerMonth = traffic.perMonth
            job.trafficSource = traffic.source
        }
        if let metric { job.metric = metric }
        if let strategy {
            job.strategy = strategy
            job.strategyChosen = true
        }
        if let workers, workers < 1 { throw DataError(.usage, "--workers must be at least 1") }
        if let candidates { job.candidates = try YAMLValue.load(URL(fileURLWithPath: candidates)) }
        if let device {
            let profile = try DeviceProfile.named(device)
            job.device = profile
            job.maxModelBytes = min(job.maxModelBytes ?? profile.memoryBytes, profile.memoryBytes)
        }
        if let out { job.out = URL(fileURLWithPath: out) }
        if let confidenceZ {
            guard confidenceZ >= 0, confidenceZ.isFinite else {
                throw DataError(.usage, "--confidence-z must be a number ≥ 0, e.g. 2")
            }
            job.confidenceZ = confidenceZ
        }
        if let encoder {
            guard
                FileManager.default.fileExists(
                    atPath: URL(fileURLWithPath: encoder).appendingPathComponent("config.json").path)
            else {
                throw DataError(
                    .usage, "--encoder \"\(encoder)\" has no config.json; give a Hugging Face BERT model folder")
            }
            job.encoderPath = encoder
        }
    }
}

struct Search: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Search students for a teacher and recommend one, or no distillation.",
        discussion: """
            Give a job file (FORMATS.md §3) or --task DIR (a folder with train/validation/test.jsonl and task.json).
            Writes results/JOB/RUN-ID/ with report.json, frontier.md, candidates.csv, journal.jsonl and model/.
            An interrupted run (RUN-ID.partial) continues with --resume RUN_DIR (the job is taken from its journal
            when none is given).
            """)

    @OptionGroup var input: JobInput
    @Option(help: "Continue the interrupted run in this folder (results/JOB/RUN-ID.partial).")
    var resume: String?
    @OptionGroup var options: SearchOptions
    @OptionGroup var history: HistoryOptions
    @OptionGroup var output: OutputOptions
    @Option(
        help:
            "Where trials train: local (in this process, the default), process (each rung of each training run as its own `retort trial run` process) or ray (each such trial a task on the Ray cluster at --ray-address)."
    )
    var executor: String = "local"
    @Option(
        name: .customLong("trial-bin"),
        help: "The retort executable that runs trials for --executor process (default: this one).")
    var trialBin: String?
    @OptionGroup var ray: RayOptions

    func validate() throws {
        guard input.job != nil || input.task != nil || resume != nil else {
            throw ValidationError("give a job file or --task DIR (or --resume RUN_DIR)")
        }
        guard ["local", "process", "ray"].contains(executor) else {
            throw ValidationError("unknown executor \"\(executor)\"; choose local, process or ray")
        }
        guard trialBin == nil || executor == "process" else {
            throw ValidationError("--trial-bin needs --executor process")
        }
        guard !ray.given || executor == "ray" else {
            throw ValidationError("the --ray-* options need --executor ray")
        }
    }

    func run() async throws {
        try await ErrorReporting.run {
            var resumeRun: RunDirectory?
            var records: [JournalRecord]?
            if let resume {
                let run = try RunDirectory.resuming(URL(fileURLWithPath: resume))
                records = try JournalRecord.read(run.partial.appendingPathComponent("journal.jsonl"))
                resumeRun = run
            }
            var loaded = try input.load() ?? Job.resumed(from: records?.first)
            try options.apply(to: &loaded)
            _ = try await runSearch(
                loaded, workers: options.workers, resume: resumeRun.map { ($0, records ?? []) },
                catalogPath: options.candidates ?? records?.first?.options?["candidates"], json: output.json,
                style: output.styled, history: try history.open(),
                executor: executor == "process" ? .process(binary: trialBin) : executor == "ray" ? .ray(ray) : .local)
        }
    }
}

/// Where a search's trials train.
enum ExecutorChoice {
    /// In this process.
    case local
    /// Each rung as a `retort trial run` process of `binary` (nil: this executable).
    case process(binary: String?)
    /// Each rung as a task on a Ray cluster.
    case ray(RayOptions)
}

/// Loads the data, runs the search with progress, writes the run folder; returns it.
func runSearch(
    _ job: Job, workers: Int? = nil, resume: (RunDirectory, [JournalRecord])? = nil, catalogPath: String? = nil,
    json: Bool = false, style: (String) -> String = { $0 }, history historyPath: String? = nil,
    executor: ExecutorChoice = .local
) async throws -> URL {
    if TaskFile.declaresStructured(job) {
        return try await runStructuredSearch(
            job, json: json, style: style, resume: resume, catalogPath: catalogPath, executor: executor,
            workers: workers, history: historyPath)
    }
    // With --json, stdout carries only the report; progress goes to stderr.
    let log = progressLog(json: json)
    let strategy = try SearchSettings.strategy(of: job)
    let started = Date()
    log("retort: job \(job.name)")
    log("[load] reading rows")
    let task = try TaskData.load(job)
    log(
        "[load] \(task.kind.rawValue) task \(task.name): \(task.train.count)/\(task.validation.count)/\(task.test.count) rows, \(task.vocabulary.count) labels"
    )
    let workerCount = max(1, workers ?? ProcessInfo.processInfo.activeProcessorCount)
    var settings = try SearchSettings(job: job, strategy: strategy, workers: workerCount)
    let metricName = try SearchEngine.primaryMetric(task: task, settings: settings).rawValue
    // History: the task's meta-features, and (learned strategy) a prediction for every candidate before training.
    var meta: MetaFeatures?
    if let historyPath {
        meta = try MetaFeatures(task: task, seed: job.seed)
        if let warning = meta?.teacherWarning { log("[teacher] warning: \(warning)") }
        if let meta,
            try settings.learn(
                fromHistoryAt: historyPath, task: task, meta: meta, strategyChosen: job.strategyChosen,
                resuming: resume != nil)
        {
            log(
                "[history] learned strategy: predictions for \(settings.predictions.count) candidates from \(settings.historyTasks ?? 0) past \(task.kind.rawValue) task(s)"
            )
        }
    } else if strategy == .learned {
        throw DataError(.usage, "--strategy learned learns from the history; drop --no-history")
    }
    let run =
        try resume?.0
        ?? RunDirectory.create(
            root: job.out ?? URL(fileURLWithPath: "results").appendingPathComponent(job.name), date: started)
    if resume != nil { log("[resume] continuing \(displayPath(run.partial))") }
    let journal = try run.openJournal()
    // A Ray cluster gets the encoder folders of the encoder-head candidates once, through its object store.
    let encoders = settings.catalog.candidates(for: task).filter {
        $0.encoder.map { FileManager.default.fileExists(atPath: $0.path) } ?? false
    }
    try await configureExecutor(
        executor, settings: &settings, job: job, encoders: encoders, workers: workers, workerCount: workerCount,
        removeOnFailure: resume == nil ? run.partial : nil, log: log)
    defer { closeExecutor(settings.executor) }
    let source =
        job.file.map(displayPath)
        ?? { if case .task(let folder) = job.data { displayPath(folder) } else { job.name } }()
    let storage = RunStorage(
        journal: journal, checkpoints: run.checkpoints, resume: resume?.1, jobName: job.name, source: source,
        options: job.journalOptions(strategy: settings.strategy, catalogPath: catalogPath))
    let progress = ProgressPrinter(metric: metricName, say: log, live: !json)
    let outcome: SearchOutcome
    do {
        outcome = try await SearchEngine.run(task: task, settings: settings, storage: storage) { progress.handle($0) }
    } catch {
        progress.finishLine()
        // Nothing finished: leave no folder behind. Otherwise the journal lets --resume continue.
        let records = (try? JournalRecord.read(journal.url)) ?? []
        if resume == nil && records.count <= 1 { try? FileManager.default.removeItem(at: run.partial) }
        throw error
    }
    progress.finishLine()
    let report = RunReport(job: job.name, runId: run.runId, createdAt: started, outcome: outcome)
    let final = try run.finish(report: report, outcome: outcome)
    try printRun(report, at: final, json: json, style: style, log: log)
    if let historyPath {
        // The run folder is complete either way: a history that cannot take the run is a warning, not a failure.
        do {
            let history = try HistoryStore(path: historyPath)
            let tasks = try history.record(
                finished: final, job: job.name, runId: run.runId, task: task,
                meta: try meta ?? MetaFeatures(task: task, seed: job.seed), report: report)
            log(
                "history: recorded in \(displayPath(URL(fileURLWithPath: history.path))) (\(tasks) \(task.kind.rawValue) task(s) so far)"
            )
        } catch {
            ErrorReporting.printError("warning: the run is complete but was not recorded in the history: \(error)")
        }
    }
    return final
}

/// Prints a finished run: report.json on stdout with `json`, else the frontier table; then the run folder.
func printRun(
    _ report: RunReport, at folder: URL, json: Bool, style: (String) -> String, log: (String) -> Void
) throws {
    if json {
        say(String(decoding: try report.encoded(), as: UTF8.self))
    } else {
        log("")
        log(style(FrontierTable.markdown(report)))
    }
    log("run: \(displayPath(folder))")
}

/// Sets and returns the BLAS threads for `workers` trainings side by side: workers × BLAS threads ≤ cores.
/// Trials train on small batches, where extra OpenBLAS threads only spin (letter, one worker: 1 thread 18.1 s wall /
/// 0.2 s system, 2 threads 19.3 s / 14.0 s). RETORT_BLAS_THREADS overrides.
@discardableResult
func setBLASThreads(workers: Int) -> Int {
    let threads =
        ProcessInfo.processInfo.environment["RETORT_BLAS_THREADS"].flatMap(Int.init)
        ?? max(1, ProcessInfo.processInfo.activeProcessorCount / workers)
    BLASThreads.set(threads)
    return threads
}

/// Sets the BLAS threads (``setBLASThreads(workers:)``) and, for `--executor process` or `ray`, the executor of
/// `settings` (a Ray cluster also sets the worker count when `--workers` was not given). `encoders` (encoder-head
/// candidates) and `files` (base-model files) are what a Ray cluster's workers get a copy of. A Ray connection that
/// fails removes `removeOnFailure` (a new run's empty folder).
func configureExecutor(
    _ executor: ExecutorChoice, settings: inout SearchSettings, job: Job, encoders: [Candidate] = [],
    files: [String] = [], workers: Int?, workerCount: Int, removeOnFailure: URL?,
    log: @escaping @Sendable (String) -> Void
) async throws {
    let blasThreads = setBLASThreads(workers: workerCount)
    switch executor {
    case .local:
        return
    case .process(let binary):
        let path = binary ?? Bundle.main.executablePath ?? CommandLine.arguments[0]
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw DataError(.usage, "--trial-bin \"\(path)\" is not an executable retort binary")
        }
        // Specs, input states and results of running trials; each trial's folder goes when it has been read back.
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
            "retort-trials-\(UUID().uuidString)", isDirectory: true)
        settings.executor = ProcessTrialExecutor(
            binary: URL(fileURLWithPath: path).standardizedFileURL, data: job.data, directory: folder,
            blasThreads: blasThreads)
        log("[executor] every rung runs as \(displayPath(URL(fileURLWithPath: path))) trial run")
    case .ray(let rayOptions):
        let options = try rayOptions.resolve(cpusPerTrial: 1)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
            "retort-ray-\(UUID().uuidString)", isDirectory: true)
        log("[executor] connecting to the Ray cluster at \(options.address)")
        let ray: RayTrialExecutor
        do {
            ray = try await RayTrialExecutor(
                options: options, data: job.data, directory: folder, encoderCandidates: encoders, files: files,
                log: log)
        } catch {
            try? FileManager.default.removeItem(at: folder)
            if let removeOnFailure { try? FileManager.default.removeItem(at: removeOnFailure) }
            throw error
        }
        settings.executor = ray
        if workers == nil { settings.workers = max(1, ray.cluster.cpus / options.cpusPerTrial) }
        log(
            "[executor] Ray \(ray.cluster.rayVersion) at \(options.address): \(ray.cluster.nodes) node(s), \(ray.cluster.cpus) CPU(s); \(settings.workers) trial(s) at once, each `\(options.retortBinary) trial run` on a worker; latency is measured here after training"
        )
    }
}

/// Removes a process or Ray executor's scratch folder (and closes the Ray bridge) once the search is over.
func closeExecutor(_ executor: any TrialExecutor) {
    if let process = executor as? ProcessTrialExecutor {
        try? FileManager.default.removeItem(at: process.directory)
    }
    if let ray = executor as? RayTrialExecutor {
        ray.close()
        try? FileManager.default.removeItem(at: ray.directory)
    }
}

import Foundation
import RetortData
import RetortEvals
import RetortNumerics
import RetortStudents

/// Runs one training group's rung for the scheduler: train the group to the rung's epochs (from its session or
/// checkpoint), then evaluate every alive member on validation. The scheduler decides what runs and keeps the books
/// (journal, halving, checkpoints); an executor decides only where the work happens.
public protocol TrialExecutor: Sendable {
    /// Runs `work` on `task` and returns its journal records and trained session.
    func run(_ work: RungWork, task: TaskData) async throws -> RungOutput
    /// Where the trials ran, for the report (nil: in this process).
    var summary: ExecutorSummary? { get }
    /// Trains the training runs of a structured search side by side at `fidelity` (blocking until all are done) and
    /// returns each with its members' students and validation answers. A run that fails to train comes back with its
    /// error; a trial the executor could not run at all (a process that crashed, a trial lost on the cluster) throws.
    func trainStructured(
        _ runs: [[StructuredCandidate]], fidelity: Double, task: StructuredTaskData, seed: UInt64
    ) throws -> [StructuredRunOutput]
}

extension TrialExecutor {
    /// In this process: nothing to report.
    public var summary: ExecutorSummary? { nil }

    /// In this process (``StructuredSearch/trainHere(_:fidelity:task:seed:)``).
    public func trainStructured(
        _ runs: [[StructuredCandidate]], fidelity: Double, task: StructuredTaskData, seed: UInt64
    ) throws -> [StructuredRunOutput] {
        StructuredSearch.trainHere(runs, fidelity: fidelity, task: task, seed: seed)
    }
}

/// The default executor: the rung trains in this process, on the scheduler's worker tasks.
public struct LocalTrialExecutor: TrialExecutor {
    /// The in-process executor.
    public init() {}

    /// Trains and evaluates `work` here (``SearchEngine/runRung(_:task:)``).
    public func run(_ work: RungWork, task: TaskData) async throws -> RungOutput {
        try SearchEngine.runRung(work, task: task)
    }
}

/// Everything one rung of one training group needs to run in another process (`retort trial run --spec FILE`):
/// where the rows are, the group's candidates, the rung's target, the seed and eval settings, and the state to start
/// from. Features, the group's architecture and seed are rebuilt from these deterministically.
public struct TrialSpec: Codable, Sendable, Equatable {
    /// Format version (1).
    public var version: Int
    /// A task folder (absolute path), or nil when `files` is given.
    public var task: String?
    /// train, validation and test JSONL files (absolute paths), when the rows are not in a task folder.
    public var files: [String]?
    /// The training group's key (its candidates' shared training run).
    public var group: String
    /// The group's alive members, with their full configuration.
    public var candidates: [Candidate]
    /// The rung (0-based), recorded in the journal records.
    public var rung: Int
    /// Train until this many epochs have run.
    public var targetEpochs: Int
    /// The search seed (the group's seed and the evaluator's resamples derive from it).
    public var seed: UInt64
    /// The primary metric.
    public var metric: String
    /// The metrics each record reports.
    public var reported: [String]
    /// Bootstrap resamples of the validation evaluator.
    public var resamples: Int
    /// Seconds of budget left when the trial was handed out; training stops at the next epoch boundary after it.
    public var secondsLeft: Double
    /// BLAS threads for the trial (nil: leave OpenBLAS's default).
    public var blasThreads: Int?
    /// The safetensors checkpoint to continue from (nil: start from the group's seed).
    public var checkpoint: String?
    /// Other candidates of the search whose encoder vectors a worker that keeps features between trials
    /// (`retort trial serve`) builds in the same encoder pass as this trial's (every depth at once, as the in-process
    /// search does); they are not trained. Nil: only this trial's.
    public var featureCandidates: [Candidate]?
    /// Where this trial finds the encoder folders its candidates name, when not at those paths (a Ray worker's
    /// copies); nil: at the named paths.
    public var paths: [String: String]?

    /// A spec with every field given.
    public init(
        task: String?, files: [String]?, group: String, candidates: [Candidate], rung: Int, targetEpochs: Int,
        seed: UInt64, metric: String, reported: [String], resamples: Int, secondsLeft: Double, blasThreads: Int?,
        checkpoint: String?
    ) {
        self.version = 1
        self.task = task
        self.files = files
        self.group = group
        self.candidates = candidates
        self.rung = rung
        self.targetEpochs = targetEpochs
        self.seed = seed
        self.metric = metric
        self.reported = reported
        self.resamples = resamples
        self.secondsLeft = secondsLeft
        self.blasThreads = blasThreads
        self.checkpoint = checkpoint
    }

    /// The spec of `work` on the rows of `data`, continuing from `checkpoint` (when there is state to continue from).
    public init(work: RungWork, data: DataSource, blasThreads: Int?, checkpoint: String?) {
        let now = DispatchTime.now().uptimeNanoseconds
        var task: String?
        var files: [String]?
        switch data {
        case .task(let folder): task = folder.standardizedFileURL.path
        case .files(let train, let validation, let test):
            files = [train, validation, test].map(\.standardizedFileURL.path)
        }
        self.init(
            task: task, files: files, group: work.group.key, candidates: work.alive, rung: work.rung,
            targetEpochs: work.targetEpochs, seed: work.seed, metric: work.metric.rawValue,
            reported: work.reported.map(\.rawValue), resamples: work.resamples,
            secondsLeft: work.deadline > now ? Double(work.deadline - now) / 1e9 : 0, blasThreads: blasThreads,
            checkpoint: checkpoint)
    }

    /// The job whose rows this trial reads.
    public func job() throws(DataError) -> Job { try TrialJSON.job(task: task, files: files) }

    /// Reads a spec; a malformed one is a `FILE: message` error.
    public static func read(_ url: URL) throws(DataError) -> TrialSpec {
        let path = url.relativePath
        let spec: TrialSpec = try TrialJSON.read(url, what: "trial spec")
        guard spec.version == 1 else {
            throw DataError(
                .badData, "trial spec version \(spec.version) is not supported (this retort reads 1)", file: path)
        }
        guard !spec.candidates.isEmpty else {
            throw DataError(.badData, "the trial spec lists no candidates", file: path)
        }
        guard spec.targetEpochs >= 1 else {
            throw DataError(.badData, "targetEpochs must be at least 1", file: path)
        }
        let known = Classification(LabelVocabulary([])).metrics(hasGold: true).map(\.rawValue)
        guard known.contains(spec.metric), spec.reported.allSatisfy(known.contains) else {
            throw DataError(
                .badData, "unknown metric in the trial spec; choose from \(known.joined(separator: ", "))", file: path)
        }
        guard spec.resamples >= 1 else { throw DataError(.badData, "resamples must be at least 1", file: path) }
        return spec
    }
}

/// What a trial returns beside its state: the rung's journal records (`result.json`).
public struct TrialOutcome: Codable, Sendable, Equatable {
    /// The training group's key.
    public var group: String
    /// One rung record per alive candidate.
    public var records: [JournalRecord]
    /// Whether the budget stopped training before the target.
    public var cutByBudget: Bool
    /// Epochs this trial trained.
    public var epochsTrained: Int

    /// An outcome.
    public init(group: String, records: [JournalRecord], cutByBudget: Bool, epochsTrained: Int) {
        self.group = group
        self.records = records
        self.cutByBudget = cutByBudget
        self.epochsTrained = epochsTrained
    }

    /// `result.json`'s bytes.
    public func encoded() throws -> Data { try TrialJSON.encoder().encode(self) }

    /// Reads `result.json`.
    public static func decode(_ data: Data) throws -> TrialOutcome {
        try TrialJSON.decoder().decode(TrialOutcome.self, from: data)
    }
}

extension TrialSpec {
    /// The spec's JSON bytes.
    public func encoded() throws -> Data { try TrialJSON.encoder().encode(self) }
}

/// JSON settings shared by specs and results (non-finite numbers as strings, as in the journal).
enum TrialJSON {
    static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes, .prettyPrinted]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return encoder
    }

    /// One line of JSON (the Ray bridge's requests).
    static func lineEncoder() -> JSONEncoder {
        let encoder = encoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return decoder
    }

    static func path(_ context: DecodingError.Context) -> String {
        context.codingPath.map(\.stringValue).joined(separator: ".")
    }

    /// Decodes the \(what) at `url`; a missing or malformed one is a `FILE[:LINE]: message` error.
    static func read<T: Decodable>(_ url: URL, what: String) throws(DataError) -> T {
        let file = url.relativePath
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw DataError(.missingInput, "no such \(what)", file: file)
        }
        let spec: T
        do {
            spec = try TrialJSON.decoder().decode(T.self, from: data)
        } catch let DecodingError.keyNotFound(key, context) {
            let at = (context.codingPath + [key]).map(\.stringValue).joined(separator: ".")
            throw DataError(.badData, "not a \(what): \"\(at)\" is missing", file: file)
        } catch let DecodingError.typeMismatch(_, context) {
            throw DataError(.badData, "not a \(what): \"\(path(context))\" has the wrong type", file: file)
        } catch let DecodingError.valueNotFound(_, context) {
            throw DataError(.badData, "not a \(what): \"\(path(context))\" is null", file: file)
        } catch let DecodingError.dataCorrupted(context) {
            let at = path(context)
            guard at.isEmpty else { throw DataError(.badData, "not a \(what): \"\(at)\" is invalid", file: file) }
            // The parser names the line in its message ("… around line 3, column 5").
            let underlying = context.underlyingError.map { "\($0)" } ?? context.debugDescription
            let line = underlying.firstMatch(of: /line ([0-9]+)/).flatMap { Int($0.1) }
            throw DataError(.badData, "not a \(what): not valid JSON", file: file, line: line)
        } catch {
            throw DataError(.badData, "not a \(what): \(error)", file: file)
        }
        return spec
    }

    /// The job of a trial's rows: a task folder, or train, validation and test files.
    static func job(task: String?, files: [String]?) throws(DataError) -> Job {
        if let task { return Job(task: URL(fileURLWithPath: task)) }
        guard let files, files.count == 3 else {
            throw DataError(.badData, "a trial spec needs \"task\" (a folder) or \"files\" (train, validation, test)")
        }
        var job = Job(task: URL(fileURLWithPath: files[0]).deletingLastPathComponent())
        job.data = .files(
            train: URL(fileURLWithPath: files[0]), validation: URL(fileURLWithPath: files[1]),
            test: URL(fileURLWithPath: files[2]))
        return job
    }
}

extension SearchEngine {
    /// Runs one trial from its spec on `task` (the rows the spec names): rebuilds the group and its features, trains
    /// from the spec's checkpoint (or the group's seed), and returns the records and the trained state as safetensors
    /// bytes (``TrainingSession/checkpointData()``).
    /// With `cache` (`retort trial serve`), feature sets built for earlier trials on the same rows are reused.
    public static func runTrial(_ spec: TrialSpec, task: TaskData, file: String = "spec", cache: TrialCache? = nil)
        throws -> (outcome: TrialOutcome, state: Data)
    {
        let keys = Set(spec.candidates.map(\.featureKey))
        var precisions = Dictionary(grouping: spec.candidates, by: \.featureKey).mapValues { Set($0.map(\.precision)) }
        var featureSets: [FeatureKey: FeatureSet] = [:]
        var missing: [FeatureKey] = []
        var wanted = precisions
        for key in keys {
            // An encoder set converted to a superset of the precisions asked for serves them all.
            if let cached = cache?.features[key], cached.precisions.isSuperset(of: precisions[key] ?? []) {
                featureSets[key] = cached.set
            } else {
                missing.append(key)
                wanted[key, default: []].formUnion(cache?.features[key]?.precisions ?? [])
            }
        }
        // With a cache, the other depths of a missing encoder pass come along (kept for later trials).
        var pass = missing
        if cache != nil {
            let passes = Set(missing.compactMap { $0.encoder.map { "\($0.path)#\($0.maxLength)" } })
            for candidate in spec.featureCandidates ?? [] {
                let key = candidate.featureKey
                guard let encoder = key.encoder, passes.contains("\(encoder.path)#\(encoder.maxLength)"),
                    !keys.contains(key), cache?.features[key] == nil
                else { continue }
                if !pass.contains(key) { pass.append(key) }
                precisions[key, default: []].insert(candidate.precision)
                wanted[key, default: []].insert(candidate.precision)
            }
        }
        featureSets.merge(
            FeatureSet.encoderSets(task: task, keys: pass, precisions: wanted, plan: false, folders: spec.paths ?? [:])
        ) { $1 }
        for key in missing where key.encoder == nil { featureSets[key] = FeatureSet(task: task, key: key) }
        for key in pass {
            if let set = featureSets[key] {
                cache?.features[key] = (key.encoder == nil ? Set(Precision.allCases) : wanted[key] ?? [], set)
            }
        }
        func features(_ key: FeatureKey) -> FeatureSet { featureSets[key] ?? FeatureSet(task: task, key: key) }
        // No constraints: the scheduler decided feasibility; the trial only rebuilds the group.
        let space = CandidateSpace(
            candidates: spec.candidates, task: task, constraints: Constraints(), seed: spec.seed, features: features)
        guard let group = space.groups.first(where: { $0.key == spec.group }), space.groups.count == 1 else {
            let reasons = space.blocked.values.compactMap(\.reason).sorted()
            throw DataError(
                .badData,
                "the candidates do not form the one training group \"\(spec.group)\""
                    + (reasons.isEmpty ? "" : ": " + reasons.joined(separator: "; ")), file: file)
        }
        guard let metric = Metric(rawValue: spec.metric) else {
            throw DataError(.badData, "unknown metric \"\(spec.metric)\"", file: file)
        }
        let reported = spec.reported.compactMap(Metric.init(rawValue:))
        let evaluator = Evaluator(
            kind: task.answerKind, split: task.validation, resamples: spec.resamples, seed: spec.seed &+ 1)
        let teacherValidation = try evaluator.evaluate(evaluator.teacher)
        let seconds = max(0, min(spec.secondsLeft, 1e9))
        let work = RungWork(
            group: group, features: features(group.featureKey), alive: spec.candidates, targetEpochs: spec.targetEpochs,
            rung: spec.rung, session: nil, checkpoint: spec.checkpoint.map { URL(fileURLWithPath: $0) },
            deadline: DispatchTime.now().uptimeNanoseconds &+ UInt64(seconds * 1e9), evaluator: evaluator,
            teacherValidation: teacherValidation, metric: metric, reported: reported, seed: spec.seed,
            resamples: spec.resamples)
        if let checkpoint = spec.checkpoint, !FileManager.default.fileExists(atPath: checkpoint) {
            throw DataError(.missingInput, "no such checkpoint (named by the trial spec)", file: checkpoint)
        }
        let output = try runRung(work, task: task)
        guard let session = output.session else { throw SearchError("the trial produced no training state") }
        return (
            TrialOutcome(
                group: group.key, records: output.records, cutByBudget: output.cutByBudget,
                epochsTrained: output.epochsTrained),
            try session.checkpointData()
        )
    }
}

/// What `retort trial serve` keeps between trials: the rows of the last data set it read and the feature sets built
/// on them. Used by one trial at a time.
public final class TrialCache: @unchecked Sendable {
    /// Which rows `task` holds (the spec's task folder or files).
    public private(set) var dataKey: String?
    /// The rows.
    public private(set) var task: TaskData?
    /// The rows of a structured task.
    public private(set) var structured: StructuredTaskData?
    /// Feature sets by key, with the precisions each serves (every one for hashed and numeric features; the ones it
    /// was converted to for encoder vectors).
    var features: [FeatureKey: (precisions: Set<Precision>, set: FeatureSet)] = [:]

    /// An empty cache.
    public init() {}

    /// The rows of a structured `spec`, read once per data set (a different data set replaces the cached one).
    public func structuredTask(for spec: StructuredTrialSpec) throws -> StructuredTaskData {
        let key = "structured\n" + (spec.task ?? (spec.files ?? []).joined(separator: "\n"))
        if let structured, key == dataKey { return structured }
        let loaded = try StructuredTaskData.load(try spec.job())
        (dataKey, task, structured, features) = (key, nil, loaded, [:])
        return loaded
    }

    /// The rows of `spec`, read once per data set (a different data set replaces the cached one).
    public func task(for spec: TrialSpec) throws -> TaskData {
        let key = spec.task ?? (spec.files ?? []).joined(separator: "\n")
        if let task, key == dataKey { return task }
        let loaded = try TaskData.load(try spec.job())
        (dataKey, task, structured, features) = (key, loaded, nil, [:])
        return loaded
    }
}

/// Runs every rung as its own `retort trial run` process: writes a spec (and the group's state as a checkpoint) per
/// work item, runs the binary, and reads back `result.json` and `state.safetensors`. It proves the spec is complete;
/// the Ray executor (issue 11) submits the same spec to remote workers.
public struct ProcessTrialExecutor: TrialExecutor {
    /// The `retort` executable.
    public let binary: URL
    /// Where the rows are: a task folder, or train/validation/test files.
    public let data: DataSource
    /// Folder for the specs, checkpoints and results of trials (one subfolder per trial, removed after reading).
    public let directory: URL
    /// BLAS threads per trial process.
    public let blasThreads: Int?

    /// An executor that runs `binary trial run` for every rung, on the rows of `data`.
    public init(binary: URL, data: DataSource, directory: URL, blasThreads: Int? = nil) {
        self.binary = binary
        self.data = data
        self.directory = directory
        self.blasThreads = blasThreads
    }

    /// Runs `work` as `retort trial run` and reads back its records and state.
    public func run(_ work: RungWork, task: TaskData) async throws -> RungOutput {
        let folder = try work.trialFolder(in: directory)
        defer { try? FileManager.default.removeItem(at: folder) }
        let checkpoint = try work.inputState(in: folder)
        let specURL = folder.appendingPathComponent("spec.json")
        try TrialJSON.encoder().encode(
            TrialSpec(work: work, data: data, blasThreads: blasThreads, checkpoint: checkpoint)
        ).write(to: specURL, options: .atomic)
        let out = folder.appendingPathComponent("out", isDirectory: true)
        // The process is waited for on a thread of its own, not on the caller's.
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            DispatchQueue.global().async {
                continuation.resume(
                    with: Result {
                        try runTrialProcess(
                            spec: specURL, out: out, in: folder, name: "trial \(work.group.key) (rung \(work.rung + 1))"
                        )
                    })
            }
        }
        return try TrialOutcome.read(out, work: work)
    }

    /// Trains each structured run as its own `retort trial run` process (all at once; the caller sizes the waves) and
    /// reads back the students and answers it wrote.
    public func trainStructured(
        _ runs: [[StructuredCandidate]], fidelity: Double, task: StructuredTaskData, seed: UInt64
    ) throws -> [StructuredRunOutput] {
        let hash = SearchFingerprint.structuredTask(task)
        return try StructuredRunOutput.trainEach(runs, in: directory, rows: task.validation.count) {
            members, folder, out in
            let specURL = folder.appendingPathComponent("spec.json")
            try StructuredTrialSpec(
                data: data, taskHash: hash, candidates: members, fidelity: fidelity, seed: seed,
                blasThreads: blasThreads
            ).encoded().write(to: specURL, options: .atomic)
            try runTrialProcess(spec: specURL, out: out, in: folder, name: "structured trial \(members[0].trainingKey)")
        }
    }

    /// Runs `binary trial run --spec SPEC --out OUT` to its end; a non-zero exit throws with its last stderr line.
    func runTrialProcess(spec: URL, out: URL, in folder: URL, name: String) throws {
        let stderrURL = folder.appendingPathComponent("stderr.txt")
        guard FileManager.default.createFile(atPath: stderrURL.path, contents: nil) else {
            throw SearchError(
                "\(stderrURL.path): cannot create the trial's stderr file; check that the folder is writable")
        }
        let process = Process()
        process.executableURL = binary
        process.arguments = ["trial", "run", "--spec", spec.path, "--out", out.path]
        process.standardOutput = FileHandle.nullDevice
        let stderrHandle = try FileHandle(forWritingTo: stderrURL)
        process.standardError = stderrHandle
        do { try process.run() } catch { throw SearchError("cannot run \(binary.path): \(error)") }
        process.waitUntilExit()
        try? stderrHandle.close()
        guard process.terminationStatus == 0 else {
            let message = (try? String(contentsOf: stderrURL, encoding: .utf8))?.split(separator: "\n").last.map(
                String.init)
            throw SearchError(
                "\(name) failed in \(binary.lastPathComponent) trial run (exit \(process.terminationStatus))"
                    + (message.map { ": \($0)" } ?? ""))
        }
    }

    /// Trials ran as processes on this host.
    public var summary: ExecutorSummary? {
        ExecutorSummary(
            kind: "process", address: nil, nodes: nil, cpus: nil, retried: 0,
            latencyHost: ProcessInfo.processInfo.hostName)
    }
}

extension RungWork {
    /// A new folder under `directory` for this trial's input state and results (unique per submission).
    func trialFolder(in directory: URL) throws -> URL {
        let folder = directory.appendingPathComponent(
            "rung\(rung)-\(group.key)-\(UUID().uuidString.prefix(8))", isDirectory: true)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return folder
    }

    /// The state a trial continues from, as a file: the scheduler's session written into `folder`, else (a resumed
    /// run) the group's checkpoint file; nil when the group starts from its seed.
    func inputState(in folder: URL) throws -> String? {
        if let session {
            let input = folder.appendingPathComponent("input.safetensors")
            try session.checkpointData().write(to: input, options: .atomic)
            return input.path
        }
        if let file = checkpoint, FileManager.default.fileExists(atPath: file.path) { return file.path }
        return nil
    }
}

extension TrialOutcome {
    /// Reads a trial's `result.json` and `state.safetensors` from `out` into the scheduler's output for `work`.
    static func read(_ out: URL, work: RungWork) throws -> RungOutput {
        guard let resultData = FileManager.default.contents(atPath: out.appendingPathComponent("result.json").path),
            let outcome = try? TrialJSON.decoder().decode(TrialOutcome.self, from: resultData),
            let state = FileManager.default.contents(atPath: out.appendingPathComponent("state.safetensors").path)
        else {
            throw SearchError("trial \(work.group.key) (rung \(work.rung + 1)) left no readable result.json and state")
        }
        guard outcome.group == work.group.key else {
            throw SearchError("trial \(work.group.key) returned the result of \(outcome.group)")
        }
        let session = try TrainingSession(
            restoring: state, file: "state.safetensors", architecture: work.group.architecture,
            train: SearchEngine.emptySplit(work.group), options: work.group.options)
        return RungOutput(
            groupKey: outcome.group, session: session, records: outcome.records, cutByBudget: outcome.cutByBudget,
            epochsTrained: outcome.epochsTrained)
    }
}

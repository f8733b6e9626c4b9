import Foundation
import RetortData
import RetortEvals
import RetortStudents
import Synchronization

/// Everything one training run of a structured search needs in another process (`retort trial run --spec FILE`, the
/// spec saying `"kind": "structured"`): where the rows are, a hash of them, the run's candidates (every precision of
/// one configuration), the fidelity and the seed. The trial trains the run and writes, beside `result.json`, one folder
/// per candidate in the format of a structured run's `checkpoints/ID/`: the student's model folder and its validation
/// answers (``StructuredCheckpoint``). The search reads those back and times the students itself.
public struct StructuredTrialSpec: Codable, Sendable, Equatable {
    /// Format version (1).
    public var version: Int
    /// Always `structured` (a spec without it is a label trial's, ``TrialSpec``).
    public var kind: String
    /// A task folder (absolute path), or nil when `files` is given.
    public var task: String?
    /// train, validation and test JSONL files (absolute paths), when the rows are not in a task folder.
    public var files: [String]?
    /// ``SearchFingerprint/structuredTask(_:)`` of the search's rows: a trial that reads other rows (a schema left
    /// behind with a task.json the files did not bring) refuses to train.
    public var taskHash: String
    /// The training run's candidates; the first one's configuration trains, every one is stored at its precision.
    public var candidates: [StructuredCandidate]
    /// The share of the run's epochs (fields) or rows (slm) it learns from: 1, or halving's screening fidelity.
    public var fidelity: Double
    /// The search seed.
    public var seed: UInt64
    /// BLAS threads for the trial (nil: leave OpenBLAS's default).
    public var blasThreads: Int?
    /// Where this trial finds the base-model files its candidates name, when not at those paths (a Ray worker's
    /// copies); nil: at the named paths.
    public var paths: [String: String]?

    /// The spec of training `candidates` at `fidelity` on the rows of `data`.
    public init(
        data: DataSource, taskHash: String, candidates: [StructuredCandidate], fidelity: Double, seed: UInt64,
        blasThreads: Int?
    ) {
        version = 1
        kind = "structured"
        switch data {
        case .task(let folder): task = folder.standardizedFileURL.path
        case .files(let train, let validation, let test):
            files = [train, validation, test].map(\.standardizedFileURL.path)
        }
        self.taskHash = taskHash
        self.candidates = candidates
        self.fidelity = fidelity
        self.seed = seed
        self.blasThreads = blasThreads
    }

    /// Whether the JSON spec at `url` is a structured trial's (it says `"kind": "structured"`).
    public static func isStructured(_ url: URL) -> Bool {
        guard let data = FileManager.default.contents(atPath: url.path),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return false }
        return object["kind"] as? String == "structured"
    }

    /// Reads a spec; a malformed one is a `FILE: message` error.
    public static func read(_ url: URL) throws(DataError) -> StructuredTrialSpec {
        let spec: StructuredTrialSpec = try TrialJSON.read(url, what: "structured trial spec")
        let path = url.relativePath
        guard spec.version == 1 else {
            throw DataError(
                .badData, "trial spec version \(spec.version) is not supported (this retort reads 1)", file: path)
        }
        guard spec.kind == "structured" else {
            throw DataError(.badData, "a structured trial spec says \"kind\": \"structured\"", file: path)
        }
        guard let first = spec.candidates.first else {
            throw DataError(.badData, "the trial spec lists no candidates", file: path)
        }
        guard spec.candidates.allSatisfy({ $0.trainingKey == first.trainingKey }) else {
            throw DataError(
                .badData, "the candidates of a structured trial share one training run (\(first.trainingKey))",
                file: path)
        }
        guard spec.fidelity > 0 && spec.fidelity <= 1 else {
            throw DataError(.badData, "fidelity must be in (0, 1]", file: path)
        }
        return spec
    }

    /// The job whose rows this trial reads.
    public func job() throws(DataError) -> Job { try TrialJSON.job(task: task, files: files) }

    /// The spec's JSON bytes.
    public func encoded() throws -> Data { try TrialJSON.encoder().encode(self) }
}

/// A structured trial's `result.json`: the training run's figures, and per candidate whether it has a folder beside
/// it or why not.
public struct StructuredTrialOutcome: Codable, Sendable, Equatable {
    /// One candidate of the run.
    public struct Member: Codable, Sendable, Equatable {
        /// The candidate id (its folder's name beside result.json).
        public var id: String
        /// Why it has no folder (it failed to be stored or to answer), or nil.
        public var error: String?
    }

    /// Always `structured`.
    public var kind = "structured"
    /// The training run (``StructuredCandidate/trainingKey``).
    public var run: String
    /// Why the run did not train (every candidate fails with it), or nil.
    public var error: String?
    /// Seconds the run trained (answering validation not included).
    public var trainSeconds: Double
    /// Epochs it trained.
    public var epochsRun: Double
    /// The epoch whose weights it kept, when it kept one.
    public var bestEpoch: Int?
    /// Its candidates, in the spec's order.
    public var members: [Member]
}

/// One training run of a structured search, trained wherever the executor put it: its figures, and each member's
/// student at its precision with its answers to every validation input (or why it has none).
public struct StructuredRunOutput: Sendable {
    /// A member's student and validation answers.
    public struct Answered: Sendable {
        /// The student at the member's precision.
        public var student: StructuredStudent
        /// Its answer and confidence for every validation row.
        public var answers: [(answer: StructuredAnswer, confidence: Double)]
    }

    /// Why the run did not train (every member fails with it), or nil.
    public var error: (any Error)?
    /// Seconds it trained.
    public var seconds = 0.0
    /// Epochs it trained.
    public var epochsRun = 0.0
    /// The epoch whose weights it kept.
    public var bestEpoch: Int?
    /// Per member (the run's order), its student and answers or its error.
    public var members: [Result<Answered, any Error>] = []
}

/// A structured student kept with its validation answers, the format of a structured run's `checkpoints/ID/` and of
/// what a structured trial returns: the student's model folder (as `retort predict` reads it) and
/// `validation-answers.jsonl` (one `{"answer": JSON text, "confidence": text}` line per validation row, both as text
/// so that they come back bit for bit).
public enum StructuredCheckpoint {
    /// The validation answers file.
    public static let answersFile = "validation-answers.jsonl"

    /// Writes `student` and `answers` into `folder` whole: into a sibling `.tmp` folder first, then renamed.
    public static func write(
        _ student: StructuredStudent, answers: [(answer: StructuredAnswer, confidence: Double)], candidate: String,
        to folder: URL
    ) throws {
        let manager = FileManager.default
        let temporary = folder.deletingLastPathComponent().appendingPathComponent(folder.lastPathComponent + ".tmp")
        try? manager.removeItem(at: temporary)
        try manager.createDirectory(at: temporary, withIntermediateDirectories: true)
        try student.write(to: temporary, candidate: candidate)
        var lines = ""
        for (answer, confidence) in answers {
            let object: [String: Any] = ["answer": answer.canonicalJSON, "confidence": "\(confidence)"]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            lines += String(decoding: data, as: UTF8.self) + "\n"
        }
        try Data(lines.utf8).write(to: temporary.appendingPathComponent(answersFile), options: .atomic)
        try? manager.removeItem(at: folder)
        try manager.moveItem(at: temporary, to: folder)
    }

    /// The student in `folder` and its answers to `rows` validation rows; nil when the folder is missing, unreadable
    /// or holds another number of answers.
    public static func read(_ folder: URL, rows: Int) -> StructuredRunOutput.Answered? {
        guard let student = try? StructuredStudent.load(from: folder),
            let data = FileManager.default.contents(atPath: folder.appendingPathComponent(answersFile).path)
        else { return nil }
        var answers: [(answer: StructuredAnswer, confidence: Double)] = []
        for line in data.split(separator: 0x0A) {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
                let text = object["answer"] as? String, let answer = StructuredAnswer.parse(text: text),
                let confidence = (object["confidence"] as? String).flatMap(Double.init)
            else { return nil }
            answers.append((answer, confidence))
        }
        return answers.count == rows ? StructuredRunOutput.Answered(student: student, answers: answers) : nil
    }
}

extension StructuredSearch {
    /// Trains `runs` in this process, side by side (one thread each; seeded, so the results are those of one at a
    /// time), at `fidelity`; each member at its precision answers every validation input.
    public static func trainHere(
        _ runs: [[StructuredCandidate]], fidelity: Double, task: StructuredTaskData, seed: UInt64
    ) -> [StructuredRunOutput] {
        let results = Mutex([StructuredRunOutput](repeating: StructuredRunOutput(), count: runs.count))
        DispatchQueue.concurrentPerform(iterations: runs.count) { index in
            let run = trainRun(runs[index], fidelity: fidelity, task: task, seed: seed)
            results.withLock { $0[index] = run }
        }
        return results.withLock { $0 }
    }

    /// Trains one run (``train(_:task:seed:fidelity:)``) and answers validation with every member.
    static func trainRun(
        _ members: [StructuredCandidate], fidelity: Double, task: StructuredTaskData, seed: UInt64,
        paths: [String: String] = [:]
    ) -> StructuredRunOutput {
        var run = StructuredRunOutput()
        let start = DispatchTime.now().uptimeNanoseconds
        do {
            var first = members[0]
            if let local = paths[first.model] { first.model = local }
            let base = try train(first, task: task, seed: seed, fidelity: fidelity)
            run.seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            run.epochsRun = base.epochsRun
            run.bestEpoch = base.bestEpoch
            run.members = members.map { candidate in
                Result {
                    let student = try base.quantized(to: candidate.precision)
                    return .init(student: student, answers: try student.predict(task.validation.texts))
                }
            }
        } catch {
            run.error = error
        }
        return run
    }

    /// Runs a structured trial from its spec on `task` (the rows the spec names) and writes `result.json` and a
    /// checkpoint folder per candidate that answered into `out`. A run that fails to train is reported in
    /// result.json (its candidates fail with the reason); rows other than the search's are an error.
    public static func runTrial(_ spec: StructuredTrialSpec, task: StructuredTaskData, out: URL, file: String) throws {
        guard SearchFingerprint.structuredTask(task) == spec.taskHash else {
            throw DataError(
                .badData,
                "the rows this trial reads differ from the search's (another schema or other rows); give the trial the "
                    + "task folder the search read", file: file)
        }
        let run = trainRun(
            spec.candidates, fidelity: spec.fidelity, task: task, seed: spec.seed, paths: spec.paths ?? [:])
        do {
            try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
            var members: [StructuredTrialOutcome.Member] = []
            for (candidate, result) in zip(spec.candidates, run.members) {
                switch result {
                case .success(let answered):
                    try StructuredCheckpoint.write(
                        answered.student, answers: answered.answers, candidate: candidate.id,
                        to: out.appendingPathComponent(candidate.id, isDirectory: true))
                    members.append(.init(id: candidate.id))
                case .failure(let error):
                    members.append(.init(id: candidate.id, error: "\(error)"))
                }
            }
            if run.error != nil { members = spec.candidates.map { .init(id: $0.id) } }
            let outcome = StructuredTrialOutcome(
                run: spec.candidates[0].trainingKey, error: run.error.map { "\($0)" }, trainSeconds: run.seconds,
                epochsRun: run.epochsRun, bestEpoch: run.bestEpoch, members: members)
            try TrialJSON.encoder().encode(outcome).write(
                to: out.appendingPathComponent("result.json"), options: .atomic)
        } catch {
            throw DataError(
                .cannotCreateOutput, "cannot write the trial's result.json and students: \(error)",
                file: out.relativePath)
        }
    }
}

extension StructuredRunOutput {
    /// Runs `trial` for every run of `runs` side by side (a thread each), each in a new folder under `directory`, and
    /// reads back the `out` folder it filled; the first error throws. A folder that was read stays until the executor's
    /// directory goes at the end of the search: a student read from it may still need its files (an `slm` student
    /// loads its `model.gguf` when it answers, for the latency and the test set).
    static func trainEach(
        _ runs: [[StructuredCandidate]], in directory: URL, rows: Int,
        _ trial: @Sendable (_ members: [StructuredCandidate], _ folder: URL, _ out: URL) throws -> Void
    ) throws -> [StructuredRunOutput] {
        let results = Mutex(
            [Result<StructuredRunOutput, any Error>](repeating: .failure(SearchError("not run")), count: runs.count))
        DispatchQueue.concurrentPerform(iterations: runs.count) { index in
            let result = Result { () throws -> StructuredRunOutput in
                let members = runs[index]
                let folder = directory.appendingPathComponent(
                    "structured-\(members[0].trainingKey)-\(UUID().uuidString.prefix(8))", isDirectory: true)
                try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
                do {
                    let out = folder.appendingPathComponent("out", isDirectory: true)
                    try trial(members, folder, out)
                    return try read(out, members: members, rows: rows)
                } catch {
                    try? FileManager.default.removeItem(at: folder)
                    throw error
                }
            }
            results.withLock { $0[index] = result }
        }
        return try results.withLock { $0 }.map { try $0.get() }
    }

    /// Reads a structured trial's `out` folder (result.json and a folder per answered member) for `members`, whose
    /// answers cover `rows` validation rows.
    static func read(_ out: URL, members: [StructuredCandidate], rows: Int) throws -> StructuredRunOutput {
        let key = members[0].trainingKey
        guard let data = FileManager.default.contents(atPath: out.appendingPathComponent("result.json").path),
            let outcome = try? TrialJSON.decoder().decode(StructuredTrialOutcome.self, from: data)
        else { throw SearchError("the structured trial of \(key) left no readable result.json") }
        guard outcome.run == key, outcome.members.map(\.id) == members.map(\.id) else {
            throw SearchError("the structured trial of \(key) returned the result of \(outcome.run)")
        }
        var run = StructuredRunOutput(
            error: outcome.error.map { SearchError($0) }, seconds: outcome.trainSeconds, epochsRun: outcome.epochsRun,
            bestEpoch: outcome.bestEpoch)
        guard run.error == nil else { return run }
        run.members = outcome.members.map { member in
            if let error = member.error { return .failure(SearchError(error)) }
            guard let answered = StructuredCheckpoint.read(out.appendingPathComponent(member.id), rows: rows) else {
                return .failure(SearchError("the trial's folder of \(member.id) is missing or unreadable"))
            }
            return .success(answered)
        }
        return run
    }
}

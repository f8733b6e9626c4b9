import Foundation
import RetortData
import RetortEvals

/// One line of `journal.jsonl`: the run's identity first, then a record per candidate per finished rung and per
/// latency measurement. `--resume` replays it. Progress records (`phase`, `queue`, `start`) say what the search is
/// doing for a live view (`retort ui`); `--resume` ignores them.
public struct JournalRecord: Codable, Sendable, Equatable {
    /// `header`, `rung` (a structured search's rung records carry `trial`) or `latency`; progress: `phase` (a pipeline stage began), `queue` (a rung's trials, before
    /// any starts) or `start` (a training run began a rung).
    public var type: String
    /// Phase: the stage's description.
    public var phase: String?
    /// Progress records: unix seconds.
    public var time: Double?
    /// Queue/start: the candidates (a start: the training run's alive members).
    public var candidates: [String]?
    /// Header: journal format version.
    public var version: Int?
    /// Header: job name.
    public var job: String?
    /// Header: where the job came from (a job file or a task folder), for `--resume` without a job.
    public var source: String?
    /// Header: the job settings the run used beyond its source (strategy, seed, limits, catalog file...), so
    /// `--resume` alone restores them.
    public var options: [String: String]?
    /// Header: hash of the task's rows.
    public var taskHash: String?
    /// Header: hash of the expanded candidate space (ids and training options).
    public var catalogHash: String?
    /// Header: hash of what else decides the result (seed, strategy, η, constraints, metric, suite).
    public var settingsHash: String?
    /// Rung/latency: candidate id.
    public var candidate: String?
    /// Rung: training group (candidates that share one training run).
    public var group: String?
    /// Rung: rung index (0-based).
    public var rung: Int?
    /// Rung: epochs trained so far.
    public var epochs: Int?
    /// Rung: fidelity reached (epochs / full epochs, 1 when training finished early).
    public var fidelity: Double?
    /// Rung: epoch of the kept weights.
    public var bestEpoch: Int?
    /// Rung: whether training has finished (early stop or all epochs).
    public var finished: Bool?
    /// Rung: whether the time budget cut training short here.
    public var cutByBudget: Bool?
    /// Rung: validation metrics.
    public var metrics: [String: MetricEstimate]?
    /// Rung: paired validation difference to the teacher on the primary metric.
    public var differenceToTeacher: MetricEstimate?
    /// Rung: seconds of training in this rung.
    public var trainSeconds: Double?
    /// Rung: seconds of the training step (an epoch, or making the session) that was running when the budget ran out
    /// and ended after it: how far past the budget this training run went (nil when the budget passed between steps).
    public var epochInFlightSeconds: Double?
    /// Rung, when the budget cut training: seconds spent evaluating the members on validation after training stopped.
    public var evaluationSeconds: Double?
    /// Rung: exported bytes of the model as trained so far (differs from the plan for gbdt, whose rounds stop early).
    public var sizeBytes: Int?
    /// Rung: per-example cost of the model as trained so far, when it differs from the plan (gbdt comparisons).
    public var flops: Int?
    /// Latency: p50 ms.
    public var p50: Double?
    /// Latency: p95 ms.
    public var p95: Double?
    /// Latency: examples per second.
    public var throughput: Double?
    /// Rung of a structured search: the decided trial whole, which `--resume` restores with the student kept in the
    /// run's checkpoints.
    public var trial: TrialResult?

    enum CodingKeys: String, CodingKey {
        case type, version, job, source, options, candidate, group, rung, epochs, fidelity, finished, metrics, p50, p95,
            throughput, phase, time, candidates, trial
        case taskHash = "task_hash"
        case catalogHash = "catalog_hash"
        case settingsHash = "settings_hash"
        case bestEpoch = "best_epoch"
        case cutByBudget = "cut_by_budget"
        case differenceToTeacher = "difference_to_teacher"
        case trainSeconds = "train_seconds"
        case epochInFlightSeconds = "epoch_in_flight_seconds"
        case evaluationSeconds = "evaluation_seconds"
        case sizeBytes = "size_bytes"
        case flops
    }

    /// An empty record of `type`.
    public init(type: String) { self.type = type }

    /// Reads a journal. A last line cut mid-write (no newline, or not JSON) is ignored: it was in flight. Any other
    /// bad line is an error with its line number.
    public static func read(_ url: URL) throws(DataError) -> [JournalRecord] {
        let path = url.relativePath
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw DataError(
                .missingInput, "no journal.jsonl; --resume needs the folder of an interrupted run", file: path)
        }
        return try parse(data, path: path)
    }

    /// Reads journal `data` that came from `path` (used in messages), as ``read(_:)`` does; the fuzzer's entry.
    public static func parse(_ data: Data, path: String) throws(DataError) -> [JournalRecord] {
        var lines = data.split(separator: 0x0A, omittingEmptySubsequences: false)
        if let last = lines.last, last.isEmpty { lines.removeLast() }
        let decoder = JSONDecoder()
        var records: [JournalRecord] = []
        for (index, line) in lines.enumerated() {
            let isLast = index == lines.count - 1
            guard let record = try? decoder.decode(JournalRecord.self, from: Data(line)) else {
                if isLast && data.last != 0x0A { break }
                throw DataError(
                    .badData, "journal line is not a journal record; the journal is corrupt, start a new run",
                    file: path, line: index + 1)
            }
            if isLast && data.last != 0x0A { break }
            records.append(record)
        }
        guard let header = records.first, header.type == "header" else {
            throw DataError(
                .badData, "the journal does not start with a header; it is not a Retort journal", file: path, line: 1)
        }
        return records
    }
}

/// Stable 64-bit FNV-1a hashes of what decides a search's result, so a journal can be matched to its job.
public enum SearchFingerprint {
    /// Hex FNV-1a of `text`.
    public static func hash(_ text: String) -> String {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01B3
        }
        return String(hash, radix: 16)
    }

    /// Hash of every row of every split (ids, inputs, teacher distributions, gold) and the labels.
    public static func task(_ task: TaskData) -> String {
        var text = task.vocabulary.labels.joined(separator: "\u{1F}")
        for split in [task.train, task.validation, task.test] {
            text += "|\(split.name):\(split.count)"
            for index in 0..<split.count {
                text += "\u{1E}\(split.ids[index])\u{1F}"
                switch split.inputs[index] {
                case .text(let value): text += value
                case .numeric(let values): text += values.map { "\($0.bitPattern)" }.joined(separator: ",")
                }
                text += "\u{1F}\(split.gold[index].map(String.init) ?? "-")\u{1F}"
                for k in 0..<split.teacherProbabilities.columns {
                    text += "\(split.teacherProbabilities[index, k].bitPattern),"
                }
            }
        }
        return hash(text)
    }

    /// Hash of the candidate ids with their training options.
    public static func catalog(_ candidates: [Candidate]) -> String {
        hash(
            candidates.map { candidate in
                let options = candidate.training
                return
                    "\(candidate.id):\(options.epochs):\(options.batchSize):\(options.learningRate.bitPattern):\(options.patience):\(options.loss.temperature.bitPattern):\(options.loss.alpha.bitPattern):\(options.earlyStopping.rawValue)"
                    + (options.optimizer == .adam ? "" : ":\(options.optimizer.rawValue)")
            }.joined(separator: ";"))
    }
}

import Crypto
import Foundation
import RetortData
import RetortTeacher

/// `retort capture export`: a `capture:` route's traffic → a task folder (FORMATS.md §2).
public struct CaptureExport: Sendable {
    /// What an export wrote and what it set aside.
    public struct Summary: Sendable {
        /// Captured requests of the task.
        public var captured = 0
        /// Rows per split.
        public var train = 0
        /// Validation rows.
        public var validation = 0
        /// Test rows.
        public var test = 0
        /// Answers that are not a label (in `rejected.jsonl`).
        public var rejected = 0
        /// Answers another model served (in `other-models.jsonl`).
        public var otherModel = 0
        /// Rows with soft labels from logprobs.
        public var withLogprobs = 0
        /// The teacher model the rows come from.
        public var model = ""
    }

    let config: GatewayConfig
    let task: String
    let labels: [String]

    /// An export of `task` with the label set of `labelsPath` (one label per line).
    public init(config: GatewayConfig, task: String, labelsPath: String) throws(DataError) {
        let labels = try LabelMatcher.readLabels(labelsPath)
        guard config.routes.values.contains(where: { $0.capture == task }) else {
            throw DataError(
                .usage, "no route captures task \"\(task)\" (add capture: \(task) to a route)", file: config.file)
        }
        self.config = config
        self.task = task
        self.labels = labels
    }

    /// Which split an id falls in: SHA-256 of the id, 80% train, 10% validation, 10% test.
    public static func split(of id: String) -> String {
        let digest = Array(SHA256.hash(data: Data(id.utf8)))
        let value = digest.prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        let unit = Double(value) / Double(UInt32.max)
        return unit < 0.8 ? "train" : unit < 0.9 ? "validation" : "test"
    }

    /// Writes the task folder `out` whole (a temporary folder renamed at the end).
    public func write(to out: String) throws -> Summary {
        let ledger = try Ledger(path: config.ledgerPath)
        let captures = try ledger.captures(task: task)
        guard !captures.isEmpty else {
            throw DataError(.badData, "no captured requests for task \"\(task)\" yet", file: config.ledgerPath)
        }
        let routes = config.routes.values.filter { $0.capture == task }.sorted { $0.name < $1.name }
        let expected = routes.first?.deployments.first
        var summary = Summary()
        summary.captured = captures.count
        summary.model = expected?.model ?? ""
        var splits: [String: [String]] = ["train": [], "validation": [], "test": []]
        var rejected: [String] = []
        var others: [String] = []
        var latencies: [Double] = []
        var cost = 0.0
        for capture in captures {
            let id = "cap-\(capture.id)"
            guard capture.model == summary.model else {
                summary.otherModel += 1
                others.append(
                    Labeler.rejectedLine(id: id, input: capture.input, answer: capture.answer, model: capture.model))
                continue
            }
            guard let label = LabelMatcher.label(for: capture.answer, in: labels) else {
                summary.rejected += 1
                rejected.append(
                    Labeler.rejectedLine(id: id, input: capture.input, answer: capture.answer, model: capture.model))
                continue
            }
            var teacher: JSON = [
                "label": .string(label),
                "usage": ["input_tokens": .int(capture.inputTokens), "output_tokens": .int(capture.outputTokens)],
                "latency_ms": .number((capture.latencyMilliseconds * 10).rounded() / 10),
                "model": .string(capture.model),
            ]
            if let alternatives = capture.topLogprobs,
                let logprobs = LabelMatcher.logprobs(alternatives, labels: labels)
            {
                teacher["logprobs"] = .object(logprobs.mapValues { JSON.number($0) })
                summary.withLogprobs += 1
            }
            latencies.append(capture.latencyMilliseconds)
            cost += capture.costUSD
            let row: JSON = ["id": .string(id), "input": .string(capture.input), "teacher": teacher]
            splits[CaptureExport.split(of: id), default: []].append(row.text)
        }
        summary.train = splits["train"]?.count ?? 0
        summary.validation = splits["validation"]?.count ?? 0
        summary.test = splits["test"]?.count ?? 0
        for name in ["train", "validation", "test"] where (splits[name] ?? []).isEmpty {
            throw DataError(
                .badData,
                "the \(name) split would be empty (\(summary.train)/\(summary.validation)/\(summary.test) rows kept of \(captures.count) captured; \(summary.rejected) not a label, \(summary.otherModel) from another model): capture more traffic first",
                file: config.ledgerPath)
        }
        let kept = Double(latencies.count)
        var teacherInfo: JSON = [
            "name": .string(summary.model),
            "latency_ms_p50": .number(Latency.quantile(latencies.sorted(), 0.5)),
            "cost_per_1k_requests_usd": .number((cost / kept * 1000 * 1e6).rounded() / 1e6),
        ]
        if let price = expected?.price {
            teacherInfo["price"] = [
                "input_per_mtok_usd": .number(price.inputPerMTok), "output_per_mtok_usd": .number(price.outputPerMTok),
            ]
        }
        let taskJSON: JSON = [
            "name": .string(task), "kind": "text", "teacher": teacherInfo,
            "source": .string(
                "retort capture export: \(captures.count) requests captured by the gateway (ledger \(config.ledgerPath)); \(summary.rejected) answers not in the label set and \(summary.otherModel) served by another model than \(summary.model) set aside"
            ),
        ]
        let manager = FileManager.default
        let temporary = out + ".partial-\(ProcessInfo.processInfo.processIdentifier)"
        try? manager.removeItem(atPath: temporary)
        do {
            try manager.createDirectory(atPath: temporary, withIntermediateDirectories: true)
            for (name, lines) in splits {
                try (lines.joined(separator: "\n") + "\n").write(
                    toFile: temporary + "/\(name).jsonl", atomically: false, encoding: .utf8)
            }
            try taskJSON.text.write(toFile: temporary + "/task.json", atomically: false, encoding: .utf8)
            if !rejected.isEmpty {
                try (rejected.joined(separator: "\n") + "\n").write(
                    toFile: temporary + "/rejected.jsonl", atomically: false, encoding: .utf8)
            }
            if !others.isEmpty {
                try (others.joined(separator: "\n") + "\n").write(
                    toFile: temporary + "/other-models.jsonl", atomically: false, encoding: .utf8)
            }
            if manager.fileExists(atPath: out) { try manager.removeItem(atPath: out) }
            try manager.moveItem(atPath: temporary, toPath: out)
        } catch {
            try? manager.removeItem(atPath: temporary)
            throw DataError(
                .cannotCreateOutput, "cannot write the task folder: \(FileProblem.reason(error))", file: out)
        }
        return summary
    }
}

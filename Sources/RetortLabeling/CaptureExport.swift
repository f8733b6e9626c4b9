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

    /// What the captured answers are.
    public enum Answers: Sendable {
        /// Labels of this set (FORMATS.md §1).
        case labels([String])
        /// Flat JSON objects (FORMATS.md §9), checked against a schema when one is given (it goes into task.json);
        /// without one, any flat object is kept and loading the task infers the schema from the train answers.
        case structured(LabelPrompt.Schema?)

        /// JSON objects checked against the JSON schema at `schemaPath` (the FORMATS.md §9 subset) or, when nil, any
        /// flat object.
        public static func structured(schemaPath: String?) throws(DataError) -> Answers {
            guard let schemaPath else { return .structured(nil) }
            guard let data = FileManager.default.contents(atPath: schemaPath) else {
                throw DataError(.missingInput, "cannot read the schema file", file: schemaPath)
            }
            let raw: Any
            do { raw = try JSONSerialization.jsonObject(with: data) } catch {
                throw DataError(
                    .badData, "not valid JSON (\(FileProblem.reason(error))); write the schema as one JSON object",
                    file: schemaPath)
            }
            return .structured(try LabelPrompt.Schema.make(raw, file: schemaPath))
        }

        /// Whether `answer` is one of these answers: a label of the set, or a flat JSON object the schema admits.
        func admits(structured answer: String) -> Bool {
            guard case .structured(let schema) = self, let parsed = StructuredAnswer.parse(text: answer) else {
                return false
            }
            return schema?.checked.isValid(parsed) ?? true
        }

        /// What an answer set aside was not, for messages.
        public var rejectedWhat: String {
            switch self {
            case .labels: "not in the label set"
            case .structured(let schema):
                schema == nil ? "not a flat JSON object" : "not a JSON object the schema admits"
            }
        }
    }

    let config: GatewayConfig
    let task: String
    let answers: Answers

    /// An export of `task` with the label set of `labelsPath` (one label per line).
    public init(config: GatewayConfig, task: String, labelsPath: String) throws(DataError) {
        try self.init(config: config, task: task, answers: .labels(LabelMatcher.readLabels(labelsPath)))
    }

    /// An export of `task` whose answers are JSON objects, checked against the JSON schema at `schemaPath` (the
    /// FORMATS.md §9 subset) or, when nil, kept when they are flat objects.
    public init(config: GatewayConfig, task: String, schemaPath: String?) throws(DataError) {
        try self.init(config: config, task: task, answers: .structured(schemaPath: schemaPath))
    }

    /// An export of `task` whose answers are `answers`.
    public init(config: GatewayConfig, task: String, answers: Answers) throws(DataError) {
        guard config.routes.values.contains(where: { $0.capture == task }) else {
            throw DataError(
                .usage, "no route captures task \"\(task)\" (add capture: \(task) to a route)", file: config.file)
        }
        self.config = config
        self.task = task
        self.answers = answers
    }

    /// The row's `teacher` for an answer, nil when it is not one of the answers sought (no label of the set; no flat
    /// JSON object, or one the schema does not admit).
    func teacher(for capture: Capture, summary: inout Summary) -> JSON? {
        var teacher: JSON
        switch answers {
        case .labels(let labels):
            guard let label = LabelMatcher.label(for: capture.answer, in: labels) else { return nil }
            teacher = ["label": .string(label)]
            if let alternatives = capture.topLogprobs,
                let logprobs = LabelMatcher.logprobs(alternatives, labels: labels)
            {
                teacher["logprobs"] = .object(logprobs.mapValues { JSON.number($0) })
                summary.withLogprobs += 1
            }
        case .structured:
            guard answers.admits(structured: capture.answer) else { return nil }
            teacher = ["text": .string(capture.answer)]
        }
        teacher["usage"] = ["input_tokens": .int(capture.inputTokens), "output_tokens": .int(capture.outputTokens)]
        teacher["latency_ms"] = .number((capture.latencyMilliseconds * 10).rounded() / 10)
        teacher["model"] = .string(capture.model)
        return teacher
    }

    /// What a rejected answer was not, for messages.
    public var rejectedWhat: String { answers.rejectedWhat }

    /// Which split an id falls in: SHA-256 of the id, 80% train, 10% validation, 10% test.
    public static func split(of id: String) -> String {
        let digest = Array(SHA256.hash(data: Data(id.utf8)))
        let value = digest.prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        let unit = Double(value) / Double(UInt32.max)
        return unit < 0.8 ? "train" : unit < 0.9 ? "validation" : "test"
    }

    /// Writes the task folder `out` whole (a temporary folder renamed at the end).
    public func write(to out: String) throws -> Summary {
        let ledger = try Ledger(config: config)
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
            guard let teacher = self.teacher(for: capture, summary: &summary) else {
                summary.rejected += 1
                rejected.append(
                    Labeler.rejectedLine(id: id, input: capture.input, answer: capture.answer, model: capture.model))
                continue
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
                "the \(name) split would be empty (\(summary.train)/\(summary.validation)/\(summary.test) rows kept of \(captures.count) captured; \(summary.rejected) \(rejectedWhat), \(summary.otherModel) from another model): capture more traffic first",
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
        var taskJSON: JSON = [
            "name": .string(task), "kind": "text", "teacher": teacherInfo,
            "source": .string(
                "retort capture export: \(captures.count) requests captured by the gateway (ledger \(config.ledgerPath)); \(summary.rejected) answers \(rejectedWhat) and \(summary.otherModel) served by another model than \(summary.model) set aside"
            ),
        ]
        if case .structured(let schema) = answers {
            taskJSON["kind"] = .string(TaskKind.structured.rawValue)
            if let schema { taskJSON["schema"] = schema.json }
        }
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

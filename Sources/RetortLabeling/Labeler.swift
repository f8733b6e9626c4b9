import Foundation
import Logging
import RetortData
import RetortTeacher
import Synchronization

/// `retort label`: unlabeled inputs → teacher rows (FORMATS.md §1, §7) through a gateway route, paying each answer once.
public struct Labeler: Sendable {
    /// What to label and how.
    public struct Options: Sendable {
        /// The route whose deployments answer.
        public var route: String
        /// The prompt file (FORMATS.md §7).
        public var promptPath: String
        /// The inputs (JSONL rows with `input`, optional `id` and `gold`).
        public var inputsPath: String
        /// Where the rows go (written whole at the end).
        public var outPath: String
        /// `--soft sample:K`: K answers at temperature 1 per row, written as their empirical distribution.
        public var samples: Int?
        /// `--fallback any`: allow deployments serving another model.
        public var fallbackAny = false
        /// Whose key's budgets apply (`--key-user`).
        public var keyUser: String?
        /// Requests in flight.
        public var concurrency = 4
        /// `--quote`: label a sample of 20 rows and project the bill.
        public var quote = false
        /// `--batch`: send what is not cached through the first deployment's batch API (at its discount).
        public var batch = false
        /// Seconds between batch status polls.
        public var batchPollSeconds = 10.0
        /// How long to wait for a batch before stopping (it resumes on the next run).
        public var batchTimeoutSeconds = 86_400.0

        /// Options for labelling `inputsPath` into `outPath` through `route` with `promptPath`.
        public init(route: String, promptPath: String, inputsPath: String, outPath: String) {
            self.route = route
            self.promptPath = promptPath
            self.inputsPath = inputsPath
            self.outPath = outPath
        }
    }

    /// What a run did.
    public struct Summary: Sendable {
        /// Input rows.
        public var rows = 0
        /// Rows written with a label.
        public var labelled = 0
        /// Rows whose answer matched no label, or for a structured prompt was no valid object under the schema
        /// (written to the `.rejected.jsonl` file).
        public var rejected = 0
        /// Whether the prompt was structured (answers are JSON objects; `logprobRows` counts rows with
        /// `teacher.tokens`).
        public var structured = false
        /// Deployments (`provider/model`) of a structured run that take no `response_format` (Anthropic): the prompt
        /// alone carries the schema to them.
        public var schemaInPromptOnly: [String] = []
        /// Whether a structured prompt's templates use `{{schema}}`.
        public var promptShowsSchema = true
        /// Answers taken from the cache.
        public var cacheHits = 0
        /// Answers paid for in this run.
        public var paidCalls = 0
        /// USD paid in this run.
        public var paidUSD = 0.0
        /// USD of every answer used, cached ones at what they cost when paid.
        public var answersUSD = 0.0
        /// Tokens of every answer used.
        public var tokens = 0
        /// Sum of the answers' latencies, in seconds.
        public var answerSeconds = 0.0
        /// Rows whose soft label came from logprobs.
        public var logprobRows = 0
        /// Rows with a hard label only (no logprobs, or labels sharing a first token).
        public var hardRows = 0
        /// Rows where alternatives started several labels (hard label kept; never guessed).
        public var ambiguousRows = 0
        /// Answers per served model.
        public var models: [String: Int] = [:]
        /// The `--quote` line, when quoting.
        public var quote: String?
        /// 429 answers met (each slowed the run down instead of failing it).
        public var rateLimited = 0
        /// Workers still running at the end (halved on each 429).
        public var finalConcurrency = 0
    }

    /// Labelling stopped: a budget, or every deployment failed.
    public struct Stopped: Error, Sendable, CustomStringConvertible {
        /// Why, with the figures and what was done.
        public let description: String
    }

    let config: GatewayConfig
    let configPath: String
    let options: Options
    let environment: @Sendable (String) -> String?

    /// A labeller over the gateway config at `configPath`.
    public init(
        config: GatewayConfig, configPath: String, options: Options,
        environment: @escaping @Sendable (String) -> String? = { ProcessInfo.processInfo.environment[$0] }
    ) {
        self.config = config
        self.configPath = configPath
        self.options = options
        self.environment = environment
    }

    /// One input row.
    struct InputRow: Sendable {
        var id: String
        var input: String
        /// A label's gold (a string), or a structured row's gold object.
        var gold: JSON?
    }

    /// The rows of `path`; with `structured`, a `gold` must be a flat JSON object (FORMATS.md §9), else a string.
    static func readInputs(_ path: String, structured: Bool = false) throws(DataError) -> [InputRow] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw DataError(.missingInput, "cannot read the inputs", file: path)
        }
        var rows: [InputRow] = []
        var ids = Set<String>()
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            guard let json = try? JSON.parse(trimmed), json.object != nil else {
                throw DataError(
                    .badData, "not a JSON object; write one {\"input\": \"...\"} per line", file: path, line: index + 1)
            }
            guard let input = json["input"]?.string else {
                throw DataError(.badData, "\"input\" must be a string (the text to label)", file: path, line: index + 1)
            }
            let id = json["id"]?.string ?? String(index + 1)
            guard ids.insert(id).inserted else {
                throw DataError(.badData, "id \"\(id)\" appears twice; ids must be unique", file: path, line: index + 1)
            }
            var gold: JSON?
            if structured, let object = json["gold"], !object.isNull {
                do {
                    let raw = try JSONSerialization.jsonObject(with: object.data, options: [.fragmentsAllowed])
                    _ = try StructuredAnswer(jsonObject: raw, named: "\"gold\"")
                } catch let error as DataError {
                    throw DataError(.badData, error.message, file: path, line: index + 1)
                } catch {
                    throw DataError(.badData, "\"gold\" is not readable JSON", file: path, line: index + 1)
                }
                gold = object
            } else {
                gold = json["gold"]?.string.map { JSON.string($0) }
            }
            rows.append(InputRow(id: id, input: input, gold: gold))
        }
        guard !rows.isEmpty else { throw DataError(.badData, "no rows to label", file: path) }
        return rows
    }

    /// One answer used for a row.
    struct Answer: Sendable {
        var entry: LabelCache.Entry
        var cached: Bool
    }

    /// Labels the file (or, with `quote`, a sample of it): the batch API first with `batch`, then every answer the
    /// cache does not hold, then the teacher rows written whole (or the projected bill).
    public func run(log: @escaping @Sendable (String) -> Void = { _ in }) async throws -> Summary {
        let run = try prepare()
        if options.batch, !options.quote, let deployment = run.route.eligibleDeployments.first {
            try await labelInBatch(run, deployment: deployment, log: log)
        }
        let answered = try await answerAll(run)
        var (summary, lines, rejected) = teacherRows(run, answers: answered.answers)
        summary.rateLimited = answered.rateLimited
        summary.finalConcurrency = answered.finalConcurrency
        if options.quote {
            summary.quote = quoteLine(summary, run: run)
            return summary
        }
        try writeOutputs(lines: lines, rejected: rejected)
        return summary
    }

    /// A `.rejected.jsonl` line: an answer that matched no label (FORMATS.md §7), never a teacher row.
    static func rejectedLine(id: String, input: String, answer: String, model: String) -> String {
        JSON(
            dictionaryLiteral: ("id", .string(id)), ("input", .string(input)), ("answer", .string(answer)),
            ("model", .string(model))
        )
        .text
    }

    /// `OUT` with `.jsonl` replaced by `.rejected.jsonl` (or `.rejected.jsonl` appended).
    static func rejectedPath(for outPath: String) -> String {
        outPath.hasSuffix(".jsonl") ? String(outPath.dropLast(6)) + ".rejected.jsonl" : outPath + ".rejected.jsonl"
    }

    /// Writes `lines` to a temporary file beside `path`, then renames it over `path`.
    static func writeWhole(_ lines: [String], to path: String) throws(DataError) {
        let temporary = path + ".partial-\(ProcessInfo.processInfo.processIdentifier)"
        let text = lines.joined(separator: "\n") + (lines.isEmpty ? "" : "\n")
        do {
            try text.write(toFile: temporary, atomically: false, encoding: .utf8)
            if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
            try FileManager.default.moveItem(atPath: temporary, toPath: path)
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            throw DataError(.cannotCreateOutput, "cannot write the output: \(FileProblem.reason(error))", file: path)
        }
    }
}

extension Labeler.Summary {
    /// What `retort label` prints after a run that wrote `out` (`samples`: `--soft sample:K`): the kind of labels,
    /// rate limits met, rejected rows, the models that answered and the bill.
    public func lines(out: String, samples: Int?) -> [String] {
        if structured { return structuredLines(out: out) }
        let kind: String
        if let samples {
            kind = "soft labels from \(samples) samples per row at temperature 1"
        } else if hardRows == 0 {
            kind = "soft labels from the answers' top logprobs"
        } else if logprobRows == 0 {
            kind =
                "hard labels only: the deployment returned no usable logprobs (use --soft sample:K for a distribution)"
        } else {
            kind =
                "\(logprobRows) rows with logprobs, \(hardRows) hard (\(ambiguousRows) where alternatives started several labels)"
        }
        return ["labelled \(labelled) of \(rows) rows into \(out): \(kind)"]
            + closingLines(rejectedAs: "rows answered with no label")
    }

    /// The lines every run ends with: the rate limits met, the rejected rows (`rejectedAs` says what they are), the
    /// models that answered and the bill.
    func closingLines(rejectedAs rejectedText: String) -> [String] {
        var lines: [String] = []
        if rateLimited > 0 {
            lines.append(
                "\(rateLimited) answers were 429 (rate limited): waited and went on with \(finalConcurrency) requests in flight"
            )
        }
        if rejected > 0 {
            lines.append("\(rejected) \(rejectedText): see the .rejected.jsonl file beside the output")
        }
        let answered = models.sorted { $0.key < $1.key }.map { "\($0.key) (\($0.value))" }
        lines.append("answered by: \(answered.joined(separator: ", "))")
        lines.append(
            String(
                format: "bill: %d paid calls, $%.4f; %d answers from the cache (worth $%.4f); %d tokens", paidCalls,
                paidUSD, cacheHits, answersUSD - paidUSD, tokens))
        return lines
    }
}

extension Labeler.Summary {
    /// The lines of a structured run: rows written, the deployments the prompt alone told the schema, rejected rows,
    /// the models that answered and the bill.
    func structuredLines(out: String) -> [String] {
        let tokens =
            logprobRows == 0
            ? "no token logprobs"
            : logprobRows == labelled ? "teacher.tokens on every row" : "teacher.tokens on \(logprobRows) rows"
        var lines = ["labelled \(labelled) of \(rows) rows into \(out): JSON answers valid under the schema, \(tokens)"]
        if !schemaInPromptOnly.isEmpty {
            lines.append(
                "\(schemaInPromptOnly.joined(separator: ", ")) take no response_format: only the prompt carries the schema"
                    + (promptShowsSchema ? " ({{schema}})" : ", and it does not use {{schema}}: add it to the prompt"))
        }
        return lines + closingLines(rejectedAs: "rows answered with no valid JSON object under the schema")
    }
}

/// A value behind a lock, shareable between tasks.
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    func withLock<Result: Sendable>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        try mutex.withLock { try body(&$0) }
    }
}

import ArgumentParser
import Foundation
import RetortData
import RetortLabeling
import RetortTeacher

struct Label: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Label unlabeled inputs through a gateway route into teacher rows, paying for each answer once.",
        discussion: """
            Renders each input into the prompt (FORMATS.md §7), asks the route's deployments (the first one's model only,
            unless --fallback any), turns the answer's first-token top logprobs into teacher.logprobs, and writes OUT whole.
            Answers are cached in var/label-cache.sqlite beside the config, so a second run, or a run after kill -9, pays
            only for what was not answered yet. Paid calls go into the gateway's ledger; --key-user's budgets apply.

            A prompt with schema: (or schema_file:) instead of labels labels a structured task (FORMATS.md §9): {{schema}}
            expands to the schema's compact JSON, the request carries response_format (a json_schema; Anthropic
            deployments take none, so the prompt alone carries the schema there), and an answer is kept as teacher.text
            (with teacher.tokens when top_logprobs came back) when it is one flat JSON object the schema admits; the
            others go to the .rejected.jsonl file. Put the rows in a task folder whose task.json says
            "kind": "structured" (with the schema) to search it.
            """)

    @Argument(help: "The inputs: JSONL rows with \"input\" (text), optional \"id\" and \"gold\".") var inputs: String
    @Option(help: "The gateway config (YAML).") var config: String
    @Option(help: "The route whose deployments answer.") var route: String
    @Option(help: "The labelling prompt (YAML, FORMATS.md §7).") var prompt: String
    @Option(help: "Where the teacher rows go (JSONL).") var out: String?
    @Option(help: "sample:K — ask K times at temperature 1 and write the empirical distribution.") var soft: String?
    @Option(help: "same-model (default: the exact teacher) or any.") var fallback = "same-model"
    @Option(help: "Whose key's budgets apply.") var keyUser: String?
    @Option(help: "Requests in flight.") var concurrency = 4
    @Flag(help: "Label a sample of 20 rows and print the projected bill for the whole file.") var quote = false
    @Flag(
        help:
            "Send what is not cached through the provider's batch API (OpenAI /v1/batches, Anthropic message batches).")
    var batch = false
    @Option(help: "Seconds between batch status polls.") var batchPollSeconds = 10.0
    @Option(help: "Seconds to wait for a batch before stopping (the next run resumes it).") var batchTimeout = 86_400.0

    func validate() throws {
        try OptionChecks.integer(concurrency, "--concurrency", in: 1...10_000)
        try OptionChecks.number(batchPollSeconds, "--batch-poll-seconds", in: .positive(upTo: 86_400), unit: "seconds")
        try OptionChecks.number(
            batchTimeout, "--batch-timeout", in: .positive(upTo: 30 * 86_400), unit: "seconds")
        if let soft {
            guard soft.hasPrefix("sample:"), let count = Int(soft.dropFirst(7)), (2...100).contains(count) else {
                throw ValidationError("--soft: write sample:K with K in [2, 100], e.g. sample:5")
            }
        }
    }

    func run() async throws {
        try await ErrorReporting.run {
            var options = Labeler.Options(route: route, promptPath: prompt, inputsPath: inputs, outPath: out ?? "")
            guard quote || out != nil else { throw DataError(.usage, "give --out FILE (or --quote)") }
            if let soft {
                guard soft.hasPrefix("sample:"), let count = Int(soft.dropFirst(7)), count >= 2 else {
                    throw DataError(.usage, "--soft: write sample:K with K ≥ 2, e.g. sample:5")
                }
                options.samples = count
            }
            guard ["same-model", "any"].contains(fallback) else {
                throw DataError(.usage, "--fallback: same-model or any")
            }
            options.fallbackAny = fallback == "any"
            options.keyUser = keyUser
            options.concurrency = max(1, concurrency)
            options.quote = quote
            options.batch = batch
            options.batchPollSeconds = batchPollSeconds
            options.batchTimeoutSeconds = batchTimeout
            let loaded = try GatewayConfig.load(config)
            do {
                let summary = try await Labeler(config: loaded, configPath: config, options: options).run { line in
                    FileHandle.standardError.write(Data((line + "\n").utf8))
                }
                if let line = summary.quote {
                    print(line)
                    return
                }
                for line in summary.lines(out: out ?? "", samples: options.samples) { print(line) }
            } catch let stopped as Labeler.Stopped {
                FileHandle.standardError.write(Data("error: \(stopped.description)\n".utf8))
                throw ExitCode(75)
            }
        }
    }
}

struct CaptureCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "capture",
        abstract: "Teacher rows from the traffic of a gateway route with capture: TASK.",
        subcommands: [Export.self]
    )

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a task folder (train/validation/test.jsonl, task.json) from a task's captured requests.",
            discussion: """
                A label task (--labels FILE): answers are matched to the label set (case, whitespace, surrounding
                punctuation). A structured task (FORMATS.md §9; --schema schema.json, or --structured to infer the
                schema from the train answers when the task loads): an answer is kept as teacher.text when it parses as
                one flat JSON object (and the schema admits it); task.json says "kind": "structured" and carries the
                schema given. Answers that are no label (no such object), and answers another model served, are
                counted and set aside in rejected.jsonl and other-models.jsonl, never mixed in. The split is by a hash
                of each row's id. task.json's teacher latency and cost come from the ledger.
                """)
        @Option(help: "The gateway config (YAML).") var config: String
        @Option(help: "The task name a route captures for.") var task: String
        @OptionGroup var answers: AnswerOptions
        @Option(help: "The task folder to write.") var out: String

        func run() async throws {
            try await ErrorReporting.run {
                let sought = try answers.resolve()
                let export = try CaptureExport(config: try GatewayConfig.load(config), task: task, answers: sought)
                let summary = try export.write(to: out)
                let logprobs = answers.labels == nil ? "" : "; \(summary.withLogprobs) rows with logprobs"
                print(
                    "wrote \(out): \(summary.train)/\(summary.validation)/\(summary.test) train/validation/test rows from \(summary.captured) captured requests (teacher \(summary.model)\(logprobs))"
                )
                if summary.rejected > 0 {
                    print("\(summary.rejected) answers were \(export.rejectedWhat): \(out)/rejected.jsonl")
                }
                if summary.otherModel > 0 {
                    print(
                        "\(summary.otherModel) answers came from another model than \(summary.model): \(out)/other-models.jsonl"
                    )
                }
            }
        }
    }
}

struct Ingest: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Teacher rows from logs you already have, without calling any model.",
        subcommands: [OpenAILog.self, LedgerCaptures.self]
    )

    struct OpenAILog: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "openai-log",
            abstract: "Chat-completion request/response pairs (JSONL) or OpenAI batch output files → teacher rows.",
            discussion: """
                Label rows (--labels FILE: teacher.label, logprobs from the first token's alternatives) or structured
                rows (FORMATS.md §9; --schema schema.json or --structured: teacher.text when the answer is one flat
                JSON object the schema admits, tokens from the answer's logprobs.content when the log kept them).
                Other answers go to OUT's .rejected.jsonl.
                """)
        @Argument(help: "The log: {\"request\", \"response\"} lines, or batch output lines (with --requests).") var log:
            String
        @Option(help: "The batch input file (custom_id + body) that a batch output answers.") var requests: String?
        @OptionGroup var answers: AnswerOptions
        @Option(help: "What of the request is the row's input: {{last_user}}, {{first_user}}, {{system}}.")
        var inputTemplate = "{{last_user}}"
        @Option(help: "Where the rows go (JSONL, written whole).") var out: String

        func run() async throws {
            try await ErrorReporting.run {
                let ingest = LogIngest(answers: try answers.resolve(), inputTemplate: inputTemplate)
                let summary = try ingest.run(logPath: log, requestsPath: requests, outPath: out)
                print(
                    "wrote \(summary.rows) rows to \(out) from \(summary.lines) log lines (\(summary.withLogprobs) with logprobs); \(summary.rejected) answers \(ingest.answers.rejectedWhat), \(summary.failed) lines without an answer"
                )
                if summary.models.count > 1 {
                    let models = summary.models.sorted { $0.key < $1.key }.map { "\($0.key) (\($0.value))" }
                    print("note: the rows come from \(summary.models.count) models: \(models.joined(separator: ", "))")
                }
            }
        }
    }

    struct LedgerCaptures: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ledger",
            abstract: "The gateway ledger's captured requests of a task → a task folder (same as `capture export`).")
        @Option(help: "The gateway config (YAML).") var config: String
        @Option(help: "The task name a route captures for.") var task: String
        @Option(help: "The label set, one label per line.") var labels: String
        @Option(help: "The task folder to write.") var out: String

        func run() async throws {
            try await ErrorReporting.run {
                let summary = try CaptureExport(config: try GatewayConfig.load(config), task: task, labelsPath: labels)
                    .write(to: out)
                print(
                    "wrote \(out): \(summary.train)/\(summary.validation)/\(summary.test) rows from \(summary.captured) captured requests; \(summary.rejected) not a label, \(summary.otherModel) from another model"
                )
            }
        }
    }
}

/// What the answers of captured or logged requests are: `--labels FILE`, `--schema FILE` or `--structured`.
struct AnswerOptions: ParsableArguments {
    @Option(help: "The label set, one label per line (a label task).") var labels: String?
    @Option(help: "A structured task's JSON schema (FORMATS.md §9): answers must be objects it admits.")
    var schema: String?
    @Flag(help: "A structured task whose schema is inferred from the answers: any flat JSON object is kept.")
    var structured = false

    /// The answers sought; exactly one of the three options must be given.
    func resolve() throws -> CaptureExport.Answers {
        let given = [labels.map { _ in "--labels" }, schema.map { _ in "--schema" }, structured ? "--structured" : nil]
            .compactMap { $0 }
        guard given.count == 1 else {
            throw DataError(
                .usage,
                given.isEmpty
                    ? "say what the answers are: --labels FILE (a label set), --schema FILE or --structured (JSON objects)"
                    : "give one of --labels, --schema and --structured, not \(given.joined(separator: " and "))")
        }
        if let labels { return .labels(try LabelMatcher.readLabels(labels)) }
        return try .structured(schemaPath: schema)
    }
}

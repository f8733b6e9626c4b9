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
        /// Rows whose answer matched no label (written to the `.rejected.jsonl` file).
        public var rejected = 0
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
        var gold: String?
    }

    static func readInputs(_ path: String) throws(DataError) -> [InputRow] {
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
            rows.append(InputRow(id: id, input: input, gold: json["gold"]?.string))
        }
        guard !rows.isEmpty else { throw DataError(.badData, "no rows to label", file: path) }
        return rows
    }

    /// One answer used for a row.
    struct Answer: Sendable {
        var entry: LabelCache.Entry
        var cached: Bool
    }

    /// Labels the file (or, with `quote`, a sample of it).
    public func run(log: @escaping @Sendable (String) -> Void = { _ in }) async throws -> Summary {
        let prompt = try LabelPrompt.load(options.promptPath)
        let allInputs = try Labeler.readInputs(options.inputsPath)
        let total = allInputs.count
        let inputs = options.quote ? Array(allInputs.prefix(20)) : allInputs
        guard var chosenRoute = config.routes[options.route] else {
            throw DataError(
                .usage, "no route \"\(options.route)\"; routes: \(config.routes.keys.sorted().joined(separator: ", "))",
                file: configPath)
        }
        if !options.fallbackAny { chosenRoute.fallback = .sameModel }
        let key: ClientKey
        if let user = options.keyUser {
            guard let found = config.keys.values.first(where: { $0.user == user }) else {
                throw DataError(.usage, "no key of user \"\(user)\" in the config", file: configPath)
            }
            key = found
        } else {
            key = ClientKey(sha256: String(repeating: "0", count: 64), user: "label", team: "")
        }
        let folder = (configPath as NSString).deletingLastPathComponent
        let cache = try LabelCache(
            path: ((folder.isEmpty ? "." : folder) as NSString).appendingPathComponent("var/label-cache.sqlite"))
        let ledger = try Ledger(path: config.ledgerPath)
        let budgets = try BudgetBook(config: config, ledger: ledger)
        let breakers = BreakerBoard(policy: config.breaker)
        var logger = Logger(label: "retort.label")
        logger.logLevel = .error
        let dispatcher = Dispatcher(breakers: breakers, logger: logger, environment: environment)
        let session = "label-\(Int(Date().timeIntervalSince1970))"
        let models = chosenRoute.eligibleDeployments.map(\.model)
        let samples = options.samples ?? 1
        let sampling = options.samples != nil

        if options.batch, !options.quote, let deployment = chosenRoute.eligibleDeployments.first {
            var items: [BatchRunner.Item] = []
            var seen = Set<String>()
            for row in inputs {
                for sample in 0..<samples {
                    let body = prompt.request(route: chosenRoute.name, input: row.input, id: row.id, sampling: sampling)
                    let cacheKey = LabelCache.key(model: deployment.model, body: body, sample: sampling ? sample : nil)
                    if try cache.get(cacheKey) == nil, seen.insert(cacheKey).inserted {
                        items.append(BatchRunner.Item(key: cacheKey, body: body))
                    }
                }
            }
            if !items.isEmpty {
                let runner = BatchRunner(
                    deployment: deployment, apiKey: deployment.providerConfig.apiKeyEnv.flatMap(environment),
                    cache: cache,
                    pollSeconds: options.batchPollSeconds, timeoutSeconds: options.batchTimeoutSeconds)
                switch try await runner.run(items, ledger: ledger, key: key, route: chosenRoute.name, log: log) {
                case .inProgress(let id, let status):
                    throw Stopped(
                        description:
                            "batch \(id) is \(status) after \(Int(options.batchTimeoutSeconds)) s; run the same command again to resume it (it is not submitted twice)"
                    )
                case .finished(let answered, let failed):
                    log("batch finished: \(answered) answers cached, \(failed) failed (those are asked one by one)")
                }
            }
        }

        // Every (row, sample) request, answered by workers that commit each answer before their next request.
        let route = chosenRoute
        let jobs = inputs.indices.flatMap { row in (0..<samples).map { (row, $0) } }
        let next = Locked(0)
        let answers = Locked<[[Answer?]]>(Array(repeating: Array(repeating: nil, count: samples), count: inputs.count))
        let stop = Locked<String?>(nil)
        // 429s halve the number of workers (never below one) instead of failing the run.
        let allowedWorkers = Locked(max(1, options.concurrency))
        let rateLimited = Locked(0)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<max(1, options.concurrency) {
                group.addTask {
                    while stop.withLock({ $0 }) == nil, worker < allowedWorkers.withLock({ $0 }) {
                        let index = next.withLock { value in
                            defer { value += 1 }
                            return value
                        }
                        guard index < jobs.count else { return }
                        let (row, sample) = jobs[index]
                        let body = prompt.request(
                            route: route.name, input: inputs[row].input, id: inputs[row].id, sampling: sampling)
                        let sampleIndex = sampling ? sample : nil
                        if let hit = try models.lazy.compactMap({
                            try cache.get(LabelCache.key(model: $0, body: body, sample: sampleIndex))
                        }).first {
                            answers.withLock { $0[row][sample] = Answer(entry: hit, cached: true) }
                            continue
                        }
                        let bounds = RequestBounds.tokens(body)
                        let maxTokens = Double(bounds.prompt + bounds.output)
                        let reservation: Reservation
                        switch budgets.reserve(
                            key: key, usd: maxTokens * route.highestPerMTok / 1_000_000, tokens: maxTokens)
                        {
                        case .success(let held): reservation = held
                        case .failure(let error):
                            stop.withLock { $0 = $0 ?? error.refusal.summary }
                            return
                        }
                        let requestStart = Date()
                        let outcome = await dispatcher.dispatch(
                            body, route: route, stream: false, retry: config.retry,
                            estimatedTokens: bounds.prompt + bounds.output, patient: true,
                            onRateLimited: {
                                rateLimited.withLock { $0 += 1 }
                                allowedWorkers.withLock { $0 = max(1, $0 / 2) }
                            })
                        let latency = Date().timeIntervalSince(requestStart) * 1000
                        guard case .completed(let answer, let deployment, let attempts, let failover) = outcome else {
                            budgets.settle(reservation, usd: 0, tokens: 0)
                            let reason: String =
                                switch outcome {
                                case .unavailable(_, let reasons):
                                    "every deployment failed: " + reasons.joined(separator: "; ")
                                case .refused(let status, let message, let deployment, _):
                                    "\(deployment.id) refused (HTTP \(status)): \(message)"
                                case .invalid(let message, _): message
                                default: "no answer"
                                }
                            stop.withLock { $0 = $0 ?? reason }
                            return
                        }
                        let cost = deployment.price.cost(of: answer.usage)
                        budgets.settle(reservation, usd: cost, tokens: Double(answer.usage.total))
                        try ledger.record(
                            LedgerRow(
                                time: requestStart.timeIntervalSince1970, keyHash: key.sha256, user: key.user,
                                team: key.team, route: route.name, deployment: deployment.id,
                                servedModel: deployment.model, session: session, usage: answer.usage, costUSD: cost,
                                latencyMilliseconds: latency, timeToFirstTokenMilliseconds: latency, status: 200,
                                attempts: attempts, failover: failover))
                        let entry = LabelCache.Entry(
                            model: answer.servedModel, body: answer.body, costUSD: cost, tokens: answer.usage.total,
                            latencyMilliseconds: latency)
                        try cache.put(LabelCache.key(model: deployment.model, body: body, sample: sampleIndex), entry)
                        answers.withLock { $0[row][sample] = Answer(entry: entry, cached: false) }
                    }
                }
            }
            try await group.waitForAll()
        }
        let collected = answers.withLock { $0 }
        let done = collected.filter { $0.allSatisfy { $0 != nil } }.count
        if let reason = stop.withLock({ $0 }) {
            throw Stopped(
                description:
                    "labelling stopped: \(reason); \(done) of \(inputs.count) rows are answered and cached (run again to resume; nothing is paid twice)"
            )
        }

        var summary = Summary()
        summary.rows = inputs.count
        summary.rateLimited = rateLimited.withLock { $0 }
        summary.finalConcurrency = allowedWorkers.withLock { $0 }
        var lines: [String] = []
        var rejected: [String] = []
        for (index, row) in inputs.enumerated() {
            let rowAnswers = collected[index].compactMap { $0 }
            for answer in rowAnswers {
                if answer.cached {
                    summary.cacheHits += 1
                } else {
                    summary.paidCalls += 1
                    summary.paidUSD += answer.entry.costUSD
                }
                summary.answersUSD += answer.entry.costUSD
                summary.tokens += answer.entry.tokens
                summary.answerSeconds += answer.entry.latencyMilliseconds / 1000
                summary.models[answer.entry.model, default: 0] += 1
            }
            let texts = rowAnswers.map { $0.entry.body["choices"]?[0]?["message"]?["content"]?.string ?? "" }
            let matched = texts.map { LabelMatcher.label(for: $0, in: prompt.labels) }
            let model = rowAnswers.first?.entry.model ?? ""
            var teacher: JSON = [:]
            if sampling {
                var counts: [String: Int] = [:]
                for label in matched.compactMap({ $0 }) { counts[label, default: 0] += 1 }
                guard let top = counts.max(by: { ($0.value, $1.key) < ($1.value, $0.key) }) else {
                    summary.rejected += 1
                    rejected.append(
                        Labeler.rejectedLine(id: row.id, input: row.input, answer: texts.first ?? "", model: model))
                    continue
                }
                teacher["label"] = .string(top.key)
                teacher["probs"] = .object(counts.mapValues { JSON.number(Double($0) / Double(samples)) })
            } else {
                guard let label = matched.first ?? nil else {
                    summary.rejected += 1
                    rejected.append(
                        Labeler.rejectedLine(id: row.id, input: row.input, answer: texts.first ?? "", model: model))
                    continue
                }
                teacher["label"] = .string(label)
                if let alternatives = rowAnswers.first.flatMap({ LabelMatcher.firstTokenAlternatives($0.entry.body) }) {
                    if let logprobs = LabelMatcher.logprobs(alternatives, labels: prompt.labels) {
                        teacher["logprobs"] = .object(logprobs.mapValues { JSON.number($0) })
                        summary.logprobRows += 1
                    } else {
                        summary.ambiguousRows += 1
                        summary.hardRows += 1
                    }
                } else {
                    summary.hardRows += 1
                }
            }
            let usage = rowAnswers.reduce(TokenUsage()) { total, answer in
                var sum = total
                let used = TokenUsage(openAI: answer.entry.body["usage"] ?? [:])
                sum.inputUncached += used.inputUncached + used.cacheRead + used.cacheWrite
                sum.output += used.output
                return sum
            }
            teacher["usage"] = ["input_tokens": .int(usage.inputUncached), "output_tokens": .int(usage.output)]
            teacher["latency_ms"] = .number(
                (rowAnswers.map { $0.entry.latencyMilliseconds }.reduce(0, +) * 10).rounded() / 10)
            teacher["model"] = .string(model)
            var line: JSON = ["id": .string(row.id), "input": .string(row.input), "teacher": teacher]
            if let gold = row.gold { line["gold"] = .string(gold) }
            lines.append(line.text)
            summary.labelled += 1
        }
        if options.quote {
            let perRow = summary.answersUSD / Double(max(1, inputs.count))
            let tokensPerRow = Double(summary.tokens) / Double(max(1, inputs.count))
            let secondsPerRow = summary.answerSeconds / Double(max(1, inputs.count))
            let projected = perRow * Double(total)
            summary.quote = String(
                format: "projected: $%.4f for %d rows (batch: $%.4f), %.0f tokens, about %.0f s", projected, total,
                projected * 0.5, tokensPerRow * Double(total),
                secondsPerRow * Double(total) / Double(max(1, options.concurrency)))
            return summary
        }
        try Labeler.writeWhole(lines, to: options.outPath)
        let rejectedPath = Labeler.rejectedPath(for: options.outPath)
        if rejected.isEmpty {
            try? FileManager.default.removeItem(atPath: rejectedPath)
        } else {
            try Labeler.writeWhole(rejected, to: rejectedPath)
        }
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

/// A value behind a lock, shareable between tasks.
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    func withLock<Result: Sendable>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        try mutex.withLock { try body(&$0) }
    }
}

import Foundation
import Logging
import RetortData
import RetortTeacher

extension Labeler {
    /// What one run works with: the prompt, the rows, the route, the key, the cache and the teacher's books.
    struct Run: Sendable {
        /// The prompt file.
        var prompt: LabelPrompt
        /// The rows this run labels (a sample of 20 with `--quote`).
        var inputs: [InputRow]
        /// Rows in the inputs file.
        var total: Int
        /// The route, with `fallback: same-model` unless `--fallback any`.
        var route: RouteConfig
        /// Whose budgets apply.
        var key: ClientKey
        /// Answers already paid for.
        var cache: LabelCache
        /// The gateway's ledger (every paid answer is a row).
        var ledger: Ledger
        /// The gateway's budgets.
        var budgets: BudgetBook
        /// Sends requests to the route's deployments.
        var dispatcher: Dispatcher
        /// The ledger session of this run.
        var session: String
        /// Answers per row.
        var samples: Int
        /// `--soft sample:K`.
        var sampling: Bool
        /// The models of the route's deployments (a cached answer of any of them is used).
        var models: [String] { route.eligibleDeployments.map(\.model) }
    }

    /// Opens what a run needs: the prompt, the inputs, the route, the key, the cache, the ledger and the budgets.
    func prepare() throws -> Run {
        let prompt = try LabelPrompt.load(options.promptPath)
        if prompt.isStructured, let samples = options.samples {
            throw DataError(
                .usage,
                "--soft sample:\(samples) is for a label set; a structured prompt's answer is one JSON object per row "
                    + "(leave --soft out)",
                file: options.promptPath)
        }
        let allInputs = try Labeler.readInputs(options.inputsPath, structured: prompt.isStructured)
        let inputs = options.quote ? Array(allInputs.prefix(20)) : allInputs
        guard var route = config.routes[options.route] else {
            throw DataError(
                .usage, "no route \"\(options.route)\"; routes: \(config.routes.keys.sorted().joined(separator: ", "))",
                file: configPath)
        }
        if !options.fallbackAny { route.fallback = .sameModel }
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
        let ledger = try Ledger(config: config)
        let cache = try LabelCache(
            ledger: ledger,
            path: ((folder.isEmpty ? "." : folder) as NSString).appendingPathComponent("var/label-cache.sqlite"))
        let budgets = try BudgetBook(config: config, ledger: ledger)
        let breakers = BreakerBoard(policy: config.breaker)
        var logger = Logger(label: "retort.label")
        logger.logLevel = .error
        return Run(
            prompt: prompt, inputs: inputs, total: allInputs.count, route: route, key: key, cache: cache,
            ledger: ledger, budgets: budgets,
            dispatcher: Dispatcher(breakers: breakers, logger: logger, environment: environment),
            session: "label-\(Int(Date().timeIntervalSince1970))", samples: options.samples ?? 1,
            sampling: options.samples != nil)
    }

    /// `--batch`: sends what the cache does not hold through `deployment`'s batch API and caches the answers.
    func labelInBatch(_ run: Run, deployment: Deployment, log: @escaping @Sendable (String) -> Void) async throws {
        var items: [BatchRunner.Item] = []
        var seen = Set<String>()
        for row in run.inputs {
            for sample in 0..<run.samples {
                let body = run.prompt.request(
                    route: run.route.name, input: row.input, id: row.id, sampling: run.sampling)
                let cacheKey = LabelCache.key(
                    model: deployment.model, body: body, sample: run.sampling ? sample : nil)
                if try run.cache.get(cacheKey) == nil, seen.insert(cacheKey).inserted {
                    items.append(BatchRunner.Item(key: cacheKey, body: body))
                }
            }
        }
        guard !items.isEmpty else { return }
        let runner = BatchRunner(
            deployment: deployment, apiKey: deployment.providerConfig.apiKeyEnv.flatMap(environment),
            cache: run.cache,
            pollSeconds: options.batchPollSeconds, timeoutSeconds: options.batchTimeoutSeconds)
        switch try await runner.run(items, ledger: run.ledger, key: run.key, route: run.route.name, log: log) {
        case .inProgress(let id, let status):
            throw Stopped(
                description:
                    "batch \(id) is \(status) after \(Int(options.batchTimeoutSeconds)) s; run the same command again to resume it (it is not submitted twice)"
            )
        case .finished(let answered, let failed):
            log("batch finished: \(answered) answers cached, \(failed) failed (those are asked one by one)")
        }
    }

    /// Every (row, sample) answer, from the cache or the teacher.
    struct Answers: Sendable {
        /// Per row, per sample.
        var answers: [[Answer?]]
        /// 429 answers met.
        var rateLimited: Int
        /// Workers still running at the end.
        var finalConcurrency: Int
    }

    /// Asks for every (row, sample) answer with `concurrency` workers that commit each answer before their next
    /// request; 429s halve the workers (never below one). Throws `Stopped` when a budget or the deployments stop it.
    func answerAll(_ run: Run) async throws -> Answers {
        let models = run.models
        let jobs = run.inputs.indices.flatMap { row in (0..<run.samples).map { (row, $0) } }
        let next = Locked(0)
        let answers = Locked<[[Answer?]]>(
            Array(repeating: Array(repeating: nil, count: run.samples), count: run.inputs.count))
        let stop = Locked<String?>(nil)
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
                        let answer = try await self.answer(
                            run, row: run.inputs[row], sample: sample, models: models,
                            onRateLimited: {
                                rateLimited.withLock { $0 += 1 }
                                allowedWorkers.withLock { $0 = max(1, $0 / 2) }
                            })
                        switch answer {
                        case .success(let answer): answers.withLock { $0[row][sample] = answer }
                        case .failure(let reason):
                            stop.withLock { $0 = $0 ?? reason.description }
                            return
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        let collected = answers.withLock { $0 }
        if let reason = stop.withLock({ $0 }) {
            let done = collected.filter { $0.allSatisfy { $0 != nil } }.count
            throw Stopped(
                description:
                    "labelling stopped: \(reason); \(done) of \(run.inputs.count) rows are answered and cached (run again to resume; nothing is paid twice)"
            )
        }
        return Answers(
            answers: collected, rateLimited: rateLimited.withLock { $0 },
            finalConcurrency: allowedWorkers.withLock { $0 })
    }

    /// One answer: from the cache when any of the route's models answered it before, else paid for (budget reserved
    /// and settled, ledger row, cached). A failure is why the run stops.
    func answer(
        _ run: Run, row: InputRow, sample: Int, models: [String], onRateLimited: @escaping @Sendable () -> Void
    ) async throws -> Result<Answer, Stopped> {
        let body = run.prompt.request(route: run.route.name, input: row.input, id: row.id, sampling: run.sampling)
        let sampleIndex = run.sampling ? sample : nil
        if let hit = try models.lazy.compactMap({
            try run.cache.get(LabelCache.key(model: $0, body: body, sample: sampleIndex))
        }).first {
            return .success(Answer(entry: hit, cached: true))
        }
        let bounds = RequestBounds.tokens(body)
        let maxTokens = Double(bounds.prompt + bounds.output)
        let reservation: Reservation
        switch try run.budgets.reserve(
            key: run.key, usd: maxTokens * run.route.highestPerMTok / 1_000_000, tokens: maxTokens,
            lifetime: run.route.reservationLifetime(retry: config.retry))
        {
        case .success(let held): reservation = held
        case .failure(let error): return .failure(Stopped(description: error.refusal.summary))
        }
        let requestStart = Date()
        let outcome = await run.dispatcher.dispatch(
            body, route: run.route, stream: false, retry: config.retry,
            estimatedTokens: bounds.prompt + bounds.output, patient: true, onRateLimited: onRateLimited)
        let latency = Date().timeIntervalSince(requestStart) * 1000
        guard case .completed(let answer, let deployment, let attempts, let failover) = outcome else {
            run.budgets.settle(reservation, usd: 0, tokens: 0)
            if let shared = reservation.sharedID { try? run.ledger.releaseShared(reservation: shared) }
            let reason: String =
                switch outcome {
                case .unavailable(_, let reasons): "every deployment failed: " + reasons.joined(separator: "; ")
                case .refused(let status, let message, let deployment, _):
                    "\(deployment.id) refused (HTTP \(status)): \(message)"
                case .invalid(let message, _): message
                default: "no answer"
                }
            return .failure(Stopped(description: reason))
        }
        let cost = deployment.price.cost(of: answer.usage)
        run.budgets.settle(reservation, usd: cost, tokens: Double(answer.usage.total))
        var row = LedgerRow(
            time: requestStart.timeIntervalSince1970, keyHash: run.key.sha256, user: run.key.user,
            team: run.key.team, route: run.route.name, deployment: deployment.id, servedModel: deployment.model,
            session: run.session, usage: answer.usage, costUSD: cost, latencyMilliseconds: latency,
            timeToFirstTokenMilliseconds: latency, status: 200, attempts: attempts, failover: failover)
        row.reservationID = reservation.sharedID
        try run.ledger.record(row)
        let entry = LabelCache.Entry(
            model: answer.servedModel, body: answer.body, costUSD: cost, tokens: answer.usage.total,
            latencyMilliseconds: latency)
        try run.cache.put(LabelCache.key(model: deployment.model, body: body, sample: sampleIndex), entry)
        return .success(Answer(entry: entry, cached: false))
    }

    /// The teacher rows (FORMATS.md §1) and `.rejected.jsonl` lines of the answers, and the figures of the run.
    func teacherRows(_ run: Run, answers collected: [[Answer?]]) -> (
        summary: Summary, lines: [String], rejected: [String]
    ) {
        var summary = Summary()
        summary.rows = run.inputs.count
        if run.prompt.isStructured {
            summary.structured = true
            summary.schemaInPromptOnly = run.route.eligibleDeployments.filter { $0.providerConfig.kind == .anthropic }
                .map(\.id)
            summary.promptShowsSchema =
                run.prompt.user.contains("{{schema}}") || (run.prompt.system?.contains("{{schema}}") ?? false)
        }
        var lines: [String] = []
        var rejected: [String] = []
        for (index, row) in run.inputs.enumerated() {
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
            let model = rowAnswers.first?.entry.model ?? ""
            let found: JSON?
            if let schema = run.prompt.schema?.checked {
                found = Labeler.structuredTeacher(
                    text: texts.first ?? "", body: rowAnswers.first?.entry.body, schema: schema, summary: &summary)
            } else {
                let matched = texts.map { LabelMatcher.label(for: $0, in: run.prompt.labels) }
                found = teacherLabel(run, matched: matched, answers: rowAnswers, summary: &summary)
            }
            guard var teacher = found else {
                summary.rejected += 1
                rejected.append(
                    Labeler.rejectedLine(id: row.id, input: row.input, answer: texts.first ?? "", model: model))
                continue
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
            if let gold = row.gold { line["gold"] = gold }
            lines.append(line.text)
            summary.labelled += 1
        }
        return (summary, lines, rejected)
    }

    /// A row's `teacher` label: the most frequent matched label with its empirical `probs` when sampling, else the
    /// matched label with its `logprobs` where the answer has them; nil when no answer matched a label.
    func teacherLabel(_ run: Run, matched: [String?], answers: [Answer], summary: inout Summary) -> JSON? {
        var teacher: JSON = [:]
        if run.sampling {
            var counts: [String: Int] = [:]
            for label in matched.compactMap({ $0 }) { counts[label, default: 0] += 1 }
            guard let top = counts.max(by: { ($0.value, $1.key) < ($1.value, $0.key) }) else { return nil }
            teacher["label"] = .string(top.key)
            teacher["probs"] = .object(counts.mapValues { JSON.number(Double($0) / Double(run.samples)) })
            return teacher
        }
        guard let label = matched.first ?? nil else { return nil }
        teacher["label"] = .string(label)
        if let alternatives = answers.first.flatMap({ LabelMatcher.firstTokenAlternatives($0.entry.body) }) {
            if let logprobs = LabelMatcher.logprobs(alternatives, labels: run.prompt.labels) {
                teacher["logprobs"] = .object(logprobs.mapValues { JSON.number($0) })
                summary.logprobRows += 1
            } else {
                summary.ambiguousRows += 1
                summary.hardRows += 1
            }
        } else {
            summary.hardRows += 1
        }
        return teacher
    }

    /// A structured row's `teacher` (FORMATS.md §9): the answer `text` when it parses as one flat JSON object valid
    /// under `schema`, with `tokens` (the answer's OpenAI `logprobs.content`) when the deployment returned them; nil
    /// (a rejected row) otherwise.
    static func structuredTeacher(text: String, body: JSON?, schema: StructuredSchema, summary: inout Summary)
        -> JSON?
    {
        guard let answer = StructuredAnswer.parse(text: text), schema.isValid(answer) else { return nil }
        var teacher: JSON = ["text": .string(text)]
        if let tokens = answerTokens(body) {
            teacher["tokens"] = tokens
            summary.logprobRows += 1
        } else {
            summary.hardRows += 1
        }
        return teacher
    }

    /// The answer's tokens as FORMATS.md §9 keeps them (`token`, `logprob`, `top_logprobs` of `token` and `logprob`),
    /// nil when the answer has none or one entry lacks a string token or a logprob ≤ 0.
    static func answerTokens(_ body: JSON?) -> JSON? {
        guard let content = body?["choices"]?[0]?["logprobs"]?["content"]?.array, !content.isEmpty else { return nil }
        func pair(_ item: JSON) -> JSON? {
            guard let token = item["token"]?.string, let logprob = item["logprob"]?.double, logprob <= 0,
                logprob.isFinite
            else { return nil }
            return ["token": .string(token), "logprob": .number(logprob)]
        }
        var tokens: [JSON] = []
        for item in content {
            guard var entry = pair(item) else { return nil }
            entry["top_logprobs"] = .array((item["top_logprobs"]?.array ?? []).compactMap(pair))
            tokens.append(entry)
        }
        return .array(tokens)
    }

    /// The `--quote` line: the sample's cost, tokens and time per row projected onto every row of the inputs.
    func quoteLine(_ summary: Summary, run: Run) -> String {
        let rows = Double(max(1, run.inputs.count))
        let perRow = summary.answersUSD / rows
        let tokensPerRow = Double(summary.tokens) / rows
        let secondsPerRow = summary.answerSeconds / rows
        let projected = perRow * Double(run.total)
        return String(
            format: "projected: $%.4f for %d rows (batch: $%.4f), %.0f tokens, about %.0f s", projected, run.total,
            projected * 0.5, tokensPerRow * Double(run.total),
            secondsPerRow * Double(run.total) / Double(max(1, options.concurrency)))
    }

    /// Writes the rows whole, and the rejected answers beside them (removing a stale rejected file).
    func writeOutputs(lines: [String], rejected: [String]) throws(DataError) {
        try Labeler.writeWhole(lines, to: options.outPath)
        let rejectedPath = Labeler.rejectedPath(for: options.outPath)
        if rejected.isEmpty {
            try? FileManager.default.removeItem(atPath: rejectedPath)
        } else {
            try Labeler.writeWhole(rejected, to: rejectedPath)
        }
    }
}

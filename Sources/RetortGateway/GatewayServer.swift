import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import RetortDeployments
import RetortLabeling
import RetortTeacher

extension HTTPField.Name {
    static let retortAttempts = field("x-retort-attempts")
    static let retortServedModel = field("x-retort-served-model")
    static let retortDeployment = field("x-retort-deployment")
    static let retortSession = field("x-retort-session")

    /// A header name known to be valid (lower-case token characters).
    static func field(_ name: String) -> HTTPField.Name {
        guard let field = HTTPField.Name(name) else { preconditionFailure("invalid header name \(name)") }
        return field
    }
}

extension Gateway {
    /// The Hummingbird router with every gateway endpoint.
    public func router() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.post("/v1/chat/completions") { request, _ in try await self.chatCompletions(request) }
        router.get("/v1/models") { request, _ in self.models(request) }
        router.get("/healthz") { _, _ in
            let reloading = self.reloadsInFlight.load(ordering: .relaxed) > 0
            return Response(
                status: reloading ? .serviceUnavailable : .ok, headers: [.contentType: "application/json"],
                body: .init(
                    byteBuffer: ByteBuffer(string: reloading ? "{\"status\":\"reloading\"}" : "{\"status\":\"ok\"}")))
        }
        router.get("/metrics") { _, _ in
            await self.refreshBreakerGauges()
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                body: .init(byteBuffer: ByteBuffer(string: self.metrics.text()))
            )
        }
        router.post("/v1/sessions/{id}/confirm") { request, context in
            try await self.confirm(request, id: context.parameters.get("id") ?? "")
        }
        router.get("/dashboard") { request, _ in try await self.dashboard(request) }
        return router
    }

    /// Serves until SIGTERM/SIGINT (draining requests in flight); SIGHUP reloads the config.
    public func serve(onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let config = self.config
        let app = Application(
            router: router(),
            configuration: .init(address: .hostname(config.host, port: config.port), serverName: "retort-gateway"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? config.port) },
            logger: logger
        )
        signal(SIGHUP, SIG_IGN)
        let reloads = DispatchSource.makeSignalSource(signal: SIGHUP)
        reloads.setEventHandler {
            Task {
                do {
                    try await self.reload()
                } catch {
                    self.logger.error(
                        "reload refused; the running configuration stays", metadata: ["error": "\(error)"])
                }
            }
        }
        reloads.resume()
        defer { reloads.cancel() }
        try await app.runService()
        await shutdown()
    }

    func json(_ value: JSON, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        var fields = headers
        fields[.contentType] = "application/json"
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(data: value.data)))
    }

    func failure(_ failure: GatewayFailure, attempts: Int = 0, headers: HTTPFields = [:]) -> Response {
        var fields = headers
        fields[.retortAttempts] = String(attempts)
        return json(failure.json, status: failure.status, headers: fields)
    }

    static let unauthorized = GatewayFailure(
        status: .unauthorized, type: "invalid_request_error", code: "invalid_api_key",
        message: "unknown or missing API key; send Authorization: Bearer KEY"
    )

    func models(_ request: Request) -> Response {
        let config = self.config
        guard let key = authenticate(request, in: config) else { return failure(Gateway.unauthorized) }
        let created = Int(startTime)
        let data: [JSON] = config.routeNames(for: key).map {
            ["id": .string($0), "object": "model", "created": .int(created), "owned_by": "retort-gateway"]
        }
        return json(["object": "list", "data": .array(data)])
    }

    func confirm(_ request: Request, id: String) async throws -> Response {
        guard let key = authenticate(request) else { return failure(Gateway.unauthorized) }
        guard sessions.belongs(id, keyHash: key.sha256) else {
            return failure(
                GatewayFailure(
                    status: .notFound, type: "invalid_request_error", code: "session_not_found",
                    message: "no session \(id) for this key"
                )
            )
        }
        // The confirmation is stored before it takes effect: one the ledger cannot keep is refused, not half-done.
        let time = Date().timeIntervalSince1970
        let stored = await ledgerWrites.write("confirmations", metadata: ["session": "\(id)", "user": "\(key.user)"]) {
            try ledger.confirm(session: id, time: time)
        }
        guard stored else { return failure(Gateway.ledgerUnavailable) }
        sessions.confirm(id, keyHash: key.sha256)
        logger.info("session confirmed", metadata: ["session": "\(id)", "user": "\(key.user)"])
        return json(["session": .string(id), "confirmed": true])
    }

    func refreshBreakerGauges() async {
        for route in config.routes.values {
            for deployment in route.deployments {
                metrics.breaker(deployment: deployment.id, state: breakers.state(deployment.id))
            }
        }
    }

    // MARK: - Chat completions

    func chatCompletions(_ request: Request) async throws -> Response {
        let started = Date().timeIntervalSince1970
        // One configuration and one set of students for the whole request, even if a reload lands while it runs.
        let current = snapshot
        let (config, students) = (current.config, current.students)
        guard let key = authenticate(request, in: config) else { return failure(Gateway.unauthorized) }
        let bodyBuffer = try await request.body.collect(upTo: 32 << 20)
        var row = LedgerRow(
            time: started, keyHash: key.sha256, user: key.user, team: key.team, route: "", session: "", status: 0
        )
        func refuse(_ failure: GatewayFailure) -> Response {
            row.status = Int(failure.status.code)
            row.errorCode = failure.code
            row.latencyMilliseconds = (Date().timeIntervalSince1970 - started) * 1000
            metrics.request(route: row.route, status: row.status, seconds: row.latencyMilliseconds / 1000, spendUSD: 0)
            guard record(row) else { return self.failure(Gateway.ledgerUnavailable) }
            return self.failure(failure)
        }
        guard ledgerWritable() else { return failure(Gateway.ledgerUnavailable) }
        let chat: JSON
        do {
            chat = try JSON.parse(Data(bodyBuffer.readableBytesView))
        } catch {
            return refuse(
                GatewayFailure(
                    status: .badRequest, type: "invalid_request_error", code: "invalid_json",
                    message: "the request body is not valid JSON (\(error))"
                )
            )
        }
        guard chat.object != nil else {
            return refuse(
                GatewayFailure(
                    status: .badRequest, type: "invalid_request_error", code: "invalid_json",
                    message: "the request body is not a JSON object"
                )
            )
        }
        let routeName = chat["model"]?.string ?? ""
        row.route = routeName
        guard let route = config.routes[routeName] else {
            return refuse(
                GatewayFailure(
                    status: .notFound, type: "invalid_request_error", code: "model_not_found",
                    message: "no route named \"\(routeName)\"; GET /v1/models lists this key's routes"
                )
            )
        }
        guard key.allows(route: routeName) else {
            return refuse(
                GatewayFailure(
                    status: .forbidden, type: "permission_error", code: "route_not_allowed",
                    message: "this key may not use route \"\(routeName)\""
                )
            )
        }
        guard chat["messages"]?.array?.isEmpty == false else {
            return refuse(
                GatewayFailure(
                    status: .badRequest, type: "invalid_request_error", code: "invalid_request",
                    message: "messages must be a non-empty list"
                )
            )
        }
        let stream = chat["stream"]?.bool ?? false
        row.stream = stream
        let wantsUsage = chat["stream_options"]?["include_usage"]?.bool ?? false

        // Session breaker.
        let (session, sessionRefusal) = sessions.begin(key: key, header: request.headers[.retortSession])
        row.session = session
        if let refusal = sessionRefusal {
            let confirmedByOperator: Bool
            if let trippedAt = sessions.trippedAt(session),
                let confirmed = try? ledger.lastConfirmation(of: session), confirmed >= trippedAt
            {
                sessions.confirm(session, keyHash: nil)
                confirmedByOperator = true
            } else {
                confirmedByOperator = false
            }
            if !confirmedByOperator {
                // A trip the ledger cannot keep fails closed; the next request trips again and records it.
                if refusal.isNewTrip, await !tripped(refusal) {
                    sessions.untrip(session)
                    return failure(Gateway.ledgerUnavailable)
                }
                var extra: [String: JSON] = [
                    "session": .string(session), "duration_s": .number(refusal.durationSeconds.rounded()),
                    "tokens": .int(refusal.tokens), "spend_usd": .number(refusal.spendUSD),
                ]
                if let limit = refusal.limitUSD { extra["limit_usd"] = .number(limit) }
                if let limit = refusal.limitSeconds { extra["limit_s"] = .number(limit) }
                return refuse(
                    GatewayFailure(
                        status: .conflict, type: "invalid_request_error", code: "confirmation_required",
                        message:
                            "session \(session) \(refusal.reason); confirm with POST /v1/sessions/\(session)/confirm or `retort gateway confirm \(session)`",
                        extra: extra
                    )
                )
            }
        }

        // Budget reservation.
        let bounds = RequestBounds.tokens(chat)
        let maxTokens = Double(bounds.prompt + bounds.output)
        let maxUSD = maxTokens * route.highestPerMTok / 1_000_000
        let reservation: Reservation
        switch budgets.reserve(key: key, usd: maxUSD, tokens: maxTokens) {
        case .success(let held): reservation = held
        case .failure(let error):
            let refusal = error.refusal
            var extra: [String: JSON] = ["budget": .string(refusal.budget)]
            if refusal.isUSD {
                extra["limit_usd"] = .number(refusal.limit)
                extra["spent_usd"] = .number(refusal.spent)
                extra["reserved_usd"] = .number(refusal.reserved)
                extra["request_max_usd"] = .number(refusal.request)
            } else {
                extra["limit_tokens"] = .number(refusal.limit)
                extra["spent_tokens"] = .number(refusal.spent)
                extra["reserved_tokens"] = .number(refusal.reserved)
                extra["request_max_tokens"] = .number(refusal.request)
                extra["request_max_usd"] = .number(maxUSD)
            }
            return refuse(
                GatewayFailure(
                    status: .tooManyRequests, type: "insufficient_quota", code: "budget_exceeded",
                    message: refusal.summary,
                    extra: extra
                )
            )
        }

        // A deployed student answers the inputs it is sure of in-process; it ran on the rest too (blended cost).
        var studentCost = 0.0
        if let student = students[routeName], !student.isRolledBack {
            let input = Gateway.captureInput(route.captureInput ?? "{{last_user}}", chat: chat)
            do {
                let prediction = try student.predict(input)
                if prediction.top >= student.record.threshold {
                    return studentAnswer(
                        prediction, student: student, chat: chat, route: route, config: config, key: key, row: row,
                        reservation: reservation, input: input, stream: stream, wantsUsage: wantsUsage,
                        started: started)
                }
                studentCost = student.cost(of: prediction)
            } catch {
                logger.debug(
                    "student cannot read this input; the teacher answers",
                    metadata: ["route": "\(routeName)", "error": "\(error)"])
            }
        }

        let outcome = await dispatcher.dispatch(
            chat, route: route, stream: stream, retry: config.retry, estimatedTokens: bounds.prompt + bounds.output
        )
        switch outcome {
        case .completed(let answer, let deployment, let attempts, let failover):
            let cost = deployment.price.cost(of: answer.usage) + studentCost
            budgets.settle(reservation, usd: cost, tokens: Double(answer.usage.total))
            sessions.settle(session: session, usd: cost, tokens: answer.usage.total)
            row.answered(by: deployment, usage: answer.usage, cost: cost, attempts: attempts, failover: failover)
            row.latencyMilliseconds = (Date().timeIntervalSince1970 - started) * 1000
            row.timeToFirstTokenMilliseconds = row.latencyMilliseconds
            metrics.request(route: routeName, status: 200, seconds: row.latencyMilliseconds / 1000, spendUSD: cost)
            guard record(row) else { return failure(Gateway.ledgerUnavailable, attempts: attempts) }
            if let task = route.capture {
                await capture(
                    task: task, route: route, chat: chat,
                    answer: answer.body["choices"]?[0]?["message"]?["content"]?.string ?? "",
                    alternatives: LabelMatcher.firstTokenAlternatives(answer.body), row: row, deployment: deployment)
            }
            var headers = servedHeaders(deployment, attempts: attempts, session: session)
            if let raw = answer.rawBody {
                headers[.contentType] = "application/json"
                return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(data: raw)))
            }
            return json(answer.body, headers: headers)
        case .streaming(let upstream, let deployment, let attempts, let failover):
            row.deployment = deployment.id
            row.servedModel = deployment.model
            row.attempts = attempts
            row.failover = failover
            row.timeToFirstTokenMilliseconds = (Date().timeIntervalSince1970 - started) * 1000
            var headers = servedHeaders(deployment, attempts: attempts, session: session)
            headers[.contentType] = "text/event-stream"
            headers[.cacheControl] = "no-cache"
            let finalRow = row
            let extraCost = studentCost
            let body = ResponseBody { writer in
                try await self.relay(
                    upstream, to: &writer, row: finalRow, deployment: deployment, reservation: reservation,
                    wantsUsage: wantsUsage, started: started, capture: route.capture.map { ($0, route, chat) },
                    extraCostUSD: extraCost
                )
            }
            return Response(status: .ok, headers: headers, body: body)
        case .refused(let status, let message, let deployment, let attempts):
            budgets.settle(reservation, usd: 0, tokens: 0)
            row.attempts = attempts
            row.deployment = deployment.id
            let code = HTTPResponse.Status(code: status)
            return refuse(
                GatewayFailure(
                    status: code, type: "invalid_request_error", code: "upstream_refused",
                    message: "\(deployment.id) refused the request: \(message)"
                )
            ).withAttempts(attempts)
        case .invalid(let message, let attempts):
            budgets.settle(reservation, usd: 0, tokens: 0)
            row.attempts = attempts
            return refuse(
                GatewayFailure(
                    status: .badRequest, type: "invalid_request_error", code: "invalid_request", message: message)
            ).withAttempts(attempts)
        case .unavailable(let attempts, let reasons):
            budgets.settle(reservation, usd: 0, tokens: 0)
            row.attempts = attempts
            return refuse(
                GatewayFailure(
                    status: .serviceUnavailable, type: "api_error", code: "no_deployment_available",
                    message: "every deployment of \(routeName) failed: " + reasons.joined(separator: "; ")
                )
            ).withAttempts(attempts)
        }
    }

    /// Forwards an open upstream stream; the ledger row is committed before the last byte leaves.
    func relay(
        _ upstream: UpstreamStream, to writer: inout any ResponseBodyWriter, row: LedgerRow, deployment: Deployment,
        reservation: Reservation, wantsUsage: Bool, started: Double,
        capture captureTarget: (task: String, route: RouteConfig, chat: JSON)? = nil, extraCostUSD: Double = 0
    ) async throws {
        var row = row
        var answerText = ""
        var alternatives: [(token: String, logprob: Double)]?
        func finish(status: Int, code: String?) async {
            let usage = upstream.usage
            let cost = deployment.price.cost(of: usage) + extraCostUSD
            budgets.settle(reservation, usd: cost, tokens: Double(usage.total))
            sessions.settle(session: row.session, usd: cost, tokens: usage.total)
            row.usage = usage
            row.costUSD = cost
            row.status = status
            row.errorCode = code
            row.latencyMilliseconds = (Date().timeIntervalSince1970 - started) * 1000
            metrics.request(route: row.route, status: status, seconds: row.latencyMilliseconds / 1000, spendUSD: cost)
            _ = record(row)
        }
        func sse(_ json: JSON) -> ByteBuffer { ByteBuffer(string: "data: " + json.text + "\n\n") }
        var failureMessage: String?
        do {
            loop: while true {
                guard let item = try await upstream.next() else {
                    failureMessage = "the upstream stream ended without finishing"
                    break loop
                }
                switch item {
                case .chunk(let chunk):
                    if captureTarget != nil, let delta = chunk["choices"]?[0] {
                        answerText += delta["delta"]?["content"]?.string ?? ""
                        if alternatives == nil { alternatives = LabelMatcher.alternatives(inChoice: delta) }
                    }
                    try await writer.write(sse(chunk))
                case .usage(let chunk, _): if wantsUsage { try await writer.write(sse(chunk)) }
                case .done:
                    await finish(status: 200, code: nil)
                    if let captureTarget {
                        await capture(
                            task: captureTarget.task, route: captureTarget.route, chat: captureTarget.chat,
                            answer: answerText, alternatives: alternatives, row: row, deployment: deployment)
                    }
                    try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                    try await writer.finish(nil)
                    return
                case .error(let message):
                    failureMessage = message
                    break loop
                }
            }
        } catch let error as AttemptError {
            failureMessage = error.summary
        } catch {
            // The client went away: record what the stream had used.
            await finish(status: 499, code: "client_closed")
            throw error
        }
        await finish(status: 502, code: "stream_failed")
        let event: JSON = [
            "error": [
                "type": "api_error", "code": "stream_failed",
                "message": .string("the upstream stream failed after it started: \(failureMessage ?? "unknown")"),
            ]
        ]
        try await writer.write(ByteBuffer(string: "event: error\ndata: " + event.text + "\n\n"))
        try await writer.finish(nil)
    }

    /// Stores a captured teacher answer (the client already has its answer: a capture that cannot be stored is
    /// retried, then logged and counted, and the ledger is marked unhealthy; see `LedgerWrites`).
    func capture(
        task: String, route: RouteConfig, chat: JSON, answer: String,
        alternatives: [(token: String, logprob: Double)]?, row: LedgerRow, deployment: Deployment
    ) async {
        let input = Gateway.captureInput(route.captureInput ?? "{{last_user}}", chat: chat)
        let capture = Capture(
            time: row.time, task: task, route: route.name, input: input, answer: answer,
            topLogprobs: alternatives,
            inputTokens: row.usage.inputUncached + row.usage.cacheRead + row.usage.cacheWrite,
            outputTokens: row.usage.output, costUSD: row.costUSD, latencyMilliseconds: row.latencyMilliseconds,
            model: deployment.model, deployment: deployment.id)
        await ledgerWrites.write("captures", metadata: ["task": "\(task)", "route": "\(route.name)"]) {
            try ledger.record(capture)
        }
    }

    /// The row input a `capture_input` template picks from a chat request (see `CaptureInput`).
    static func captureInput(_ template: String, chat: JSON) -> String { CaptureInput.text(template, chat: chat) }

    func servedHeaders(_ deployment: Deployment, attempts: Int, session: String) -> HTTPFields {
        var headers = HTTPFields()
        headers[.retortAttempts] = String(attempts)
        headers[.retortServedModel] = deployment.model
        headers[.retortDeployment] = deployment.id
        headers[.retortSession] = session
        return headers
    }

    /// Records, logs and posts a new session trip; false (nothing posted) when the ledger cannot keep it.
    func tripped(_ refusal: SessionRefusal) async -> Bool {
        let now = Date().timeIntervalSince1970
        let trip = SessionTrip(
            time: now, session: refusal.session, user: refusal.user, reason: refusal.reason,
            durationSeconds: refusal.durationSeconds, tokens: refusal.tokens, spendUSD: refusal.spendUSD
        )
        let stored = await ledgerWrites.write(
            "trips", metadata: ["session": "\(refusal.session)", "user": "\(refusal.user)"]
        ) { try ledger.record(trip) }
        guard stored else { return false }
        metrics.sessionTrip()
        logger.warning(
            "session breaker tripped",
            metadata: ["session": "\(refusal.session)", "user": "\(refusal.user)", "reason": "\(refusal.reason)"]
        )
        notify([
            "event": "session_tripped", "session": .string(refusal.session), "user": .string(refusal.user),
            "reason": .string(refusal.reason), "duration_s": .number(refusal.durationSeconds),
            "tokens": .int(refusal.tokens), "spend_usd": .number(refusal.spendUSD),
        ])
        return true
    }

    static let ledgerUnavailable = GatewayFailure(
        status: .serviceUnavailable, type: "api_error", code: "ledger_unavailable",
        message: "the usage ledger cannot be written; the gateway refuses requests until it can"
    )
}

extension Response {
    func withAttempts(_ attempts: Int) -> Response {
        var copy = self
        copy.headers[.retortAttempts] = String(attempts)
        return copy
    }
}

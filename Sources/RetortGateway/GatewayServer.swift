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
    static let requestID = field("x-request-id")

    /// A header name known to be valid (lower-case token characters).
    static func field(_ name: String) -> HTTPField.Name {
        guard let field = HTTPField.Name(name) else { preconditionFailure("invalid header name \(name)") }
        return field
    }
}

extension Gateway {
    /// The Hummingbird router with every gateway endpoint; the client endpoints sit behind `KeyAuthentication`.
    public func router() -> Router<GatewayRequestContext> {
        let router = Router(context: GatewayRequestContext.self)
        router.add(middleware: RequestIdentification())
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
        let clients = router.group().add(middleware: KeyAuthentication(gateway: self))
        clients.post("/v1/chat/completions") { request, context in
            try await self.chatCompletions(request, context: context)
        }
        clients.get("/v1/models") { _, context in self.models(context) }
        clients.post("/v1/sessions/{id}/confirm") { _, context in
            try await self.confirm(id: context.parameters.get("id") ?? "", context: context)
        }
        router.group().add(middleware: KeyAuthentication(gateway: self, allowQuery: true, adminOnly: "the dashboard"))
            .get("/dashboard") { _, context in try await self.dashboard(context) }
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
        let follower = ledger.isShared ? Task { await self.followDeployments() } : nil
        defer { follower?.cancel() }
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

    /// `GET /v1/models`: the routes the key may use.
    func models(_ context: GatewayRequestContext) -> Response {
        guard let key = context.key, let config = context.snapshot?.config else { return failure(Gateway.unauthorized) }
        let created = Int(startTime)
        let data: [JSON] = config.routeNames(for: key).map {
            ["id": .string($0), "object": "model", "created": .int(created), "owned_by": "retort-gateway"]
        }
        return json(["object": "list", "data": .array(data)])
    }

    /// `POST /v1/sessions/{id}/confirm`: the key's tripped session runs on.
    func confirm(id: String, context: GatewayRequestContext) async throws -> Response {
        guard let key = context.key else { return failure(Gateway.unauthorized) }
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
            _ = await record(row)
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

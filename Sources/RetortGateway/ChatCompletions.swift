import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import RetortDeployments
import RetortLabeling
import RetortTeacher

/// A chat request that passed the checks: its body, its route and what the client asked for.
struct ChatRequest {
    /// The request body.
    var chat: JSON
    /// The route its `model` names.
    var route: RouteConfig
    /// That name as the client sent it.
    var routeName: String
    /// `stream: true`.
    var stream: Bool
    /// `stream_options.include_usage: true`.
    var wantsUsage: Bool
}

extension Gateway {
    /// `POST /v1/chat/completions`: checks, session breaker, budget reservation, then the deployed student or the
    /// teacher deployments. `context` holds the authenticated key and the snapshot the request runs on.
    func chatCompletions(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        let started = Date().timeIntervalSince1970
        guard let key = context.key, let current = context.snapshot else { return failure(Gateway.unauthorized) }
        let (config, students) = (current.config, current.students)
        let bodyBuffer = try await request.body.collect(upTo: 32 << 20)
        var row = LedgerRow(
            time: started, keyHash: key.sha256, user: key.user, team: key.team, route: "", session: "", status: 0
        )
        guard ledgerWritable() else { return failure(Gateway.ledgerUnavailable) }
        let parsed: ChatRequest
        switch checkedChat(bodyBuffer, key: key, config: config, row: &row) {
        case .success(let checked): parsed = checked
        case .failure(let refusal): return await refuse(refusal, row: row, started: started)
        }
        let (chat, route) = (parsed.chat, parsed.route)
        switch await sessionGate(request, key: key, row: &row) {
        case .proceed: break
        case .refused(let refusal): return await refuse(refusal, row: row, started: started)
        case .ledgerUnavailable: return failure(Gateway.ledgerUnavailable)
        }
        let bounds = RequestBounds.tokens(chat)
        let reservation: Reservation
        switch reserve(bounds: bounds, route: route, retry: config.retry, key: key) {
        case .success(let held): reservation = held
        case .failure(let refusal) where refusal.code == Gateway.ledgerUnavailable.code:
            return failure(Gateway.ledgerUnavailable)
        case .failure(let refusal): return await refuse(refusal, row: row, started: started)
        }
        row.reservationID = reservation.sharedID

        // A deployed student answers the inputs it is sure of in-process; it ran on the rest too (blended cost).
        var studentCost = 0.0
        if let student = students[parsed.routeName], !student.isRolledBack {
            switch tryStudent(student, chat: chat, route: route, routeName: parsed.routeName) {
            case .answered(let prediction, let input):
                return await studentAnswer(
                    prediction, student: student, chat: chat, route: route, config: config, key: key, row: row,
                    reservation: reservation, input: input, stream: parsed.stream, wantsUsage: parsed.wantsUsage,
                    started: started)
            case .unsure(let cost): studentCost = cost
            case .unreadable: break
            }
        }

        let outcome = await dispatcher.dispatch(
            chat, route: route, stream: parsed.stream, retry: config.retry,
            estimatedTokens: bounds.prompt + bounds.output
        )
        return await teacherAnswer(
            outcome, request: parsed, row: row, reservation: reservation, studentCost: studentCost, started: started)
    }

    /// Records a refused request (its ledger row and metrics) and answers with `failure`.
    func refuse(_ failure: GatewayFailure, row: LedgerRow, started: Double) async -> Response {
        var row = row
        row.status = Int(failure.status.code)
        row.errorCode = failure.code
        row.latencyMilliseconds = (Date().timeIntervalSince1970 - started) * 1000
        metrics.request(route: row.route, status: row.status, seconds: row.latencyMilliseconds / 1000, spendUSD: 0)
        guard await record(row) else { return self.failure(Gateway.ledgerUnavailable) }
        return self.failure(failure)
    }

    /// The request body read and checked: valid JSON, an object, a route this key may use, non-empty `messages`.
    /// Sets the row's route (as soon as it is known) and stream flag.
    func checkedChat(
        _ body: ByteBuffer, key: ClientKey, config: GatewayConfig, row: inout LedgerRow
    ) -> Result<ChatRequest, GatewayFailure> {
        let chat: JSON
        do {
            chat = try JSON.parse(Data(body.readableBytesView))
        } catch {
            return .failure(
                GatewayFailure(
                    status: .badRequest, type: "invalid_request_error", code: "invalid_json",
                    message: "the request body is not valid JSON (\(error))"
                )
            )
        }
        guard chat.object != nil else {
            return .failure(
                GatewayFailure(
                    status: .badRequest, type: "invalid_request_error", code: "invalid_json",
                    message: "the request body is not a JSON object"
                )
            )
        }
        let routeName = chat["model"]?.string ?? ""
        row.route = routeName
        guard let route = config.routes[routeName] else {
            return .failure(
                GatewayFailure(
                    status: .notFound, type: "invalid_request_error", code: "model_not_found",
                    message: "no route named \"\(routeName)\"; GET /v1/models lists this key's routes"
                )
            )
        }
        guard key.allows(route: routeName) else {
            return .failure(
                GatewayFailure(
                    status: .forbidden, type: "permission_error", code: "route_not_allowed",
                    message: "this key may not use route \"\(routeName)\""
                )
            )
        }
        guard chat["messages"]?.array?.isEmpty == false else {
            return .failure(
                GatewayFailure(
                    status: .badRequest, type: "invalid_request_error", code: "invalid_request",
                    message: "messages must be a non-empty list"
                )
            )
        }
        let stream = chat["stream"]?.bool ?? false
        row.stream = stream
        let wantsUsage = chat["stream_options"]?["include_usage"]?.bool ?? false
        return .success(
            ChatRequest(chat: chat, route: route, routeName: routeName, stream: stream, wantsUsage: wantsUsage))
    }

    /// What the session breaker says about a request.
    enum SessionVerdict {
        /// Go on (the row holds the session).
        case proceed
        /// The session tripped and waits for a confirmation (409).
        case refused(GatewayFailure)
        /// A new trip the ledger could not keep: fail closed.
        case ledgerUnavailable
    }

    /// The session breaker: the request's session (set on the row), refused while it waits for a confirmation unless an
    /// operator confirmed it in the ledger since it tripped.
    func sessionGate(_ request: Request, key: ClientKey, row: inout LedgerRow) async -> SessionVerdict {
        let header = request.headers[.retortSession]
        if ledger.isShared, let named = header, !named.isEmpty {
            // Replicas share a named session through the ledger: its spend, and a trip another replica recorded.
            do {
                sessions.adopt(named, key: key, shared: try ledger.sharedSession(named))
            } catch {
                ledgerWrites.failed("sessions", error: error, metadata: ["session": "\(named)", "user": "\(key.user)"])
                return .ledgerUnavailable
            }
        }
        let (session, sessionRefusal) = sessions.begin(key: key, header: header)
        row.session = session
        guard let refusal = sessionRefusal else { return .proceed }
        if let trippedAt = sessions.trippedAt(session),
            let confirmed = try? ledger.lastConfirmation(of: session), confirmed >= trippedAt
        {
            sessions.confirm(session, keyHash: nil)
            return .proceed
        }
        // A trip the ledger cannot keep fails closed; the next request trips again and records it.
        if refusal.isNewTrip, await !tripped(refusal) {
            sessions.untrip(session)
            return .ledgerUnavailable
        }
        var extra: [String: JSON] = [
            "session": .string(session), "duration_s": .number(refusal.durationSeconds.rounded()),
            "tokens": .int(refusal.tokens), "spend_usd": .number(refusal.spendUSD),
        ]
        if let limit = refusal.limitUSD { extra["limit_usd"] = .number(limit) }
        if let limit = refusal.limitSeconds { extra["limit_s"] = .number(limit) }
        return .refused(
            GatewayFailure(
                status: .conflict, type: "invalid_request_error", code: "confirmation_required",
                message:
                    "session \(session) \(refusal.reason); confirm with POST /v1/sessions/\(session)/confirm or `retort gateway confirm \(session)`",
                extra: extra
            )
        )
    }

    /// Reserves the request's worst case (its token bounds at the route's highest price) in every budget of `key`.
    /// A shared ledger that cannot take the reservation answers `ledger_unavailable` (fail closed).
    func reserve(
        bounds: (prompt: Int, output: Int), route: RouteConfig, retry: RetryPolicy, key: ClientKey
    ) -> Result<Reservation, GatewayFailure> {
        let maxTokens = Double(bounds.prompt + bounds.output)
        let maxUSD = maxTokens * route.highestPerMTok / 1_000_000
        let result: Result<Reservation, BudgetRefusalError>
        do {
            result = try budgets.reserve(
                key: key, usd: maxUSD, tokens: maxTokens, lifetime: route.reservationLifetime(retry: retry))
        } catch {
            ledgerWrites.failed(
                "reservations", error: error, metadata: ["route": "\(route.name)", "user": "\(key.user)"])
            return .failure(Gateway.ledgerUnavailable)
        }
        switch result {
        case .success(let held): return .success(held)
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
            return .failure(
                GatewayFailure(
                    status: .tooManyRequests, type: "insufficient_quota", code: "budget_exceeded",
                    message: refusal.summary,
                    extra: extra
                )
            )
        }
    }

    /// What a deployed student made of a request.
    enum StudentVerdict {
        /// Sure enough: it answers (`input` is what it read).
        case answered(ServedStudent.Prediction, input: String)
        /// Not sure: the teacher answers; the student's run still costs this.
        case unsure(cost: Double)
        /// It cannot read this input: the teacher answers.
        case unreadable
    }

    /// Runs `student` on the request's input and compares its top probability with the deployment's threshold.
    func tryStudent(_ student: ServedStudent, chat: JSON, route: RouteConfig, routeName: String) -> StudentVerdict {
        let input = Gateway.captureInput(route.captureInput ?? "{{last_user}}", chat: chat)
        do {
            let prediction = try student.predict(input)
            if prediction.top >= student.record.threshold { return .answered(prediction, input: input) }
            return .unsure(cost: student.cost(of: prediction))
        } catch {
            logger.debug(
                "student cannot read this input; the teacher answers",
                metadata: ["route": "\(routeName)", "error": "\(error)"])
            return .unreadable
        }
    }

    /// The answer to a request the teacher deployments handled: settles the reservation, records the row, captures,
    /// and relays the answer, the stream or the refusal.
    func teacherAnswer(
        _ outcome: DispatchOutcome, request: ChatRequest, row: LedgerRow, reservation: Reservation,
        studentCost: Double, started: Double
    ) async -> Response {
        var row = row
        let (chat, route) = (request.chat, request.route)
        /// A refusal after `attempts` upstream requests: nothing is spent, the row and the answer say how many.
        func refused(_ failure: GatewayFailure, attempts: Int) async -> Response {
            budgets.settle(reservation, usd: 0, tokens: 0)
            row.attempts = attempts
            return await refuse(failure, row: row, started: started).withAttempts(attempts)
        }
        switch outcome {
        case .completed(let answer, let deployment, let attempts, let failover):
            let cost = deployment.price.cost(of: answer.usage) + studentCost
            budgets.settle(reservation, usd: cost, tokens: Double(answer.usage.total))
            sessions.settle(session: row.session, usd: cost, tokens: answer.usage.total)
            row.answered(by: deployment, usage: answer.usage, cost: cost, attempts: attempts, failover: failover)
            row.latencyMilliseconds = (Date().timeIntervalSince1970 - started) * 1000
            row.timeToFirstTokenMilliseconds = row.latencyMilliseconds
            metrics.request(
                route: request.routeName, status: 200, seconds: row.latencyMilliseconds / 1000, spendUSD: cost)
            guard await record(row) else { return failure(Gateway.ledgerUnavailable, attempts: attempts) }
            if let task = route.capture {
                await capture(
                    task: task, route: route, chat: chat,
                    answer: answer.body["choices"]?[0]?["message"]?["content"]?.string ?? "",
                    alternatives: LabelMatcher.firstTokenAlternatives(answer.body), row: row, deployment: deployment)
            }
            var headers = servedHeaders(deployment, attempts: attempts, session: row.session)
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
            var headers = servedHeaders(deployment, attempts: attempts, session: row.session)
            headers[.contentType] = "text/event-stream"
            headers[.cacheControl] = "no-cache"
            let finalRow = row
            let wantsUsage = request.wantsUsage
            let body = ResponseBody { writer in
                try await self.relay(
                    upstream, to: &writer, row: finalRow, deployment: deployment, reservation: reservation,
                    wantsUsage: wantsUsage, started: started, capture: route.capture.map { ($0, route, chat) },
                    extraCostUSD: studentCost
                )
            }
            return Response(status: .ok, headers: headers, body: body)
        case .refused(let status, let message, let deployment, let attempts):
            row.deployment = deployment.id
            return await refused(
                GatewayFailure(
                    status: HTTPResponse.Status(code: status), type: "invalid_request_error", code: "upstream_refused",
                    message: "\(deployment.id) refused the request: \(message)"),
                attempts: attempts)
        case .invalid(let message, let attempts):
            return await refused(
                GatewayFailure(
                    status: .badRequest, type: "invalid_request_error", code: "invalid_request", message: message),
                attempts: attempts)
        case .unavailable(let attempts, let reasons):
            return await refused(
                GatewayFailure(
                    status: .serviceUnavailable, type: "api_error", code: "no_deployment_available",
                    message: "every deployment of \(request.routeName) failed: " + reasons.joined(separator: "; ")),
                attempts: attempts)
        }
    }
}

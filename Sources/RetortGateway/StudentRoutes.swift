import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import RetortData
import RetortDeployments
import RetortLabeling
import RetortTeacher

extension Gateway {
    /// Loads the deployments the ledger says are serving on routes of `config`; a deployment already loaded is kept
    /// (with its shadow window). A deployment whose model cannot be loaded is logged and skipped: its route stays on
    /// the teacher.
    func loadStudents(for config: GatewayConfig, current: [String: ServedStudent]) -> [String: ServedStudent] {
        let records: [DeploymentRecord]
        do { records = try ledger.servingDeployments() } catch {
            logger.error(
                "cannot read deployments from the ledger; routes stay as they were", metadata: ["error": "\(error)"])
            return current
        }
        var loaded: [String: ServedStudent] = [:]
        for record in records {
            guard config.routes[record.route] != nil else {
                logger.warning(
                    "deployment on a route the config does not have; not served",
                    metadata: ["route": "\(record.route)", "student": "\(record.student)"])
                continue
            }
            if let existing = current[record.route], existing.record.id == record.id, !existing.isRolledBack {
                loaded[record.route] = existing
                continue
            }
            do {
                let outcomes = try ledger.shadowOutcomes(deployment: record.id)
                loaded[record.route] = try ServedStudent(record: record, outcomes: outcomes)
                logger.info(
                    "student serving",
                    metadata: [
                        "route": "\(record.route)", "student": "\(record.student)",
                        "threshold": "\(record.threshold)", "shadow": "\(record.shadow)",
                    ])
            } catch {
                logger.error(
                    "cannot load a deployed student; its route stays on the teacher",
                    metadata: ["route": "\(record.route)", "student": "\(record.student)", "error": "\(error)"])
            }
        }
        for (route, student) in current where loaded[route] == nil {
            logger.info(
                "student no longer serving; the route is on the teacher",
                metadata: ["route": "\(route)", "student": "\(student.record.student)"])
        }
        return loaded
    }

    /// Answers a request from the student in-process (the ledger row is committed before the answer leaves).
    func studentAnswer(
        _ prediction: ServedStudent.Prediction, student: ServedStudent, chat: JSON, route: RouteConfig,
        config: GatewayConfig, key: ClientKey, row: LedgerRow, reservation: Reservation, input: String,
        stream: Bool, wantsUsage: Bool, started: Double
    ) async -> Response {
        var row = row
        let cost = student.cost(of: prediction)
        budgets.settle(reservation, usd: cost, tokens: 0)
        sessions.settle(session: row.session, usd: cost, tokens: 0)
        row.deployment = student.record.student
        row.servedModel = student.record.student
        row.costUSD = cost
        row.attempts = 0
        row.status = 200
        row.latencyMilliseconds = (Date().timeIntervalSince1970 - started) * 1000
        row.timeToFirstTokenMilliseconds = row.latencyMilliseconds
        metrics.request(route: route.name, status: 200, seconds: row.latencyMilliseconds / 1000, spendUSD: cost)
        metrics.studentAnswer(route: route.name)
        guard await record(row) else { return failure(Gateway.ledgerUnavailable) }
        if drawShadow(rate: student.record.shadow) {
            if student.shadowsInFlight.add(1, ordering: .relaxed).newValue <= ServedStudent.maxShadowsInFlight {
                Task.detached {
                    await self.shadowCheck(
                        student: student, prediction: prediction, chat: chat, route: route, config: config, key: key,
                        session: row.session, input: input)
                    student.shadowsInFlight.subtract(1, ordering: .relaxed)
                }
            } else {
                student.shadowsInFlight.subtract(1, ordering: .relaxed)
                metrics.shadow(route: route.name, outcome: "skipped_busy")
            }
        }
        var headers = HTTPFields()
        headers[.retortAttempts] = "0"
        headers[.retortServedModel] = student.record.student
        headers[.retortDeployment] = student.record.student
        headers[.retortSession] = row.session
        let id = "chatcmpl-retort-" + UUID().uuidString.lowercased()
        let created = Int(started)
        if stream {
            headers[.contentType] = "text/event-stream"
            headers[.cacheControl] = "no-cache"
            let text = StudentReply.stream(
                prediction, student: student, chat: chat, id: id, created: created, usage: wantsUsage)
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        return json(
            StudentReply.completion(prediction, student: student, chat: chat, id: id, created: created),
            headers: headers)
    }

    /// Sends a request the student answered to the teacher deployments too, compares, records, captures, and rolls the
    /// deployment back when agreement falls below its floor. Runs in the background; the client already has its answer.
    func shadowCheck(
        student: ServedStudent, prediction: ServedStudent.Prediction, chat: JSON, route: RouteConfig,
        config: GatewayConfig, key: ClientKey, session: String, input: String
    ) async {
        var body = chat
        body["stream"] = nil
        body["stream_options"] = nil
        // Soft labels for the captured row where the deployment gives them.
        body["logprobs"] = true
        body["top_logprobs"] = .int(max(chat["top_logprobs"]?.int ?? 0, 5))
        let bounds = RequestBounds.tokens(body)
        let maxTokens = Double(bounds.prompt + bounds.output)
        let started = Date().timeIntervalSince1970
        guard
            case .success(let reservation) = try? budgets.reserve(
                key: key, usd: maxTokens * route.highestPerMTok / 1_000_000, tokens: maxTokens,
                lifetime: route.reservationLifetime(retry: config.retry))
        else {
            metrics.shadow(route: route.name, outcome: "skipped_budget")
            return
        }
        var row = LedgerRow(
            time: started, keyHash: key.sha256, user: key.user, team: key.team, route: route.name, session: session,
            status: 0, kind: "shadow")
        row.reservationID = reservation.sharedID
        let outcome = await dispatcher.dispatch(
            body, route: route, stream: false, retry: config.retry, estimatedTokens: bounds.prompt + bounds.output)
        row.latencyMilliseconds = (Date().timeIntervalSince1970 - started) * 1000
        guard case .completed(let answer, let deployment, let attempts, let failover) = outcome else {
            budgets.settle(reservation, usd: 0, tokens: 0)
            row.status = 503
            row.errorCode = "shadow_failed"
            _ = await record(row)
            metrics.shadow(route: route.name, outcome: "teacher_failed")
            return
        }
        let cost = deployment.price.cost(of: answer.usage)
        budgets.settle(reservation, usd: cost, tokens: Double(answer.usage.total))
        row.answered(by: deployment, usage: answer.usage, cost: cost, attempts: attempts, failover: failover)
        row.timeToFirstTokenMilliseconds = row.latencyMilliseconds
        metrics.request(route: route.name, status: 200, seconds: row.latencyMilliseconds / 1000, spendUSD: cost)
        _ = await record(row)
        let text = answer.body["choices"]?[0]?["message"]?["content"]?.string ?? ""
        let teacherLabel: String?
        let agree: Bool
        switch student.model {
        case .labels(let bundle):
            teacherLabel = LabelMatcher.label(for: text, in: bundle.labels)
            agree = teacherLabel == prediction.label
        case .structured:
            // Equal as answers (FORMATS.md §9: key order, spacing, number spelling and null keys do not matter); an
            // answer that is not one flat JSON object disagrees, as a label answer matching no label does.
            let parsed = StructuredAnswer.parse(text: text)
            teacherLabel = parsed?.canonicalJSON
            agree = parsed != nil && parsed == prediction.answer
        }
        // The verdict first: a rollback is in force before this check shows up in the ledger.
        let tally = student.observe(agree: agree)
        if tally.fallsBelow(student.record.minAgreement) { await rollBack(student, agreement: tally) }
        let shadow = ShadowRecord(
            time: started, deploymentID: student.record.id, route: route.name, input: input,
            studentLabel: prediction.label, teacherAnswer: text, teacherLabel: teacherLabel, agree: agree,
            costUSD: cost, latencyMilliseconds: row.latencyMilliseconds)
        await ledgerWrites.write(
            "shadows", metadata: ["route": "\(route.name)", "student": "\(student.record.student)"]
        ) { try ledger.record(shadow) }
        await capture(
            task: route.capture ?? student.record.task, route: route, chat: chat, answer: text,
            alternatives: LabelMatcher.firstTokenAlternatives(answer.body), row: row, deployment: deployment)
        metrics.shadow(route: route.name, outcome: agree ? "agree" : "disagree")
    }

    /// Takes `student` off its route: the ledger row, the log, the webhook and the metric.
    func rollBack(_ student: ServedStudent, agreement: ShadowAgreement) async {
        guard student.markRolledBack() else { return }
        let (low, high) = agreement.interval
        let reason = String(
            format: "shadow agreement %.3f [%.3f, %.3f] over the last %d answers: upper bound below %.3f",
            agreement.value, low, high, agreement.count, student.record.minAgreement)
        let now = Date().timeIntervalSince1970
        // Not stored, the rollback still holds in this process until a restart (logged and counted).
        await ledgerWrites.write(
            "deployments", metadata: ["student": "\(student.record.student)", "event": "rollback"]
        ) { try ledger.rollBack(deployment: student.record.id, time: now, reason: reason) }
        logger.warning(
            "student rolled back; the route is on the teacher again",
            metadata: [
                "route": "\(student.record.route)", "student": "\(student.record.student)", "reason": "\(reason)",
            ]
        )
        metrics.rollback(route: student.record.route)
        notify([
            "event": "deployment_rolled_back", "route": .string(student.record.route),
            "student": .string(student.record.student), "candidate": .string(student.record.candidate),
            "agreement": agreement.json, "min_agreement": .number(student.record.minAgreement),
            "reason": .string(reason),
        ])
    }
}

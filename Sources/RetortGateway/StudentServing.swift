import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import RetortData
import RetortNumerics
import RetortStudents
import Synchronization

/// A deployed student loaded in the gateway: its model, its shadow-agreement window and whether it was rolled back.
public final class ServedStudent: Sendable {
    /// The deployment as the ledger keeps it.
    public let record: DeploymentRecord
    /// The exported model.
    public let bundle: ModelBundle
    private let outcomes: Mutex<[Bool]>
    private let rolledBack = Atomic<Bool>(false)
    let shadowsInFlight = Atomic<Int>(0)
    /// Shadow calls in flight per deployment beyond which sampled requests are not checked (so a slow teacher can
    /// never pile up background work).
    static let maxShadowsInFlight = 64

    /// Loads `record`'s model; `outcomes` are its newest shadow results, oldest first.
    public init(record: DeploymentRecord, outcomes: [Bool] = []) throws(DataError) {
        self.record = record
        do {
            bundle = try ModelBundle.load(from: URL(fileURLWithPath: record.modelDirectory))
        } catch {
            throw DataError(.badData, "cannot load \(record.student): \(error.message)", file: error.file)
        }
        self.outcomes = Mutex(Array(outcomes.suffix(ShadowAgreement.window)))
    }

    /// One prediction.
    public struct Prediction: Sendable {
        /// Class probabilities, in label order.
        public var probabilities: [Float]
        /// The chosen class.
        public var index: Int
        /// The chosen label.
        public var label: String
        /// Its probability.
        public var top: Double { Double(probabilities[index]) }
        /// Featurize + predict, in seconds.
        public var seconds: Double
    }

    /// The student's answer for a raw input (text, or a JSON array of numbers for a numeric model).
    public func predict(_ input: String) throws(DataError) -> Prediction {
        let started = DispatchTime.now().uptimeNanoseconds
        let example: ExampleInput
        if bundle.featurizer.readsText {
            example = .text(input)
        } else {
            guard let values = (try? JSON.parse(input))?.array?.compactMap({ $0.double.map(Float.init) }),
                values.count == bundle.featurizer.outputDimension, values.allSatisfy(\.isFinite)
            else {
                throw DataError(
                    .badData,
                    "\(record.student) reads \(bundle.featurizer.outputDimension) numbers; the input is not a JSON array of that many"
                )
            }
            example = .numeric(values)
        }
        let matrix: Matrix
        do { matrix = try bundle.probabilities(for: [example]) } catch {
            throw DataError(.badData, "\(record.student) could not predict: \(error)")
        }
        let probabilities = (0..<matrix.columns).map { matrix[0, $0] }
        var best = 0
        for index in probabilities.indices where probabilities[index] > probabilities[best] { best = index }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        return Prediction(probabilities: probabilities, index: best, label: bundle.labels[best], seconds: seconds)
    }

    /// Adds one shadow outcome; returns the window's tally.
    func observe(agree: Bool) -> ShadowAgreement {
        outcomes.withLock { window in
            window.append(agree)
            if window.count > ShadowAgreement.window { window.removeFirst(window.count - ShadowAgreement.window) }
            return ShadowAgreement(outcomes: window)
        }
    }

    /// What `prediction` cost to serve: its measured time at the run's vCPU price (the serving cost model).
    func cost(of prediction: Prediction) -> Double { prediction.seconds * record.usdPerVCPUSecond }

    /// The window's tally now.
    public var agreement: ShadowAgreement { outcomes.withLock { ShadowAgreement(outcomes: $0) } }

    /// Whether shadow checks (or an operator) took it off the route.
    public var isRolledBack: Bool { rolledBack.load(ordering: .acquiring) }

    /// Marks it rolled back; false when it already was.
    func markRolledBack() -> Bool {
        rolledBack.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
    }
}

/// The OpenAI-shaped answers of a student.
enum StudentReply {
    /// `logprobs.content` of one answer token, with up to `top` alternatives (label order by probability).
    static func logprobs(_ prediction: ServedStudent.Prediction, labels: [String], top: Int) -> JSON {
        func entry(_ index: Int) -> JSON {
            let label = labels[index]
            return [
                "token": .string(label),
                "logprob": .number(Foundation.log(max(Double(prediction.probabilities[index]), 1e-30))),
                "bytes": .array(label.utf8.map { .int(Int($0)) }),
            ]
        }
        let ranked = prediction.probabilities.indices.sorted {
            (prediction.probabilities[$0], $1) > (prediction.probabilities[$1], $0)
        }
        var chosen = entry(prediction.index)
        chosen["top_logprobs"] = .array(ranked.prefix(max(0, min(top, 20))).map(entry))
        return ["content": [chosen]]
    }

    /// The `logprobs` member the client asked for (`null` unless `logprobs: true`).
    static func logprobs(for chat: JSON, _ prediction: ServedStudent.Prediction, labels: [String]) -> JSON {
        guard chat["logprobs"]?.bool == true else { return .null }
        return logprobs(prediction, labels: labels, top: chat["top_logprobs"]?.int ?? 0)
    }

    static let zeroUsage: JSON = ["prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0]

    /// A `chat.completion` whose content is the label.
    static func completion(
        _ prediction: ServedStudent.Prediction, student: ServedStudent, chat: JSON, id: String, created: Int
    ) -> JSON {
        [
            "id": .string(id), "object": "chat.completion", "created": .int(created),
            "model": .string(student.record.student),
            "choices": [
                [
                    "index": 0, "message": ["role": "assistant", "content": .string(prediction.label)],
                    "logprobs": logprobs(for: chat, prediction, labels: student.bundle.labels), "finish_reason": "stop",
                ]
            ],
            "usage": zeroUsage,
        ]
    }

    /// The server-sent events of the same answer, `[DONE]` included.
    static func stream(
        _ prediction: ServedStudent.Prediction, student: ServedStudent, chat: JSON, id: String, created: Int,
        usage: Bool
    ) -> String {
        func chunk(_ choices: JSON, usage: JSON? = nil) -> String {
            var object: JSON = [
                "id": .string(id), "object": "chat.completion.chunk", "created": .int(created),
                "model": .string(student.record.student), "choices": choices,
            ]
            if let usage { object["usage"] = usage }
            return "data: " + object.text + "\n\n"
        }
        var text = chunk([
            [
                "index": 0, "delta": ["role": "assistant", "content": .string(prediction.label)],
                "logprobs": logprobs(for: chat, prediction, labels: student.bundle.labels), "finish_reason": .null,
            ]
        ])
        text += chunk([["index": 0, "delta": [:], "finish_reason": "stop"]])
        if usage { text += chunk([], usage: zeroUsage) }
        return text + "data: [DONE]\n\n"
    }
}

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
    ) -> Response {
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
        guard record(row) else { return failure(Gateway.ledgerUnavailable) }
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
            case .success(let reservation) = budgets.reserve(
                key: key, usd: maxTokens * route.highestPerMTok / 1_000_000, tokens: maxTokens)
        else {
            metrics.shadow(route: route.name, outcome: "skipped_budget")
            return
        }
        var row = LedgerRow(
            time: started, keyHash: key.sha256, user: key.user, team: key.team, route: route.name, session: session,
            status: 0, kind: "shadow")
        let outcome = await dispatcher.dispatch(
            body, route: route, stream: false, retry: config.retry, estimatedTokens: bounds.prompt + bounds.output)
        row.latencyMilliseconds = (Date().timeIntervalSince1970 - started) * 1000
        guard case .completed(let answer, let deployment, let attempts, let failover) = outcome else {
            budgets.settle(reservation, usd: 0, tokens: 0)
            row.status = 503
            row.errorCode = "shadow_failed"
            _ = record(row)
            metrics.shadow(route: route.name, outcome: "teacher_failed")
            return
        }
        let cost = deployment.price.cost(of: answer.usage)
        budgets.settle(reservation, usd: cost, tokens: Double(answer.usage.total))
        row.answered(by: deployment, usage: answer.usage, cost: cost, attempts: attempts, failover: failover)
        row.timeToFirstTokenMilliseconds = row.latencyMilliseconds
        metrics.request(route: route.name, status: 200, seconds: row.latencyMilliseconds / 1000, spendUSD: cost)
        _ = record(row)
        let text = answer.body["choices"]?[0]?["message"]?["content"]?.string ?? ""
        let teacherLabel = LabelMatcher.label(for: text, in: student.bundle.labels)
        let agree = teacherLabel == prediction.label
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

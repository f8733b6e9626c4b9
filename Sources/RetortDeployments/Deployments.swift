import Foundation
import RetortData
import RetortTeacher

/// A student put on a route by `retort deploy` (FORMATS.md §8), as the ledger keeps it.
public struct DeploymentRecord: Sendable, Equatable {
    /// Where the deployment stands.
    public enum State: String, Sendable {
        /// The gateway answers the route's sure inputs with the student.
        case serving
        /// Shadow checks (or an operator) took the student off; only a new `deploy` puts one back.
        case rolledBack = "rolled_back"
        /// A later `deploy` on the same route took its place.
        case replaced
    }

    /// Ledger id (0 before it is stored).
    public var id: Int = 0
    /// Unix seconds of the deploy.
    public var time: Double
    /// The route it serves.
    public var route: String
    /// The run's candidate id.
    public var candidate: String
    /// `student` or `cascade` (what the run recommended).
    public var kind: String
    /// The run folder it came from.
    public var runDirectory: String
    /// The copy of the exported model the gateway loads (beside the ledger, so deleting the run does not break it).
    public var modelDirectory: String
    /// The task name shadow answers are captured for when the route has no `capture:`.
    public var task: String
    /// The student answers when its top probability (a structured student's confidence) is at least this; the rest go
    /// to the teacher.
    public var threshold: Double
    /// Share of student answers also sent to the teacher.
    public var shadow: Double
    /// Roll back when the upper bound of the shadow agreement's 95% interval falls below this.
    public var minAgreement: Double
    /// Serving price: USD per vCPU-second (from the run's cost model), times the measured prediction time.
    public var usdPerVCPUSecond: Double
    /// The run's validation agreement at the threshold (value, CI low, CI high), when the report had it.
    public var validationAgreement: [Double]?
    /// Where it stands.
    public var state: State
    /// When it was rolled back or replaced.
    public var endedAt: Double?
    /// Why it was rolled back or replaced.
    public var reason: String?

    /// Creates a record.
    public init(
        time: Double, route: String, candidate: String, kind: String, runDirectory: String, modelDirectory: String,
        task: String, threshold: Double, shadow: Double, minAgreement: Double, usdPerVCPUSecond: Double,
        validationAgreement: [Double]? = nil, state: State = .serving
    ) {
        self.time = time
        self.route = route
        self.candidate = candidate
        self.kind = kind
        self.runDirectory = runDirectory
        self.modelDirectory = modelDirectory
        self.task = task
        self.threshold = threshold
        self.shadow = shadow
        self.minAgreement = minAgreement
        self.usdPerVCPUSecond = usdPerVCPUSecond
        self.validationAgreement = validationAgreement
        self.state = state
    }

    /// The name the gateway serves it under: `student/CANDIDATE.ID`.
    public var student: String { "student/\(candidate).\(id)" }
}

/// One shadow check: the teacher's answer to an input the student answered.
public struct ShadowRecord: Sendable, Equatable {
    /// Unix seconds.
    public var time: Double
    /// The deployment checked.
    public var deploymentID: Int
    /// Its route.
    public var route: String
    /// The input the student read.
    public var input: String
    /// The student's label (a structured student's answer as canonical JSON).
    public var studentLabel: String
    /// The teacher's answer text.
    public var teacherAnswer: String
    /// The label the answer matched, if any (structured: the answer as canonical JSON, when it is one flat object).
    public var teacherLabel: String?
    /// Whether they agree.
    public var agree: Bool
    /// What the teacher call cost.
    public var costUSD: Double
    /// How long it took, in ms.
    public var latencyMilliseconds: Double

    /// Creates a record.
    package init(
        time: Double, deploymentID: Int, route: String, input: String, studentLabel: String, teacherAnswer: String,
        teacherLabel: String?, agree: Bool, costUSD: Double, latencyMilliseconds: Double
    ) {
        self.time = time
        self.deploymentID = deploymentID
        self.route = route
        self.input = input
        self.studentLabel = studentLabel
        self.teacherAnswer = teacherAnswer
        self.teacherLabel = teacherLabel
        self.agree = agree
        self.costUSD = costUSD
        self.latencyMilliseconds = latencyMilliseconds
    }
}

/// Agreement on the newest shadow answers with its Wilson 95% interval.
public struct ShadowAgreement: Sendable, Equatable {
    /// How many answers the window holds.
    public static let window = 200
    /// Answers needed before the interval can roll a deployment back.
    public static let minimumAnswers = 20

    /// Agreeing answers.
    public var agreeing: Int
    /// Answers.
    public var count: Int

    /// Creates a tally.
    public init(agreeing: Int, count: Int) {
        self.agreeing = agreeing
        self.count = count
    }

    /// The tally of `outcomes` (oldest first), keeping the newest `window`.
    public init(outcomes: [Bool]) {
        let newest = outcomes.suffix(ShadowAgreement.window)
        self.init(agreeing: newest.filter { $0 }.count, count: newest.count)
    }

    /// The share that agrees (0 with no answers).
    public var value: Double { count == 0 ? 0 : Double(agreeing) / Double(count) }

    /// The Wilson score 95% interval (0...1 with no answers).
    public var interval: (low: Double, high: Double) {
        guard count > 0 else { return (0, 1) }
        let z = 1.959_963_984_540_054
        let n = Double(count)
        let p = value
        let denominator = 1 + z * z / n
        let center = (p + z * z / (2 * n)) / denominator
        let half = z * (p * (1 - p) / n + z * z / (4 * n * n)).squareRoot() / denominator
        return (max(0, center - half), min(1, center + half))
    }

    /// Whether the evidence says the student no longer agrees well enough.
    public func fallsBelow(_ minimum: Double) -> Bool {
        count >= ShadowAgreement.minimumAnswers && interval.high < minimum
    }

    /// `{"value", "ci95", "n"}`.
    public var json: JSON {
        let (low, high) = interval
        func round(_ x: Double) -> JSON { .number((x * 10_000).rounded() / 10_000) }
        return ["value": count == 0 ? .null : round(value), "ci95": [round(low), round(high)], "n": .int(count)]
    }
}

extension Ledger {
    /// Stores `record` as the route's serving deployment; the route's earlier serving one becomes `replaced`, and a
    /// rolled-back one stays rolled back. Returns the stored record (with its id).
    public func deploy(_ record: DeploymentRecord) throws -> DeploymentRecord {
        try database.transaction { statements in
            try statements.execute(
                "UPDATE deployments SET state = 'replaced', ended_at = ?, reason = ? WHERE route = ? AND state = 'serving'",
                [record.time.ledgerValue, .text("replaced by a new deploy"), record.route.ledgerValue])
            var stored = record
            stored.id = try statements.insert(
                """
                INSERT INTO deployments (time, route, candidate, kind, run_dir, model_dir, task, threshold, shadow,
                    min_agreement, usd_per_vcpu_second, validation_agreement, state)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                [
                    record.time.ledgerValue, record.route.ledgerValue, record.candidate.ledgerValue,
                    record.kind.ledgerValue, record.runDirectory.ledgerValue, record.modelDirectory.ledgerValue,
                    record.task.ledgerValue, record.threshold.ledgerValue, record.shadow.ledgerValue,
                    record.minAgreement.ledgerValue, record.usdPerVCPUSecond.ledgerValue,
                    record.validationAgreement.map { JSON.array($0.map { .number($0) }).text }.ledgerValue,
                    record.state.rawValue.ledgerValue,
                ])
            return stored
        }
    }

    /// Deployments, newest first; only `route`'s when given.
    public func deployments(route: String? = nil) throws -> [DeploymentRecord] {
        let rows =
            if let route {
                try database.query("SELECT * FROM deployments WHERE route = ? ORDER BY id DESC", [.text(route)])
            } else {
                try database.query("SELECT * FROM deployments ORDER BY id DESC", [])
            }
        return rows.map(Ledger.deployment)
    }

    /// The newest deployment of each route (whatever its state), by route name; only `route`'s when given.
    public func newestDeployments(route: String? = nil) throws -> [DeploymentRecord] {
        var newest: [String: DeploymentRecord] = [:]
        for record in try deployments(route: route) where newest[record.route] == nil { newest[record.route] = record }
        return newest.values.sorted { $0.route < $1.route }
    }

    /// The deployment currently serving each route.
    public func servingDeployments() throws -> [DeploymentRecord] {
        try database.query("SELECT * FROM deployments WHERE state = 'serving' ORDER BY id", []).map(Ledger.deployment)
    }

    static func deployment(_ row: LedgerRecord) -> DeploymentRecord {
        var record = DeploymentRecord(
            time: row.double("time"), route: row.string("route"), candidate: row.string("candidate"),
            kind: row.string("kind"), runDirectory: row.string("run_dir"), modelDirectory: row.string("model_dir"),
            task: row.string("task"), threshold: row.double("threshold"), shadow: row.double("shadow"),
            minAgreement: row.double("min_agreement"), usdPerVCPUSecond: row.double("usd_per_vcpu_second"),
            validationAgreement: row.optionalString("validation_agreement").flatMap { try? JSON.parse($0) }?.array?
                .compactMap(\.double),
            state: DeploymentRecord.State(rawValue: row.string("state")) ?? .replaced)
        record.id = row.int("id")
        record.endedAt = row.optionalDouble("ended_at")
        record.reason = row.optionalString("reason")
        return record
    }

    /// Marks deployment `id` rolled back if it is serving; returns whether it was.
    @discardableResult
    public func rollBack(deployment id: Int, time: Double, reason: String) throws -> Bool {
        try database.execute(
            "UPDATE deployments SET state = 'rolled_back', ended_at = ?, reason = ? WHERE id = ? AND state = 'serving'",
            [time.ledgerValue, reason.ledgerValue, id.ledgerValue]) > 0
    }

    /// Stores one shadow check.
    public func record(_ shadow: ShadowRecord) throws {
        try database.execute(
            """
            INSERT INTO shadows (time, deployment_id, route, input, student_label, teacher_answer, teacher_label,
                agree, cost_usd, latency_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [
                shadow.time.ledgerValue, shadow.deploymentID.ledgerValue, shadow.route.ledgerValue,
                shadow.input.ledgerValue, shadow.studentLabel.ledgerValue, shadow.teacherAnswer.ledgerValue,
                shadow.teacherLabel.ledgerValue, shadow.agree.ledgerValue, shadow.costUSD.ledgerValue,
                shadow.latencyMilliseconds.ledgerValue,
            ])
    }

    /// The newest shadow outcomes of deployment `id` (the rollback window), oldest first.
    public func shadowOutcomes(deployment id: Int) throws -> [Bool] {
        try database.query(
            "SELECT agree FROM shadows WHERE deployment_id = ? ORDER BY id DESC LIMIT ?",
            [id.ledgerValue, ShadowAgreement.window.ledgerValue]
        ).map { $0.bool("agree") }.reversed()
    }

    /// Agreement of deployment `id` over its newest shadow answers (the rollback window).
    public func shadowAgreement(deployment id: Int) throws -> ShadowAgreement {
        ShadowAgreement(outcomes: try shadowOutcomes(deployment: id))
    }

    /// Shadow checks since `since`, oldest first.
    public func shadows(since: Double = 0) throws -> [ShadowRecord] {
        try database.query("SELECT * FROM shadows WHERE time >= ? ORDER BY id", [.real(since)]).map {
            ShadowRecord(
                time: $0.double("time"), deploymentID: $0.int("deployment_id"), route: $0.string("route"),
                input: $0.string("input"), studentLabel: $0.string("student_label"),
                teacherAnswer: $0.string("teacher_answer"), teacherLabel: $0.optionalString("teacher_label"),
                agree: $0.bool("agree"), costUSD: $0.double("cost_usd"), latencyMilliseconds: $0.double("latency_ms"))
        }
    }
}

extension DeploymentRecord {
    /// The `retort deploy status --json` object (FORMATS.md §8).
    public func statusJSON(agreement: ShadowAgreement) -> JSON {
        var object: [String: JSON] = [
            "route": .string(route), "student": .string(student), "candidate": .string(candidate),
            "kind": .string(kind), "threshold": .number(threshold), "shadow": .number(shadow),
            "min_agreement": .number(minAgreement), "state": .string(state.rawValue), "agreement": agreement.json,
            "deployed_at": .string(Self.timestamp(time)), "run_dir": .string(runDirectory),
            "rolled_back_at": state == .rolledBack ? endedAt.map { .string(Self.timestamp($0)) } ?? .null : .null,
            "reason": reason.map { .string($0) } ?? .null,
        ]
        if let validation = validationAgreement, validation.count == 3 {
            object["validation_agreement"] = [
                "value": .number(validation[0]), "ci95": [.number(validation[1]), .number(validation[2])],
            ]
        }
        return .object(object)
    }

    static func timestamp(_ time: Double) -> String {
        ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: time))
    }
}

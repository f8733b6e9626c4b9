import Foundation
import GRDB
import RetortData

/// One `/v1/chat/completions` request as the ledger keeps it.
public struct LedgerRow: Sendable, Equatable {
    /// Unix seconds.
    public var time: Double
    /// SHA-256 of the client key.
    public var keyHash: String
    /// The key's user.
    public var user: String
    /// The key's team.
    public var team: String
    /// The route (model name) the client asked for.
    public var route: String
    /// `provider/model` of the deployment that served, when one did.
    public var deployment: String?
    /// The upstream model that answered.
    public var servedModel: String?
    /// The session id.
    public var session: String
    /// Tokens by kind.
    public var usage: TokenUsage
    /// Cost in USD.
    public var costUSD: Double
    /// Wall time from request to last byte, in ms.
    public var latencyMilliseconds: Double
    /// Time to the first byte of the answer, in ms.
    public var timeToFirstTokenMilliseconds: Double?
    /// The HTTP status the client saw (a stream failed after its first byte records 502).
    public var status: Int
    /// The error code the client saw, if any.
    public var errorCode: String?
    /// Upstream requests made.
    public var attempts: Int
    /// Served by a deployment other than the route's first.
    public var failover: Bool
    /// Whether the client asked for a stream.
    public var stream: Bool
    /// `client` for a client's request, `shadow` for the gateway's own check of a student answer (its spend is
    /// real and counts; it is not a client request).
    public var kind: String = "client"

    /// Creates a value from its parts.
    public init(
        time: Double, keyHash: String, user: String, team: String, route: String, deployment: String? = nil,
        servedModel: String? = nil, session: String, usage: TokenUsage = TokenUsage(), costUSD: Double = 0,
        latencyMilliseconds: Double = 0, timeToFirstTokenMilliseconds: Double? = nil, status: Int,
        errorCode: String? = nil, attempts: Int = 0, failover: Bool = false, stream: Bool = false,
        kind: String = "client"
    ) {
        self.time = time
        self.keyHash = keyHash
        self.user = user
        self.team = team
        self.route = route
        self.deployment = deployment
        self.servedModel = servedModel
        self.session = session
        self.usage = usage
        self.costUSD = costUSD
        self.latencyMilliseconds = latencyMilliseconds
        self.timeToFirstTokenMilliseconds = timeToFirstTokenMilliseconds
        self.status = status
        self.errorCode = errorCode
        self.attempts = attempts
        self.failover = failover
        self.stream = stream
        self.kind = kind
    }
}

extension LedgerRow {
    /// Fills in a 200 answer from `deployment`.
    package mutating func answered(
        by deployment: Deployment, usage: TokenUsage, cost: Double, attempts: Int, failover: Bool
    ) {
        self.deployment = deployment.id
        servedModel = deployment.model
        self.usage = usage
        costUSD = cost
        self.attempts = attempts
        self.failover = failover
        status = 200
    }
}

/// A session-breaker trip as the ledger keeps it.
public struct SessionTrip: Sendable, Equatable {
    /// Unix seconds.
    public var time: Double
    /// The session id.
    public var session: String
    /// The key's user.
    public var user: String
    /// Why it tripped.
    public var reason: String
    /// How long the session has run.
    public var durationSeconds: Double
    /// Tokens the session has used.
    public var tokens: Int
    /// USD the session has spent.
    public var spendUSD: Double

    /// Creates a record.
    package init(
        time: Double, session: String, user: String, reason: String, durationSeconds: Double, tokens: Int,
        spendUSD: Double
    ) {
        self.time = time
        self.session = session
        self.user = user
        self.reason = reason
        self.durationSeconds = durationSeconds
        self.tokens = tokens
        self.spendUSD = spendUSD
    }
}

/// The gateway's SQLite ledger (WAL): requests, session trips and confirmations. One writer owns it.
public final class Ledger: Sendable {
    package let pool: DatabasePool
    /// The database file.
    public let path: String

    /// Opens (creating if needed) the ledger at `path`; `busyTimeout` bounds how long a write waits for a lock.
    public init(path: String, busyTimeout: Double = 2) throws(DataError) {
        self.path = path
        let folder = (path as NSString).deletingLastPathComponent
        if !folder.isEmpty {
            try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        }
        var configuration = Configuration()
        configuration.busyMode = .timeout(busyTimeout)
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
        }
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            try pool.write { db in try Ledger.migrate(db) }
        } catch {
            throw DataError(.cannotCreateOutput, "cannot open the ledger: \(error)", file: path)
        }
    }

    static func migrate(_ db: Database) throws {
        try db.execute(
            sql: """
                CREATE TABLE IF NOT EXISTS requests (
                    id INTEGER PRIMARY KEY, time REAL NOT NULL, key_hash TEXT NOT NULL, user TEXT NOT NULL,
                    team TEXT NOT NULL, route TEXT NOT NULL, deployment TEXT, served_model TEXT, session TEXT NOT NULL,
                    input_tokens INTEGER NOT NULL, cached_input_tokens INTEGER NOT NULL,
                    cache_write_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,
                    reasoning_tokens INTEGER NOT NULL, cost_usd REAL NOT NULL, latency_ms REAL NOT NULL,
                    ttft_ms REAL, status INTEGER NOT NULL, error_code TEXT, attempts INTEGER NOT NULL,
                    failover INTEGER NOT NULL, stream INTEGER NOT NULL, kind TEXT NOT NULL DEFAULT 'client');
                CREATE INDEX IF NOT EXISTS requests_time ON requests(time);
                CREATE TABLE IF NOT EXISTS trips (
                    id INTEGER PRIMARY KEY, time REAL NOT NULL, session TEXT NOT NULL, user TEXT NOT NULL,
                    reason TEXT NOT NULL, duration_s REAL NOT NULL, tokens INTEGER NOT NULL, spend_usd REAL NOT NULL);
                CREATE TABLE IF NOT EXISTS confirmations (
                    id INTEGER PRIMARY KEY, time REAL NOT NULL, session TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS captures (
                    id INTEGER PRIMARY KEY, time REAL NOT NULL, task TEXT NOT NULL, route TEXT NOT NULL,
                    input TEXT NOT NULL, answer TEXT NOT NULL, top_logprobs TEXT, input_tokens INTEGER NOT NULL,
                    output_tokens INTEGER NOT NULL, cost_usd REAL NOT NULL, latency_ms REAL NOT NULL,
                    model TEXT NOT NULL, deployment TEXT NOT NULL);
                CREATE INDEX IF NOT EXISTS captures_task ON captures(task);
                CREATE TABLE IF NOT EXISTS failovers (
                    id INTEGER PRIMARY KEY, time REAL NOT NULL, route TEXT NOT NULL, deployment TEXT NOT NULL,
                    reason TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS deployments (
                    id INTEGER PRIMARY KEY, time REAL NOT NULL, route TEXT NOT NULL, candidate TEXT NOT NULL,
                    kind TEXT NOT NULL, run_dir TEXT NOT NULL, model_dir TEXT NOT NULL, task TEXT NOT NULL,
                    threshold REAL NOT NULL, shadow REAL NOT NULL, min_agreement REAL NOT NULL,
                    usd_per_vcpu_second REAL NOT NULL, validation_agreement TEXT, state TEXT NOT NULL,
                    ended_at REAL, reason TEXT);
                CREATE INDEX IF NOT EXISTS deployments_route ON deployments(route);
                CREATE TABLE IF NOT EXISTS shadows (
                    id INTEGER PRIMARY KEY, time REAL NOT NULL, deployment_id INTEGER NOT NULL, route TEXT NOT NULL,
                    input TEXT NOT NULL, student_label TEXT NOT NULL, teacher_answer TEXT NOT NULL,
                    teacher_label TEXT, agree INTEGER NOT NULL, cost_usd REAL NOT NULL, latency_ms REAL NOT NULL);
                CREATE INDEX IF NOT EXISTS shadows_deployment ON shadows(deployment_id);
                """
        )
        // Ledgers written before deployments existed have no `kind` column.
        if try !db.columns(in: "requests").contains(where: { $0.name == "kind" }) {
            try db.execute(sql: "ALTER TABLE requests ADD COLUMN kind TEXT NOT NULL DEFAULT 'client'")
        }
    }

    /// Commits `row` (synchronously: when this returns, the row survives the process being killed).
    public func record(_ row: LedgerRow) throws {
        // One INSERT in autocommit mode is its own transaction; no BEGIN/COMMIT round trips.
        try pool.writeWithoutTransaction { db in
            let statement = try db.cachedStatement(
                sql: """
                    INSERT INTO requests (time, key_hash, user, team, route, deployment, served_model, session,
                        input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, reasoning_tokens,
                        cost_usd, latency_ms, ttft_ms, status, error_code, attempts, failover, stream, kind)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """
            )
            try statement.execute(
                arguments: [
                    row.time, row.keyHash, row.user, row.team, row.route, row.deployment, row.servedModel,
                    row.session, row.usage.inputUncached, row.usage.cacheRead, row.usage.cacheWrite,
                    row.usage.output, row.usage.reasoning, row.costUSD, row.latencyMilliseconds,
                    row.timeToFirstTokenMilliseconds, row.status, row.errorCode, row.attempts, row.failover,
                    row.stream, row.kind,
                ]
            )
        }
    }

    /// Checks that the ledger can take a write now (used to fail closed after a failed write).
    public func probeWritable() throws {
        try pool.write { db in try db.execute(sql: "CREATE TABLE IF NOT EXISTS probe (x); DELETE FROM probe") }
    }

    /// Records one captured teacher answer.
    public func record(_ capture: Capture) throws {
        try pool.writeWithoutTransaction { db in
            try db.execute(
                sql: """
                    INSERT INTO captures (time, task, route, input, answer, top_logprobs, input_tokens, output_tokens,
                        cost_usd, latency_ms, model, deployment) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    capture.time, capture.task, capture.route, capture.input, capture.answer,
                    capture.topLogprobs.map { JSON.array($0.map { [.string($0.token), .number($0.logprob)] }).text },
                    capture.inputTokens, capture.outputTokens, capture.costUSD, capture.latencyMilliseconds,
                    capture.model, capture.deployment,
                ])
        }
    }

    /// The captures of `task`, oldest first.
    public func captures(task: String) throws -> [Capture] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM captures WHERE task = ? ORDER BY id", arguments: [task]).map {
                row in
                let text: String? = row["top_logprobs"]
                let alternatives = text.flatMap { try? JSON.parse($0) }?.array?.compactMap {
                    pair -> (String, Double)? in
                    guard let token = pair[0]?.string, let logprob = pair[1]?.double else { return nil }
                    return (token, logprob)
                }
                return Capture(
                    id: row["id"], time: row["time"], task: row["task"], route: row["route"], input: row["input"],
                    answer: row["answer"], topLogprobs: alternatives, inputTokens: row["input_tokens"],
                    outputTokens: row["output_tokens"], costUSD: row["cost_usd"],
                    latencyMilliseconds: row["latency_ms"],
                    model: row["model"], deployment: row["deployment"])
            }
        }
    }

    /// Records a session-breaker trip.
    public func record(_ trip: SessionTrip) throws {
        try pool.write { db in
            try db.execute(
                sql:
                    "INSERT INTO trips (time, session, user, reason, duration_s, tokens, spend_usd) VALUES (?, ?, ?, ?, ?, ?, ?)",
                arguments: [
                    trip.time, trip.session, trip.user, trip.reason, trip.durationSeconds, trip.tokens, trip.spendUSD,
                ]
            )
        }
    }

    /// Records a deployment skipped or abandoned for `reason` on `route`.
    public func recordFailover(route: String, deployment: String, reason: String, time: Double) throws {
        try pool.write { db in
            try db.execute(
                sql: "INSERT INTO failovers (time, route, deployment, reason) VALUES (?, ?, ?, ?)",
                arguments: [time, route, deployment, reason]
            )
        }
    }

    /// Confirms `session` (`retort gateway confirm`), refusing a session that never tripped.
    public func confirmTripped(session: String, time: Double) throws {
        guard try trips().contains(where: { $0.session == session }) else {
            throw DataError(.usage, "no session \(session) has tripped; the dashboard lists trips", file: path)
        }
        try confirm(session: session, time: time)
    }

    /// Records a confirmation of `session` (from `retort gateway confirm` or the HTTP endpoint).
    public func confirm(session: String, time: Double) throws {
        try pool.write { db in
            try db.execute(sql: "INSERT INTO confirmations (time, session) VALUES (?, ?)", arguments: [time, session])
        }
    }

    /// The newest confirmation time of `session`, if any.
    public func lastConfirmation(of session: String) throws -> Double? {
        try pool.read { db in
            try Double.fetchOne(db, sql: "SELECT MAX(time) FROM confirmations WHERE session = ?", arguments: [session])
        }
    }

    /// Every request row since `since` (unix seconds), oldest first.
    public func rows(since: Double = 0) throws -> [LedgerRow] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM requests WHERE time >= ? ORDER BY id", arguments: [since]).map {
                row in
                LedgerRow(
                    time: row["time"], keyHash: row["key_hash"], user: row["user"], team: row["team"],
                    route: row["route"], deployment: row["deployment"], servedModel: row["served_model"],
                    session: row["session"],
                    usage: TokenUsage(
                        inputUncached: row["input_tokens"], cacheRead: row["cached_input_tokens"],
                        cacheWrite: row["cache_write_tokens"], output: row["output_tokens"],
                        reasoning: row["reasoning_tokens"]
                    ),
                    costUSD: row["cost_usd"], latencyMilliseconds: row["latency_ms"],
                    timeToFirstTokenMilliseconds: row["ttft_ms"], status: row["status"], errorCode: row["error_code"],
                    attempts: row["attempts"], failover: row["failover"], stream: row["stream"], kind: row["kind"]
                )
            }
        }
    }

    /// Every trip since `since`, newest first.
    public func trips(since: Double = 0) throws -> [SessionTrip] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM trips WHERE time >= ? ORDER BY time DESC", arguments: [since])
                .map { row in
                    SessionTrip(
                        time: row["time"], session: row["session"], user: row["user"], reason: row["reason"],
                        durationSeconds: row["duration_s"], tokens: row["tokens"], spendUSD: row["spend_usd"]
                    )
                }
        }
    }

    /// Failover events since `since`: (time, route, deployment, reason), newest first.
    public func failovers(since: Double = 0) throws -> [(
        time: Double, route: String, deployment: String, reason: String
    )] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM failovers WHERE time >= ? ORDER BY time DESC", arguments: [since])
                .map { ($0["time"], $0["route"], $0["deployment"], $0["reason"]) }
        }
    }

    /// Settled spend and tokens since `since`, grouped by key hash, user and team (for budgets at start-up).
    public func spend(since: Double) throws -> (
        keys: [String: (usd: Double, tokens: Double)], users: [String: (usd: Double, tokens: Double)],
        teams: [String: (usd: Double, tokens: Double)]
    ) {
        try pool.read { db in
            func grouped(_ column: String) throws -> [String: (usd: Double, tokens: Double)] {
                var result: [String: (usd: Double, tokens: Double)] = [:]
                let rows = try Row.fetchAll(
                    db,
                    sql: """
                        SELECT \(column) AS name, SUM(cost_usd) AS usd,
                            SUM(input_tokens + cached_input_tokens + cache_write_tokens + output_tokens) AS tokens
                        FROM requests WHERE time >= ? GROUP BY \(column)
                        """,
                    arguments: [since]
                )
                for row in rows {
                    let name: String = row["name"]
                    result[name] = (row["usd"] ?? 0, row["tokens"] ?? 0)
                }
                return result
            }
            return (try grouped("key_hash"), try grouped("user"), try grouped("team"))
        }
    }
}

/// One request of a `capture:` route: the input, the teacher's answer and what it cost.
public struct Capture: Sendable {
    /// Row id in the ledger (0 before it is stored).
    public var id: Int = 0
    /// Unix seconds.
    public var time: Double
    /// The task the route captures for.
    public var task: String
    /// The route.
    public var route: String
    /// The input, as the route's `capture_input` template picks it.
    public var input: String
    /// The answer's text.
    public var answer: String
    /// The first answer token's alternatives, when the deployment gave logprobs.
    public var topLogprobs: [(token: String, logprob: Double)]?
    /// Input tokens (all kinds).
    public var inputTokens: Int
    /// Output tokens.
    public var outputTokens: Int
    /// What the answer cost.
    public var costUSD: Double
    /// Request latency in ms.
    public var latencyMilliseconds: Double
    /// The upstream model that answered.
    public var model: String
    /// `provider/model`.
    public var deployment: String

    /// Creates a record.
    package init(
        id: Int = 0, time: Double, task: String, route: String, input: String, answer: String,
        topLogprobs: [(token: String, logprob: Double)]?, inputTokens: Int, outputTokens: Int, costUSD: Double,
        latencyMilliseconds: Double, model: String, deployment: String
    ) {
        self.id = id
        self.time = time
        self.task = task
        self.route = route
        self.input = input
        self.answer = answer
        self.topLogprobs = topLogprobs
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.costUSD = costUSD
        self.latencyMilliseconds = latencyMilliseconds
        self.model = model
        self.deployment = deployment
    }
}

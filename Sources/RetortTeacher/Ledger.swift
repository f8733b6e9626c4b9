import Foundation
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
    /// The shared budget reservation this request held (PostgreSQL ledgers), released when the row is recorded.
    public var reservationID: Int?

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

/// The gateway's ledger: requests, session trips and confirmations, captures, failovers, deployments and shadow
/// checks, shared budget reservations. One SQLite file (WAL) on one machine, or a PostgreSQL database shared by gateway
/// replicas; every reader and writer goes through `database`, in SQL both understand.
public final class Ledger: Sendable {
    /// The database that holds the tables.
    public let database: any LedgerDatabase
    /// The SQLite file, or for PostgreSQL the local anchor beside which pid files and deployed models live.
    public let path: String
    /// Where request rows are written: `database` for SQLite; for PostgreSQL its own connections, whose commits do not
    /// wait for the server's WAL flush unless the ledger was opened with `synchronousCommit`.
    let rowWriter: any LedgerDatabase
    /// Group commit of request rows (`recordGrouped`), PostgreSQL only: SQLite commits a row in its caller.
    let rowGroup: LedgerRowGroup?

    /// Opens (creating if needed) the SQLite ledger at `path`; `busyTimeout` bounds how long a write waits for a lock.
    public init(path: String, busyTimeout: Double = 2) throws(DataError) {
        self.path = path
        do {
            let sqlite = try SQLiteLedgerDatabase(path: path, busyTimeout: busyTimeout)
            try sqlite.executeScript(LedgerSchema.sqlite)
            try LedgerSchema.upgradeSQLite(sqlite)
            database = sqlite
            rowWriter = sqlite
            rowGroup = nil
        } catch {
            throw DataError(.cannotCreateOutput, "cannot open the ledger: \(error)", file: path)
        }
    }

    /// Opens the PostgreSQL ledger at `location`, creating or migrating its schema (under an advisory lock, so
    /// replicas starting together apply each migration once); `path` is the local anchor (see `path`).
    ///
    /// Request rows commit with `synchronous_commit = off` unless `synchronousCommit`: a row has committed (every
    /// replica sees it, and it survives this process) before its request is answered, but the server flushes it to
    /// disk up to 3 × `wal_writer_delay` later (0.6 s by default), so a crash of the PostgreSQL server itself can lose
    /// the last fraction of a second of request rows. With `synchronousCommit` the answer also waits for that flush.
    public init(
        postgres location: PostgresLedgerLocation, path: String, maximumConnections: Int = 8,
        synchronousCommit: Bool = false
    ) throws(DataError) {
        self.path = path
        let postgres = PostgresLedgerDatabase(location, maximumConnections: maximumConnections)
        do {
            try LedgerSchema.migratePostgres(postgres)
        } catch {
            postgres.close()
            throw DataError(
                .io, "cannot open the ledger \(location): \(Ledger.describe(error))", file: path)
        }
        database = postgres
        let writer = PostgresLedgerDatabase(
            location, maximumConnections: 2,
            startupParameters: synchronousCommit ? [] : [("synchronous_commit", "off")])
        rowWriter = writer
        rowGroup = LedgerRowGroup { rows in try Ledger.write(rows, to: writer) }
    }

    /// An error in one line: PostgresNIO's own description hides the server's message, its reflection shows it.
    static func describe(_ error: any Error) -> String {
        String(String(reflecting: error).split(whereSeparator: \.isNewline).joined(separator: " ").prefix(400))
    }

    /// A SQLite database of the ledger's kind at `path` (the label cache's own file).
    public static func openSQLite(path: String, busyTimeout: Double) throws -> any LedgerDatabase {
        try SQLiteLedgerDatabase(path: path, busyTimeout: busyTimeout)
    }

    /// Opens the ledger `config` names (`ledger:` in gateway.yaml).
    public convenience init(config: GatewayConfig, busyTimeout: Double = 2) throws(DataError) {
        switch config.ledger {
        case .sqlite(let path): try self.init(path: path, busyTimeout: busyTimeout)
        case .postgres(let location):
            try self.init(
                postgres: location, path: config.ledgerPath, synchronousCommit: config.ledgerSynchronousCommit)
        }
    }

    /// SQLite or PostgreSQL.
    public var backend: LedgerBackend { database.backend }

    /// A long-running writer (the gateway) on an SQLite ledger checkpoints its WAL from a thread of its own, every
    /// `interval` seconds, instead of inside the commit that fills it, and folds the new request rows into the budget
    /// counters just before (`foldCounters`; a failed fold is retried at the next); PostgreSQL: nothing to do.
    public func checkpointInBackground(every interval: Double = 1) throws {
        guard let sqlite = database as? SQLiteLedgerDatabase else { return }
        try sqlite.checkpointInBackground(every: interval) { [weak self] in try? self?.foldCounters() }
    }

    /// Whether budgets and sessions are shared with other gateway processes through the database (PostgreSQL).
    public var isShared: Bool { database.backend == .postgres }

    /// Folds the request rows into the budget counters (SQLite; a failure leaves them to the next open) and closes the
    /// database's connections.
    public func close() {
        try? foldCounters()
        database.close()
        rowWriter.close()
    }

    /// Commits `row` now (when this returns, the row survives this process being killed).
    public func record(_ row: LedgerRow) throws { try Ledger.write([row], to: rowWriter) }

    /// Commits `row` with the rows of other requests in flight (group commit, PostgreSQL): returns once its batch has
    /// committed, throws when the batch could not be (none of its rows is stored then). SQLite has no `rowGroup` and
    /// commits the row in the caller (`record`): a local commit takes tens of microseconds, less than the hop to the
    /// writer thread and back (measured at 1000 requests/s: 0.77 ms added p50 through the writer thread, 0.63 ms
    /// inline; docs/benchmarks.md).
    public func recordGrouped(_ row: LedgerRow) async throws {
        if let rowGroup {
            try await rowGroup.record(row)
        } else {
            try record(row)
        }
    }

    /// Commits `rows` atomically. PostgreSQL: the request rows, their spend in `budget_counters` and the release of
    /// the shared reservations they carried, in one statement (one round trip), so a request's spend is never counted
    /// twice or not at all. SQLite: the rows alone, in one INSERT (one transaction for more than 500 rows); their spend
    /// reaches the counters when they are folded in (`foldCounters`).
    static func write(_ rows: [LedgerRow], to database: any LedgerDatabase) throws {
        guard !rows.isEmpty else { return }
        let columns = """
            INSERT INTO requests (time, key_hash, "user", team, route, deployment, served_model, session,
                input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, reasoning_tokens,
                cost_usd, latency_ms, ttft_ms, status, error_code, attempts, failover, stream, kind) VALUES
            """
        let tuple = "(" + Array(repeating: "?", count: 22).joined(separator: ", ") + ")"
        func values(_ rows: ArraySlice<LedgerRow>) -> (String, [LedgerValue]) {
            var arguments: [LedgerValue] = []
            arguments.reserveCapacity(rows.count * 22)
            for row in rows {
                arguments += [
                    row.time.ledgerValue, row.keyHash.ledgerValue, row.user.ledgerValue, row.team.ledgerValue,
                    row.route.ledgerValue, row.deployment.ledgerValue, row.servedModel.ledgerValue,
                    row.session.ledgerValue, row.usage.inputUncached.ledgerValue, row.usage.cacheRead.ledgerValue,
                    row.usage.cacheWrite.ledgerValue, row.usage.output.ledgerValue, row.usage.reasoning.ledgerValue,
                    row.costUSD.ledgerValue, row.latencyMilliseconds.ledgerValue,
                    row.timeToFirstTokenMilliseconds.ledgerValue, row.status.ledgerValue, row.errorCode.ledgerValue,
                    row.attempts.ledgerValue, row.failover.ledgerValue, row.stream.ledgerValue, row.kind.ledgerValue,
                ]
            }
            return (columns + " " + Array(repeating: tuple, count: rows.count).joined(separator: ", "), arguments)
        }
        switch database.backend {
        case .sqlite:
            let inserts = stride(from: 0, to: rows.count, by: 500).map { values(rows[$0..<min(rows.count, $0 + 500)]) }
            if inserts.count == 1 {
                try database.execute(inserts[0].0, inserts[0].1)
            } else {
                try database.transaction { statements in
                    for (sql, arguments) in inserts { try statements.execute(sql, arguments) }
                }
            }
        case .postgres:
            var counters = BudgetCounters()
            for row in rows { counters.add(row) }
            // One statement, so one round trip and one (implicit) transaction; batches are at most
            // `LedgerRowGroup.maximumBatch` rows, far below PostgreSQL's 65535 parameters.
            var parts: [String] = []
            var arguments: [LedgerValue] = []
            let released = rows.compactMap(\.reservationID)
            if !released.isEmpty {
                parts.append(
                    "released AS (DELETE FROM reservations WHERE id IN ("
                        + Array(repeating: "?", count: released.count).joined(separator: ", ") + "))")
                arguments += released.map { .integer($0) }
            }
            if !counters.isEmpty {
                let (sql, counted) = counters.upsert()
                parts.append("counted AS (\(sql))")
                arguments += counted
            }
            let (sql, inserted) = values(rows[...])
            arguments += inserted
            try database.execute((parts.isEmpty ? "" : "WITH " + parts.joined(separator: ", ") + " ") + sql, arguments)
        }
    }

    /// Checks that the ledger can take a write now (used to fail closed after a failed write).
    public func probeWritable() throws {
        switch database.backend {
        case .sqlite:
            try database.transaction { statements in
                try statements.execute("CREATE TABLE IF NOT EXISTS probe (x)", [])
                try statements.execute("DELETE FROM probe", [])
            }
        case .postgres: try database.execute("DELETE FROM probe", [])
        }
    }

    /// Records one captured teacher answer.
    public func record(_ capture: Capture) throws {
        try database.execute(
            """
            INSERT INTO captures (time, task, route, input, answer, top_logprobs, input_tokens, output_tokens,
                cost_usd, latency_ms, model, deployment) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [
                capture.time.ledgerValue, capture.task.ledgerValue, capture.route.ledgerValue,
                capture.input.ledgerValue, capture.answer.ledgerValue,
                capture.topLogprobs.map { JSON.array($0.map { [.string($0.token), .number($0.logprob)] }).text }
                    .ledgerValue,
                capture.inputTokens.ledgerValue, capture.outputTokens.ledgerValue, capture.costUSD.ledgerValue,
                capture.latencyMilliseconds.ledgerValue, capture.model.ledgerValue, capture.deployment.ledgerValue,
            ])
    }

    /// The captures of `task`, oldest first.
    public func captures(task: String) throws -> [Capture] {
        try database.query("SELECT * FROM captures WHERE task = ? ORDER BY id", [.text(task)]).map { row in
            let alternatives = row.optionalString("top_logprobs").flatMap { try? JSON.parse($0) }?.array?.compactMap {
                pair -> (String, Double)? in
                guard let token = pair[0]?.string, let logprob = pair[1]?.double else { return nil }
                return (token, logprob)
            }
            return Capture(
                id: row.int("id"), time: row.double("time"), task: row.string("task"), route: row.string("route"),
                input: row.string("input"), answer: row.string("answer"), topLogprobs: alternatives,
                inputTokens: row.int("input_tokens"), outputTokens: row.int("output_tokens"),
                costUSD: row.double("cost_usd"), latencyMilliseconds: row.double("latency_ms"),
                model: row.string("model"), deployment: row.string("deployment"))
        }
    }

    /// Records a session-breaker trip.
    public func record(_ trip: SessionTrip) throws {
        try database.execute(
            "INSERT INTO trips (time, session, \"user\", reason, duration_s, tokens, spend_usd) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                trip.time.ledgerValue, trip.session.ledgerValue, trip.user.ledgerValue, trip.reason.ledgerValue,
                trip.durationSeconds.ledgerValue, trip.tokens.ledgerValue, trip.spendUSD.ledgerValue,
            ])
    }

    /// Records a deployment skipped or abandoned for `reason` on `route`.
    public func recordFailover(route: String, deployment: String, reason: String, time: Double) throws {
        try database.execute(
            "INSERT INTO failovers (time, route, deployment, reason) VALUES (?, ?, ?, ?)",
            [time.ledgerValue, route.ledgerValue, deployment.ledgerValue, reason.ledgerValue])
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
        try database.execute(
            "INSERT INTO confirmations (time, session) VALUES (?, ?)", [time.ledgerValue, session.ledgerValue])
    }

    /// The newest confirmation time of `session`, if any.
    public func lastConfirmation(of session: String) throws -> Double? {
        try database.query(
            "SELECT MAX(time) AS time FROM confirmations WHERE session = ?", [.text(session)]
        ).first?.optionalDouble("time")
    }

    /// Every request row since `since` (unix seconds), oldest first.
    public func rows(since: Double = 0) throws -> [LedgerRow] {
        try database.query("SELECT * FROM requests WHERE time >= ? ORDER BY id", [.real(since)]).map { row in
            LedgerRow(
                time: row.double("time"), keyHash: row.string("key_hash"), user: row.string("user"),
                team: row.string("team"), route: row.string("route"), deployment: row.optionalString("deployment"),
                servedModel: row.optionalString("served_model"), session: row.string("session"),
                usage: TokenUsage(
                    inputUncached: row.int("input_tokens"), cacheRead: row.int("cached_input_tokens"),
                    cacheWrite: row.int("cache_write_tokens"), output: row.int("output_tokens"),
                    reasoning: row.int("reasoning_tokens")
                ),
                costUSD: row.double("cost_usd"), latencyMilliseconds: row.double("latency_ms"),
                timeToFirstTokenMilliseconds: row.optionalDouble("ttft_ms"), status: row.int("status"),
                errorCode: row.optionalString("error_code"), attempts: row.int("attempts"),
                failover: row.bool("failover"), stream: row.bool("stream"), kind: row.string("kind")
            )
        }
    }

    /// Every trip since `since`, newest first.
    public func trips(since: Double = 0) throws -> [SessionTrip] {
        try database.query("SELECT * FROM trips WHERE time >= ? ORDER BY time DESC", [.real(since)]).map { row in
            SessionTrip(
                time: row.double("time"), session: row.string("session"), user: row.string("user"),
                reason: row.string("reason"), durationSeconds: row.double("duration_s"), tokens: row.int("tokens"),
                spendUSD: row.double("spend_usd")
            )
        }
    }

    /// Failover events since `since`: (time, route, deployment, reason), newest first.
    public func failovers(since: Double = 0) throws -> [(
        time: Double, route: String, deployment: String, reason: String
    )] {
        try database.query("SELECT * FROM failovers WHERE time >= ? ORDER BY time DESC", [.real(since)]).map {
            ($0.double("time"), $0.string("route"), $0.string("deployment"), $0.string("reason"))
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

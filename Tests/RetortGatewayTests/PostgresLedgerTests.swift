import Foundation
import NIOCore
import RetortData
import RetortDeployments
import Synchronization
import Testing

@testable import RetortLabeling
@testable import RetortTeacher

/// The PostgreSQL server `make test-postgres` starts (`RETORT_TEST_POSTGRES_URL`), nil when none is set.
let testPostgresURL = ProcessInfo.processInfo.environment["RETORT_TEST_POSTGRES_URL"]
let postgresUp = testPostgresURL != nil
let needsPostgres: Comment = "needs `make test-postgres` (RETORT_TEST_POSTGRES_URL names a PostgreSQL server)"

/// A fresh, empty database on the test server: each test gets its own, so tests never see each other's rows.
func freshPostgresDatabase() throws -> PostgresLedgerLocation {
    guard let url = testPostgresURL, case .success(var location) = PostgresLedgerLocation.parse(url) else {
        throw DataError(.usage, "RETORT_TEST_POSTGRES_URL is not postgres://USER@HOST:PORT/DB")
    }
    let admin = PostgresLedgerDatabase(location, maximumConnections: 1)
    defer { admin.close() }
    let name = "retort_test_\(UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(16))"
    try admin.execute("CREATE DATABASE \(name)", [])
    location.database = name
    return location
}

/// A ledger row with every column set (optional ones too), varied by `index`.
func sampleRow(_ index: Int, session: String = "s-1", user: String = "ana") -> LedgerRow {
    LedgerRow(
        time: 1_764_900_000 + Double(index) * 1.25, keyHash: "k\(index % 2)", user: user, team: "search",
        route: "teacher", deployment: index % 3 == 0 ? nil : "openai-main/gpt-5.5",
        servedModel: index % 3 == 0 ? nil : "gpt-5.5", session: session,
        usage: TokenUsage(inputUncached: 100 + index, cacheRead: index, cacheWrite: 2 * index, output: 7, reasoning: 3),
        costUSD: 0.001 * Double(index + 1), latencyMilliseconds: 12.5 + Double(index),
        timeToFirstTokenMilliseconds: index % 2 == 0 ? 4.25 : nil, status: index % 4 == 0 ? 503 : 200,
        errorCode: index % 4 == 0 ? "no_deployment_available" : nil, attempts: index % 3, failover: index % 2 == 1,
        stream: index % 5 == 0, kind: index == 7 ? "shadow" : "client")
}

/// A deployment record with every column set.
func sampleDeployment(route: String, time: Double) -> DeploymentRecord {
    DeploymentRecord(
        time: time, route: route, candidate: "logreg-tfidf", kind: "student", runDirectory: "/runs/1",
        modelDirectory: "/models/1", task: "intents", threshold: 0.8, shadow: 0.1, minAgreement: 0.9,
        usdPerVCPUSecond: 0.00001, validationAgreement: [0.95, 0.93, 0.97])
}

/// Writes one of everything through `ledger` and reads it all back (`spend`: ana's spend on the rows' day, as the
/// budget counters hold it).
func roundTrip(_ ledger: Ledger) throws -> (
    rows: [LedgerRow], trips: [SessionTrip], confirmed: Double?, captures: [Capture], failovers: Int,
    deployments: [DeploymentRecord], rolledBack: Bool, shadows: [ShadowRecord], spend: Double
) {
    let written = (0..<12).map { sampleRow($0) }
    for row in written { try ledger.record(row) }
    try ledger.record(
        SessionTrip(
            time: 1_764_900_100, session: "s-1", user: "ana", reason: "spent $2.0000, over the $1 limit",
            durationSeconds: 61, tokens: 900, spendUSD: 2))
    try ledger.confirm(session: "s-1", time: 1_764_900_200)
    try ledger.record(
        Capture(
            time: 1_764_900_300, task: "intents", route: "teacher", input: "where is my refund?", answer: "refund",
            topLogprobs: [("refund", -0.01), ("billing", -4.5)], inputTokens: 20, outputTokens: 1, costUSD: 0.0002,
            latencyMilliseconds: 80, model: "gpt-5.5", deployment: "openai-main/gpt-5.5"))
    try ledger.recordFailover(route: "teacher", deployment: "anthropic/claude", reason: "HTTP 529", time: 1_764_900_400)
    let first = try ledger.deploy(sampleDeployment(route: "teacher", time: 1_764_900_500))
    let second = try ledger.deploy(sampleDeployment(route: "teacher", time: 1_764_900_600))
    let rolledBack = try ledger.rollBack(deployment: second.id, time: 1_764_900_700, reason: "agreement fell")
    for index in 0..<3 {
        try ledger.record(
            ShadowRecord(
                time: 1_764_900_800 + Double(index), deploymentID: first.id, route: "teacher", input: "in \(index)",
                studentLabel: "refund", teacherAnswer: "refund", teacherLabel: index == 2 ? nil : "refund",
                agree: index != 1, costUSD: 0.0001, latencyMilliseconds: 30))
    }
    try ledger.probeWritable()
    #expect(try ledger.rows() == written)
    return (
        try ledger.rows(), try ledger.trips(), try ledger.lastConfirmation(of: "s-1"),
        try ledger.captures(task: "intents"), try ledger.failovers().count, try ledger.deployments(),
        rolledBack, try ledger.shadows(),
        try ledger.counters(day: BudgetPeriod.day(written[0].time), month: BudgetPeriod.month(written[0].time))[
            "user ana"]?.day.usd ?? -1
    )
}

@Suite struct LedgerSeamTests {
    @Test("the SQLite ledger gives back every row, trip, capture, deployment and shadow it took")
    func sqliteRoundTrip() throws {
        let ledger = try Ledger(path: temporaryLedger())
        let back = try roundTrip(ledger)
        #expect(back.rows == (0..<12).map { sampleRow($0) })
        #expect(back.trips.map(\.spendUSD) == [2])
        #expect(back.confirmed == 1_764_900_200)
        #expect(back.captures.first?.topLogprobs?.map(\.token) == ["refund", "billing"])
        #expect(back.deployments.map(\.state) == [.rolledBack, .replaced])
        #expect(back.rolledBack)
        #expect(back.shadows.map(\.agree) == [true, false, true])
        #expect(back.shadows.map(\.teacherLabel) == ["refund", "refund", nil])
        #expect(abs(back.spend - 0.078) < 1e-12)
        #expect(ledger.backend == .sqlite && !ledger.isShared)
    }

    @Test("placeholders become $1, $2, … outside quoted strings and identifiers")
    func numberedPlaceholders() {
        #expect(
            PostgresLedgerDatabase.numberedPlaceholders(#"SELECT "a?b", '?' FROM t WHERE x = ? AND y = ?"#)
                == #"SELECT "a?b", '?' FROM t WHERE x = $1 AND y = $2"#)
    }
}

@Suite struct PostgresLedgerConfigTests {
    static let routes = """
          teacher:
            deployments:
              - {provider: openai-main, model: gpt-5.5, price: {input_per_mtok: 1, output_per_mtok: 2}}
        """

    static func parse(_ ledgerLines: String, environment: [String: String] = [:]) throws -> GatewayConfig {
        let yaml = """
            \(ledgerLines)
            providers:
              openai-main: {kind: openai, base_url: "http://127.0.0.1:9/v1"}
            routes:
            \(routes)
            """
        return try GatewayConfig.parse(yaml, file: "gateway.yaml", folder: "/srv/gw") { environment[$0] }
    }

    @Test("ledger: postgres://USER@HOST:PORT/DB with ledger_password_env reads the password from the environment")
    func postgresLedger() throws {
        let config = try Self.parse(
            "ledger: postgres://retort@db.internal:6543/gateway\nledger_password_env: RETORT_PG_PASSWORD",
            environment: ["RETORT_PG_PASSWORD": "s3cret"])
        #expect(
            config.ledger
                == .postgres(
                    PostgresLedgerLocation(
                        user: "retort", host: "db.internal", port: 6543, database: "gateway", password: "s3cret")))
        #expect(config.ledger.description == "postgres://retort@db.internal:6543/gateway")
        #expect(config.ledgerPath == "/srv/gw/var/gateway-postgres")
        let defaultPort = try Self.parse("ledger: postgresql://retort@[::1]/gateway")
        #expect(
            defaultPort.ledger == .postgres(PostgresLedgerLocation(user: "retort", host: "::1", database: "gateway")))
        #expect(try Self.parse("ledger: var/x.sqlite").ledger == .sqlite(path: "/srv/gw/var/x.sqlite"))
        #expect(!config.ledgerSynchronousCommit)
        #expect(
            try Self.parse("ledger: postgresql://retort@db/gw\nledger_synchronous_commit: true").ledgerSynchronousCommit
        )
    }

    @Test(
        "a bad ledger URL or a missing password variable is one error naming the file, the line and the fix",
        arguments: [
            ("ledger: postgres://db.internal:5432/gateway", 1, "names no user"),
            ("ledger: postgres://retort@db.internal:99999/gateway", 1, "no valid port"),
            ("ledger: postgres://retort@db.internal:5432", 1, "names no database"),
            ("ledger: postgres://retort:hunter2@db.internal/gateway", 1, "ledger_password_env"),
            ("ledger: postgres://retort@db/gateway\nledger_password_env: MISSING_VAR", 2, "export MISSING_VAR"),
            ("ledger: var/gateway.sqlite\nledger_password_env: PG_PASSWORD", 2, "only to a postgres:// ledger"),
            ("ledger: var/gateway.sqlite\nledger_synchronous_commit: true", 2, "only to a postgres:// ledger"),
        ])
    func badLedger(lines: String, line: Int, fix: String) throws {
        let error = #expect(throws: DataError.self) { try Self.parse(lines) }
        let text = error.map { "\($0)" } ?? ""
        #expect(text.hasPrefix("gateway.yaml:\(line):"), "\(text)")
        #expect(text.contains(fix), "\(text)")
        #expect(!text.contains("\n"))
        #expect(!text.contains("hunter2") || fix == "ledger_password_env")
    }
}

@Suite(.serialized) struct PostgresLedgerTests {
    @Test(
        "the PostgreSQL ledger gives back exactly what the SQLite ledger does", .enabled(if: postgresUp, needsPostgres))
    func sameRowsOnBothBackends() throws {
        let postgres = try Ledger(postgres: try freshPostgresDatabase(), path: temporaryLedger())
        defer { postgres.close() }
        let sqlite = try Ledger(path: temporaryLedger())
        let fromPostgres = try roundTrip(postgres)
        let fromSQLite = try roundTrip(sqlite)
        #expect(fromPostgres.rows == fromSQLite.rows)
        #expect(fromPostgres.trips == fromSQLite.trips)
        #expect(fromPostgres.confirmed == fromSQLite.confirmed)
        #expect(fromPostgres.captures.map(\.answer) == fromSQLite.captures.map(\.answer))
        #expect(
            fromPostgres.captures.first?.topLogprobs?.map(\.logprob)
                == fromSQLite.captures.first?.topLogprobs?.map(\.logprob))
        #expect(fromPostgres.failovers == 1 && fromSQLite.failovers == 1)
        #expect(fromPostgres.deployments == fromSQLite.deployments)
        #expect(fromPostgres.rolledBack && fromSQLite.rolledBack)
        #expect(fromPostgres.shadows == fromSQLite.shadows)
        #expect(abs(fromPostgres.spend - fromSQLite.spend) < 1e-12)
        #expect(postgres.isShared)
    }

    @Test(
        "the schema is created from empty at the newest version, and opening again changes nothing",
        .enabled(if: postgresUp, needsPostgres))
    func migration() throws {
        let location = try freshPostgresDatabase()
        let first = try Ledger(postgres: location, path: temporaryLedger())
        defer { first.close() }
        try first.record(sampleRow(1))
        // Five processes opening the same new ledger together: the advisory lock lets one migrate, the rest wait.
        let opened = Mutex<[Bool]>([])
        DispatchQueue.concurrentPerform(iterations: 5) { _ in
            let ledger = try? Ledger(postgres: location, path: temporaryLedger())
            ledger?.close()
            opened.withLock { $0.append(ledger != nil) }
        }
        #expect(opened.withLock { $0 } == Array(repeating: true, count: 5))
        let versions = try first.database.query("SELECT version FROM retort_schema", []).map { $0.int("version") }
        #expect(versions == [LedgerSchema.postgres.count])
        #expect(try first.rows() == [sampleRow(1)])
        #expect(try LedgerSchema.migratePostgres(first.database) == LedgerSchema.postgres.count)
    }

    @Test(
        "a schema newer than this build is refused with a message saying to upgrade",
        .enabled(if: postgresUp, needsPostgres))
    func newerSchema() throws {
        let location = try freshPostgresDatabase()
        let ledger = try Ledger(postgres: location, path: temporaryLedger())
        try ledger.database.execute("UPDATE retort_schema SET version = ?", [.integer(LedgerSchema.postgres.count + 1)])
        ledger.close()
        let error = #expect(throws: DataError.self) { try Ledger(postgres: location, path: temporaryLedger()) }
        #expect("\(error.map { "\($0)" } ?? "")".contains("upgrade retort"))
    }

    @Test(
        "the label cache of a PostgreSQL ledger lives in its database: one replica's answer is another's hit",
        .enabled(if: postgresUp, needsPostgres))
    func labelCacheShared() throws {
        let location = try freshPostgresDatabase()
        let first = try Ledger(postgres: location, path: temporaryLedger())
        let second = try Ledger(postgres: location, path: temporaryLedger())
        defer {
            first.close()
            second.close()
        }
        let body: JSON = ["messages": [["role": "user", "content": "where is my refund?"]], "max_tokens": 5]
        let key = LabelCache.key(model: "gpt-5.5", body: body, sample: nil)
        let writer = try LabelCache(ledger: first, path: temporaryLedger())
        #expect(try writer.get(key) == nil)
        let answer: JSON = ["choices": [["message": ["content": "refund"]]]]
        try writer.put(
            key, LabelCache.Entry(model: "gpt-5.5", body: answer, costUSD: 0.002, tokens: 30, latencyMilliseconds: 80))
        try writer.put(
            key, LabelCache.Entry(model: "gpt-5.5", body: answer, costUSD: 0.003, tokens: 31, latencyMilliseconds: 81))
        let hit = try #require(try LabelCache(ledger: second, path: temporaryLedger()).get(key))
        #expect(hit.body == answer && hit.costUSD == 0.003 && hit.tokens == 31 && hit.latencyMilliseconds == 81)
        // A SQLite ledger keeps its cache in the file it is given, apart from the ledger.
        let sqlitePath = temporaryLedger()
        let local = try LabelCache(ledger: try Ledger(path: temporaryLedger()), path: sqlitePath)
        #expect(try local.get(key) == nil)
        #expect(FileManager.default.fileExists(atPath: sqlitePath))
    }

    static let budgetConfig = """
        ledger: var/unused.sqlite
        keys:
          - sha256: \(sha256Hex("race"))
            user: ana
            team: search
        users:
          ana: {budgets: {usd_per_day: 10}}
        providers:
          openai-main: {kind: openai, base_url: "http://127.0.0.1:9/v1"}
        routes:
        \(PostgresLedgerConfigTests.routes)
        """

    /// A fresh database, the budget config (ana: $10 a day) and ana's key.
    static func budgetFixture() throws -> (PostgresLedgerLocation, GatewayConfig, ClientKey) {
        let config = try GatewayConfig.parse(Self.budgetConfig, file: "gateway.yaml", folder: "/tmp")
        return (try freshPostgresDatabase(), config, try #require(config.keys[sha256Hex("race")]))
    }

    @Test(
        "100 concurrent reservations from 3 replicas against a budget for 10 admit exactly 10",
        .enabled(if: postgresUp, needsPostgres))
    func budgetRace() throws {
        let (location, config, key) = try Self.budgetFixture()
        let replicas = try (0..<3).map { _ in
            try BudgetBook(
                config: config, ledger: try Ledger(postgres: location, path: temporaryLedger(), maximumConnections: 16))
        }
        let admitted = Mutex<[Int]>([])
        let refused = Mutex(0)
        let failed = Mutex(0)
        // Real threads, not tasks: 100 reservations in flight at once across the three replicas.
        let group = DispatchGroup()
        for index in 0..<100 {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                do {
                    switch try replicas[index % 3].reserve(key: key, usd: 1, tokens: 10) {
                    case .success(let reservation): admitted.withLock { $0.append(reservation.sharedID ?? -1) }
                    case .failure: refused.withLock { $0 += 1 }
                    }
                } catch {
                    failed.withLock { $0 += 1 }
                }
            }
        }
        group.wait()
        #expect(failed.withLock { $0 } == 0)
        #expect(admitted.withLock { $0.count } == 10)
        #expect(Set(admitted.withLock { $0 }).count == 10 && !admitted.withLock { $0 }.contains(-1))
        #expect(refused.withLock { $0 } == 90)
        // Settling by the request rows frees nothing: the rows' cost (1 each) now counts as spend instead.
        let ledger = try Ledger(postgres: location, path: temporaryLedger())
        defer { ledger.close() }
        for id in admitted.withLock({ $0 }) {
            var row = sampleRow(0)
            row.time = Date().timeIntervalSince1970
            row.keyHash = key.sha256
            row.costUSD = 1
            row.reservationID = id
            try ledger.record(row)
        }
        #expect(try ledger.liveReservations(now: Date().timeIntervalSince1970).count == 0)
        guard case .failure(let refusal) = try replicas[0].reserve(key: key, usd: 0.5, tokens: 1) else {
            Issue.record("a reservation past the budget was admitted")
            return
        }
        #expect(refusal.refusal.budget == "user ana usd_per_day")
        #expect(refusal.refusal.spent == 10 && refusal.refusal.reserved == 0)
    }

    @Test(
        "a dropped replica's reservation holds budget only until it expires",
        .enabled(if: postgresUp, needsPostgres))
    func reservationExpires() throws {
        let (location, config, key) = try Self.budgetFixture()
        let now = Date().timeIntervalSince1970
        do {
            let dying = try Ledger(postgres: location, path: temporaryLedger())
            let book = try BudgetBook(config: config, ledger: dying)
            guard case .success = try book.reserve(key: key, usd: 8, tokens: 1, lifetime: 2, now: now) else {
                Issue.record("the first reservation was refused")
                return
            }
            dying.close()
        }
        let survivor = try BudgetBook(config: config, ledger: try Ledger(postgres: location, path: temporaryLedger()))
        guard case .failure(let held) = try survivor.reserve(key: key, usd: 5, tokens: 1, now: now + 1) else {
            Issue.record("the dead replica's reservation did not hold")
            return
        }
        #expect(held.refusal.reserved == 8)
        guard case .success = try survivor.reserve(key: key, usd: 5, tokens: 1, now: now + 2.5) else {
            Issue.record("the expired reservation still held budget")
            return
        }
        let ledger = try Ledger(postgres: location, path: temporaryLedger())
        defer { ledger.close() }
        #expect(try ledger.sweepExpiredReservations(now: now + 2.5) == 1)
    }

    @Test(
        "a trip recorded by one replica stops the session on another; a confirmation on either releases it",
        .enabled(if: postgresUp, needsPostgres))
    func sharedSessionTrip() throws {
        let (location, _, key) = try Self.budgetFixture()
        let first = try Ledger(postgres: location, path: temporaryLedger())
        let second = try Ledger(postgres: location, path: temporaryLedger())
        defer {
            first.close()
            second.close()
        }
        let policy = SessionPolicy(idleGapSeconds: 1_800, maxDurationSeconds: nil, maxUSD: 1)
        let now = Date().timeIntervalSince1970
        // Replica one serves the session past its limit and trips it.
        let booksOne = SessionBook(policy: policy)
        var row = sampleRow(1, session: "shared-1")
        row.time = now
        row.costUSD = 1.5
        try first.record(row)
        booksOne.adopt("shared-1", key: key, shared: try first.sharedSession("shared-1"), now: now)
        let tripped = try #require(booksOne.begin(key: key, header: "shared-1", now: now + 1).refusal)
        #expect(tripped.isNewTrip)
        try first.record(
            SessionTrip(
                time: now + 1, session: "shared-1", user: "ana", reason: tripped.reason, durationSeconds: 1,
                tokens: tripped.tokens, spendUSD: tripped.spendUSD))
        // Replica two never served it, yet refuses it, and does not count it as a new trip.
        let booksTwo = SessionBook(policy: policy)
        booksTwo.adopt("shared-1", key: key, shared: try second.sharedSession("shared-1"), now: now + 2)
        let refusal = try #require(booksTwo.begin(key: key, header: "shared-1", now: now + 2).refusal)
        #expect(!refusal.isNewTrip)
        #expect(refusal.spendUSD == 1.5)
        // A confirmation through replica one reaches replica two through the ledger.
        try first.confirm(session: "shared-1", time: now + 3)
        let shared = try second.sharedSession("shared-1")
        #expect(shared.lastConfirmation == now + 3 && shared.lastTrip == now + 1)
        let confirmed = try #require(try second.lastConfirmation(of: "shared-1"))
        #expect(confirmed >= (booksTwo.trippedAt("shared-1") ?? .infinity))
        #expect(booksTwo.confirm("shared-1", keyHash: nil, now: now + 3))
        booksTwo.adopt("shared-1", key: key, shared: shared, now: now + 4)
        #expect(booksTwo.begin(key: key, header: "shared-1", now: now + 4).refusal == nil)
    }

    @Test("an answer that does not come within the statement timeout fails the call; a late answer is dropped")
    func boundedWait() throws {
        let loop = NIOSingletons.posixEventLoopGroup.next()
        let never = loop.makePromise(of: Int.self)
        let timedOut = Mutex(false)
        #expect {
            try PostgresLedgerDatabase.wait(for: never.futureResult, timeout: .milliseconds(50)) {
                timedOut.withLock { $0 = true }
            }
        } throws: { error in
            "\(error)".contains("PostgreSQL did not answer within 0.05 s")
        }
        #expect(timedOut.withLock { $0 })
        never.succeed(1)
        let quick = loop.makePromise(of: Int.self)
        let called = Mutex(false)
        quick.succeed(7)
        let answered = try PostgresLedgerDatabase.wait(for: quick.futureResult, timeout: .seconds(30)) {
            called.withLock { $0 = true }
        }
        #expect(answered == 7)
        #expect(!called.withLock { $0 })
    }

    @Test(
        "a statement PostgreSQL does not answer within the timeout fails, and the next call opens a new connection",
        .enabled(if: postgresUp, needsPostgres))
    func statementTimeout() throws {
        let location = try freshPostgresDatabase()
        let database = PostgresLedgerDatabase(location, maximumConnections: 1, statementTimeout: .milliseconds(300))
        defer { database.close() }
        #expect(try database.query("SELECT 1 AS n", []).first?.int("n") == 1)
        #expect {
            _ = try database.query("SELECT pg_sleep(5)", [])
        } throws: { error in
            "\(error)".contains("did not answer within 0.3 s")
        }
        #expect(try database.query("SELECT 2 AS n", []).first?.int("n") == 2)
    }

    @Test(
        "a call whose connection the server ends fails, and the next call opens a new connection by itself",
        .enabled(if: postgresUp, needsPostgres))
    func reconnects() throws {
        let location = try freshPostgresDatabase()
        let ledger = try Ledger(postgres: location, path: temporaryLedger(), maximumConnections: 1)
        defer { ledger.close() }
        try ledger.record(sampleRow(1))
        let admin = PostgresLedgerDatabase(location, maximumConnections: 1)
        defer { admin.close() }
        func terminate(_ condition: String) throws -> Int {
            try admin.query(
                """
                SELECT COUNT(pg_terminate_backend(pid)) AS n FROM pg_stat_activity
                WHERE datname = ? AND pid <> pg_backend_pid() AND \(condition)
                """,
                [.text(location.database)]
            ).first?.int("n") ?? 0
        }
        // The server ends the connection in the middle of a call, as a restart would.
        let failed = Mutex<(any Error)?>(nil)
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            do { _ = try ledger.database.query("SELECT pg_sleep(30)", []) } catch { failed.withLock { $0 = error } }
            done.signal()
        }
        var ended = 0
        for _ in 0..<200 where ended == 0 {
            ended = try terminate("query LIKE 'SELECT pg_sleep%'")
            if ended == 0 { Thread.sleep(forTimeInterval: 0.02) }
        }
        #expect(ended == 1)
        #expect(done.wait(timeout: .now() + 20) == .success)
        #expect(failed.withLock { $0 } != nil, "the interrupted call throws")
        try ledger.probeWritable()
        try ledger.record(sampleRow(2))
        // A connection ended while idle in the pool is replaced before it is used, once the client has seen it close
        // (a call that races the close fails like the interrupted one above, and the next succeeds). Two are idle: the
        // ledger's, and its request-row writer's.
        #expect(try terminate("state = 'idle'") == 2)
        Thread.sleep(forTimeInterval: 1)
        try ledger.record(sampleRow(3))
        #expect(try ledger.rows() == [sampleRow(1), sampleRow(2), sampleRow(3)])
    }
}

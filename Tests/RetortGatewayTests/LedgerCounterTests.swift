import Foundation
import RetortData
import RetortNumerics
import Synchronization
import Testing

@testable import RetortTeacher

/// Request rows of several keys, users and teams over 40 days that straddle a month boundary, some of them free
/// (refusals); the same rows for the same seed.
func counterTraffic(count: Int, seed: UInt64) -> [LedgerRow] {
    var random = SeededGenerator(seed: seed)
    // 2026-10-20 00:00 UTC: the 40 days run into November.
    let start = 1_792_454_400.0
    return (0..<count).map { index in
        let user = ["ana", "bo", "cy"][Int.random(in: 0..<3, using: &random)]
        let free = Int.random(in: 0..<5, using: &random) == 0
        var row = LedgerRow(
            time: start + Double.random(in: 0..<(40 * 86_400), using: &random), keyHash: "k-\(user)-\(index % 2)",
            user: user, team: user == "cy" ? "ops" : "search", route: "teacher", session: "s-\(index % 7)",
            status: free ? 429 : 200)
        if !free {
            row.usage = TokenUsage(
                inputUncached: Int.random(in: 1...900, using: &random),
                cacheRead: Int.random(in: 0...50, using: &random),
                cacheWrite: Int.random(in: 0...20, using: &random), output: Int.random(in: 1...300, using: &random),
                reasoning: Int.random(in: 0...30, using: &random))
            row.costUSD = Double(Int.random(in: 1...5000, using: &random)) / 100_000
        }
        row.kind = index % 11 == 0 ? "shadow" : "client"
        return row
    }
}

/// What `budget_counters` must hold for `rows`, summed here independently of the ledger: by scope and UTC day/month.
func expectedCounters(_ rows: [LedgerRow]) -> [String: (usd: Double, tokens: Double)] {
    var result: [String: (usd: Double, tokens: Double)] = [:]
    for row in rows where row.costUSD != 0 || row.usage.total != 0 {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC") ?? calendar.timeZone
        let parts = calendar.dateComponents([.year, .month], from: Date(timeIntervalSince1970: row.time))
        let day = Int((row.time / 86_400).rounded(.down))
        let month = (parts.year ?? 0) * 12 + (parts.month ?? 1) - 1
        let tokens = Double(
            row.usage.inputUncached + row.usage.cacheRead + row.usage.cacheWrite + row.usage.output)
        for scope in ["key " + row.keyHash, "user " + row.user, "team " + row.team] {
            for period in ["day \(day)", "month \(month)"] {
                let old = result[scope + " | " + period] ?? (0, 0)
                result[scope + " | " + period] = (old.usd + row.costUSD, old.tokens + tokens)
            }
        }
    }
    return result
}

/// The ledger's `budget_counters`, keyed as `expectedCounters` keys them.
func storedCounters(_ ledger: Ledger) throws -> [String: (usd: Double, tokens: Double)] {
    var result: [String: (usd: Double, tokens: Double)] = [:]
    for row in try ledger.database.query("SELECT scope, period, usd, tokens FROM budget_counters", []) {
        result[row.string("scope") + " | " + row.string("period")] = (row.double("usd"), row.double("tokens"))
    }
    return result
}

/// Whether the stored counters are the expected ones (same keys; USD within rounding, tokens exact).
func countersMatch(_ ledger: Ledger, _ rows: [LedgerRow]) throws -> Bool {
    let (stored, expected) = (try storedCounters(ledger), expectedCounters(rows))
    guard Set(stored.keys) == Set(expected.keys), !expected.isEmpty else { return false }
    return expected.allSatisfy { key, value in
        let got = stored[key] ?? (-1, -1)
        return abs(got.usd - value.usd) < 1e-9 && got.tokens == value.tokens
    }
}

/// Writes rows as the gateway does: most through group commit from many tasks at once, some one by one, some as a
/// batch.
func mixedTraffic(_ ledgers: [Ledger], _ rows: [LedgerRow]) async throws {
    let grouped = rows.prefix(rows.count * 3 / 4)
    try await withThrowingTaskGroup(of: Void.self) { group in
        for (index, row) in grouped.enumerated() {
            group.addTask { try await ledgers[index % ledgers.count].recordGrouped(row) }
        }
        try await group.waitForAll()
    }
    let rest = rows.dropFirst(grouped.count)
    for row in rest.prefix(rest.count / 2) { try ledgers[0].record(row) }
    try Ledger.write(Array(rest.dropFirst(rest.count / 2)), to: ledgers[ledgers.count - 1].rowWriter)
}

/// An SQLite ledger at `path` holding `rows` as a retort of schema `version` left it: 0, before budget counters; 1,
/// counters holding every row (each insert kept them), no watermark.
func olderSQLiteLedger(at path: String, version: Int, rows: [LedgerRow]) throws {
    let ledger = try Ledger(path: path)
    try Ledger.write(rows, to: ledger.rowWriter)
    try ledger.foldCounters()
    try ledger.database.execute("DROP TABLE ledger_meta", [])
    if version == 0 { try ledger.database.execute("DROP TABLE budget_counters", []) }
    try ledger.database.execute("PRAGMA user_version = \(version)", [])
}

@Suite struct LedgerCounterTests {
    @Test("an SQLite ledger from before budget counters is migrated: its counters are the sums of its rows")
    func sqliteMigration() throws {
        let path = temporaryLedger()
        let rows = counterTraffic(count: 300, seed: 25)
        try olderSQLiteLedger(at: path, version: 0, rows: rows)
        let migrated = try Ledger(path: path)
        #expect(try countersMatch(migrated, rows))
        #expect(try migrated.database.query("PRAGMA user_version", []).first?.int("user_version") == 2)
        // Opening again changes nothing.
        #expect(try countersMatch(try Ledger(path: path), rows))
        #expect(try migrated.rows().count == rows.count)
    }

    @Test("an SQLite ledger newer than this build is refused with a message saying to upgrade")
    func sqliteNewer() throws {
        let path = temporaryLedger()
        try Ledger(path: path).database.execute("PRAGMA user_version = 99", [])
        let error = #expect(throws: DataError.self) { try Ledger(path: path) }
        #expect("\(error.map { "\($0)" } ?? "")".contains("upgrade retort"))
    }

    @Test("an SQLite ledger at version 1 (counters kept by each insert) is migrated: the watermark is its newest row")
    func sqliteMigrationFromVersion1() throws {
        let path = temporaryLedger()
        let rows = counterTraffic(count: 300, seed: 26)
        try olderSQLiteLedger(at: path, version: 1, rows: Array(rows.prefix(200)))
        let migrated = try Ledger(path: path)
        #expect(try migrated.database.query("PRAGMA user_version", []).first?.int("user_version") == 2)
        #expect(try Ledger.foldedThrough(migrated.database) == 200)
        #expect(try countersMatch(migrated, Array(rows.prefix(200))))
        // Rows written after the migration are folded from the watermark on, the old ones not again.
        try Ledger.write(Array(rows.dropFirst(200)), to: migrated.rowWriter)
        #expect(try countersMatch(try Ledger(path: path), rows))
    }

    /// The moments an SQLite ledger folds its request rows into the counters.
    enum FoldTrigger: String, CaseIterable, CustomTestStringConvertible {
        case open, background, close, read
        var testDescription: String { rawValue }
    }

    @Test(
        "after mixed traffic (group commit, single rows, batches) the SQLite counters equal the rows' sums once folded",
        arguments: FoldTrigger.allCases)
    func sqliteMixedTraffic(trigger: FoldTrigger) async throws {
        let path = temporaryLedger()
        let ledger = try Ledger(path: path)
        let rows = counterTraffic(count: 400, seed: 7)
        if trigger == .background {
            // Folds racing the traffic, as the gateway's checkpoint thread does.
            try ledger.checkpointInBackground(every: 0.01)
        }
        try await mixedTraffic([ledger], rows)
        #expect(try ledger.rows().count == rows.count)
        switch trigger {
        case .open:
            // A request pays for its row alone: nothing reached the counters yet.
            #expect(try storedCounters(ledger).isEmpty)
            #expect(try countersMatch(try Ledger(path: path), rows))
        case .background:
            let deadline = Date().addingTimeInterval(20)
            while try !countersMatch(ledger, rows), Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
            #expect(try countersMatch(ledger, rows))
        case .close:
            #expect(try storedCounters(ledger).isEmpty)
            ledger.close()
            #expect(try countersMatch(ledger, rows))
        case .read:
            #expect(try storedCounters(ledger).isEmpty)
            let day = BudgetPeriod.day(rows[0].time)
            let read = try ledger.counters(day: day, month: BudgetPeriod.month(rows[0].time))
            let expected = try #require(expectedCounters(rows)["user \(rows[0].user) | day \(day)"])
            #expect(abs((read["user \(rows[0].user)"]?.day.usd ?? -1) - expected.usd) < 1e-9)
            #expect(try countersMatch(ledger, rows))
        }
        // However often the rows are folded again, each counts once.
        try ledger.foldCounters()
        #expect(try countersMatch(try Ledger(path: path), rows))
    }

    @Test("an SQLite ledger whose writer died before any fold has whole counters when it is opened again")
    func sqliteCrashedWriter() async throws {
        let path = temporaryLedger()
        let rows = counterTraffic(count: 300, seed: 11)
        let crashed = try Ledger(path: path)
        try Ledger.write(Array(rows.prefix(100)), to: crashed.rowWriter)
        try crashed.foldCounters()
        // Rows committed after the last fold; the writer is never closed and never folds again.
        try await mixedTraffic([crashed], Array(rows.dropFirst(100)))
        #expect(try !countersMatch(crashed, rows))
        let reopened = try Ledger(path: path)
        #expect(try countersMatch(reopened, rows))
        #expect(try Ledger.foldedThrough(reopened.database) == rows.count)
        // Opening it again, and folding from the dead writer's handle, count nothing twice.
        try crashed.foldCounters()
        #expect(try countersMatch(try Ledger(path: path), rows))
    }

    @Test("folds racing from two ledgers on one SQLite file while rows are written count each row once")
    func sqliteRacingFolds() async throws {
        let path = temporaryLedger()
        let ledgers = [try Ledger(path: path), try Ledger(path: path)]
        let rows = counterTraffic(count: 400, seed: 12)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await mixedTraffic(ledgers, rows) }
            for index in 0..<40 {
                group.addTask {
                    try await Task.sleep(for: .milliseconds(index))
                    try ledgers[index % 2].foldCounters()
                }
            }
            try await group.waitForAll()
        }
        try ledgers[1].foldCounters()
        #expect(try countersMatch(ledgers[0], rows))
    }

    @Test("a budget book loaded from an SQLite ledger after writes that were never folded sees their spend")
    func sqliteBudgetsWithoutFold() throws {
        let config = try GatewayConfig.parse(
            PostgresLedgerTests.budgetConfig, file: "gateway.yaml", folder: "/tmp")
        let key = try #require(config.keys[sha256Hex("race")])
        let now = 1_796_558_400.0
        let ledger = try Ledger(path: temporaryLedger())
        for index in 0..<4 {
            var row = sampleRow(index)
            (row.time, row.keyHash, row.user, row.costUSD) = (now - Double(index), key.sha256, "ana", 2)
            try ledger.record(row)
        }
        #expect(try storedCounters(ledger).isEmpty)
        let book = try BudgetBook(config: config, ledger: ledger, now: now)
        guard case .failure(let refusal) = try book.reserve(key: key, usd: 2.5, tokens: 1, now: now) else {
            Issue.record("a reservation past ana's $10 a day was admitted")
            return
        }
        #expect(refusal.refusal.budget == "user ana usd_per_day" && refusal.refusal.spent == 8)
    }

    @Test("a restarted SQLite gateway starts its budgets from the counters of today and this month")
    func sqliteBudgetsFromCounters() throws {
        let path = temporaryLedger()
        let config = try GatewayConfig.parse(
            PostgresLedgerTests.budgetConfig, file: "gateway.yaml", folder: "/tmp")
        let key = try #require(config.keys[sha256Hex("race")])
        // Noon UTC, so every row of "today" is on the same day.
        let now = 1_796_558_400.0
        let ledger = try Ledger(path: path)
        for index in 0..<4 {
            var row = sampleRow(index)
            (row.time, row.keyHash, row.user, row.costUSD) = (now - Double(index), key.sha256, "ana", 2)
            try ledger.record(row)
        }
        var old = sampleRow(9)
        (old.time, old.user, old.costUSD) = (now - 3 * 86_400, "ana", 5)
        try ledger.record(old)
        let book = try BudgetBook(config: config, ledger: try Ledger(path: path), now: now)
        guard case .failure(let refusal) = try book.reserve(key: key, usd: 2.5, tokens: 1, now: now) else {
            Issue.record("a reservation past ana's $10 a day was admitted")
            return
        }
        #expect(refusal.refusal.budget == "user ana usd_per_day" && refusal.refusal.spent == 8)
    }

}

/// The same on a real PostgreSQL server (`make test-postgres`).
@Suite(.serialized) struct PostgresLedgerCounterTests {
    @Test(
        "a PostgreSQL ledger at schema version 1 is migrated: its counters are the sums of its rows",
        .enabled(if: postgresUp, needsPostgres))
    func postgresMigration() throws {
        let location = try freshPostgresDatabase()
        let rows = counterTraffic(count: 300, seed: 25)
        let first = try Ledger(postgres: location, path: temporaryLedger())
        try Ledger.write(rows, to: first.rowWriter)
        // What a ledger written by an earlier retort looks like: version 1, no counters.
        for statement in [
            "DROP TABLE budget_counters", "DROP INDEX reservations_key", "DROP INDEX reservations_user",
            "DROP INDEX reservations_team", "UPDATE retort_schema SET version = 1",
        ] {
            try first.database.execute(statement, [])
        }
        first.close()
        let migrated = try Ledger(postgres: location, path: temporaryLedger())
        defer { migrated.close() }
        #expect(try countersMatch(migrated, rows))
        let versions = try migrated.database.query("SELECT version FROM retort_schema", []).map { $0.int("version") }
        #expect(versions == [LedgerSchema.postgres.count])
    }

    @Test(
        "after mixed traffic from 3 replicas the PostgreSQL counters equal the rows' sums and admission reads them",
        .enabled(if: postgresUp, needsPostgres))
    func postgresMixedTraffic() async throws {
        let location = try freshPostgresDatabase()
        let replicas = try (0..<3).map { _ in try Ledger(postgres: location, path: temporaryLedger()) }
        defer { for replica in replicas { replica.close() } }
        let rows = counterTraffic(count: 400, seed: 7)
        try await mixedTraffic(replicas, rows)
        #expect(try replicas[0].rows().count == rows.count)
        #expect(try countersMatch(replicas[1], rows))
        // Today's spend of ana, settled through rows that release their reservations, is what admission sees.
        let config = try GatewayConfig.parse(PostgresLedgerTests.budgetConfig, file: "gateway.yaml", folder: "/tmp")
        let key = try #require(config.keys[sha256Hex("race")])
        let book = try BudgetBook(config: config, ledger: replicas[2])
        var held: [Int] = []
        for _ in 0..<3 {
            guard case .success(let reservation) = try book.reserve(key: key, usd: 2, tokens: 1) else {
                Issue.record("a reservation within the budget was refused")
                return
            }
            held.append(try #require(reservation.sharedID))
        }
        for (index, id) in held.enumerated() {
            var row = sampleRow(index)
            (row.time, row.keyHash, row.user, row.costUSD, row.reservationID) = (
                Date().timeIntervalSince1970, key.sha256, "ana", 2, id
            )
            try await replicas[index].recordGrouped(row)
        }
        guard case .failure(let refusal) = try book.reserve(key: key, usd: 4.5, tokens: 1) else {
            Issue.record("a reservation past ana's $10 a day was admitted")
            return
        }
        #expect(refusal.refusal.spent == 6 && refusal.refusal.reserved == 0)
    }
}

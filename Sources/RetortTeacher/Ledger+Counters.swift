import Foundation

/// The SQLite ledger's budget counters: a cache of the request rows, folded in behind them.
///
/// On PostgreSQL the statement that inserts request rows also adds their spend to `budget_counters`, because every
/// admission on every replica reads those counters (`reserveShared`). An SQLite ledger serves one gateway process,
/// which keeps its budgets in memory and reads the counters only when it starts (`BudgetBook`); there a request pays
/// for its row's INSERT alone, and the rows stay the truth. `budget_counters` holds the sums of the rows up to a
/// watermark, `ledger_meta` key `counters_through`: the highest `requests.id` folded in. A fold sums the rows after the
/// watermark (by `BudgetCounters.add`, as PostgreSQL's inserts do) into the counters and advances the watermark in one
/// transaction, so each row is counted exactly once whichever process folds and whenever one dies.
///
/// Folds run when a ledger is opened (in the transaction that checks its schema, so a ledger whose gateway was killed
/// is whole again at the next open), every second on the gateway's checkpoint thread (`checkpointInBackground`), on
/// `close()` and at the gateway's graceful shutdown, and before anything reads the counters (`counters(day:month:)`,
/// the only reader on SQLite).
///
/// The watermark relies on request ids only growing: `requests.id` is the rowid (a new row takes the highest id + 1),
/// one writer commits at a time, and no request row is ever deleted.
extension Ledger {
    /// The `ledger_meta` key of the watermark.
    static let foldedThroughKey = "counters_through"

    /// The most rows one pass of a fold reads (a ledger left unfolded for long folds in passes of this many).
    static let foldPass = 20_000

    /// Folds the request rows not yet in `budget_counters` into them (SQLite); nothing on PostgreSQL, whose counters
    /// are always in step with its rows. The rows are read and summed outside the write lock (from a WAL snapshot), so
    /// the gateway's inserts wait only for the counters' upserts; when another process or thread folded meanwhile, the
    /// pass is redone under the lock.
    public func foldCounters() throws {
        guard let sqlite = database as? SQLiteLedgerDatabase else { return }
        while true {
            let watermark = try Ledger.foldedThrough(sqlite)
            var pass = try Ledger.unfolded(sqlite, after: watermark)
            if pass.rows == 0 { return }
            pass = try sqlite.immediateTransaction { statements in
                let current = try Ledger.foldedThrough(statements)
                let locked = current == watermark ? pass : try Ledger.unfolded(statements, after: current)
                try Ledger.apply(locked, statements)
                return locked
            }
            if pass.rows < Ledger.foldPass { return }
        }
    }

    /// Folds every unfolded row inside the caller's write transaction (`LedgerSchema.upgradeSQLite` at open).
    static func foldCounters(_ statements: any LedgerStatements) throws {
        while true {
            let pass = try unfolded(statements, after: try foldedThrough(statements))
            try apply(pass, statements)
            if pass.rows < foldPass { return }
        }
    }

    /// The watermark: the highest request id whose spend `budget_counters` holds.
    static func foldedThrough(_ statements: any LedgerStatements) throws -> Int {
        try statements.query("SELECT value FROM ledger_meta WHERE key = ?", [.text(foldedThroughKey)]).first?.int(
            "value") ?? 0
    }

    /// The spend of up to `foldPass` request rows after `watermark`, the id of the last one (`watermark` when there
    /// are none) and how many rows were read.
    static func unfolded(_ statements: any LedgerStatements, after watermark: Int) throws -> (
        counters: BudgetCounters, through: Int, rows: Int
    ) {
        let records = try statements.query(
            """
            SELECT id, time, key_hash, "user", team, cost_usd, input_tokens, cached_input_tokens, cache_write_tokens,
                output_tokens
            FROM requests WHERE id > ? ORDER BY id LIMIT ?
            """, [.integer(watermark), .integer(foldPass)])
        var counters = BudgetCounters()
        for record in records {
            let usage = TokenUsage(
                inputUncached: record.int("input_tokens"), cacheRead: record.int("cached_input_tokens"),
                cacheWrite: record.int("cache_write_tokens"), output: record.int("output_tokens"))
            counters.add(
                time: record.double("time"), keyHash: record.string("key_hash"), user: record.string("user"),
                team: record.string("team"), usd: record.double("cost_usd"), tokens: usage.total)
        }
        return (counters, records.last?.int("id") ?? watermark, records.count)
    }

    /// Adds a pass's spend to the counters and moves the watermark past its rows (inside the caller's transaction).
    static func apply(
        _ pass: (counters: BudgetCounters, through: Int, rows: Int), _ statements: any LedgerStatements
    ) throws {
        guard pass.rows > 0 else { return }
        try pass.counters.write(statements)
        try statements.execute(
            "INSERT INTO ledger_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [.text(foldedThroughKey), .integer(pass.through)])
    }
}

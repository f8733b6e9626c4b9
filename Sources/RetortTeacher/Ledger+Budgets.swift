import Foundation

/// Budgets shared by gateway replicas through a PostgreSQL ledger.
///
/// A reservation is a row of `reservations` with an expiry. Admission runs in one transaction: it takes
/// `pg_advisory_xact_lock` on each budget scope the key has limits in (in a fixed order, so two admissions never
/// deadlock), reads the scope's settled spend from `budget_counters` (its day and month rows, which the statement that
/// inserts a request row also updates) and sums its live reservations (not yet expired), and inserts the
/// reservation only when every limit still holds. Replicas that race for the last of a budget are serialised by the
/// lock, so together they admit exactly what fits. The request's ledger row releases its reservation in the same
/// statement that inserts the row (`Ledger.record`); a replica killed mid-request leaves a row that lapses at
/// `expires_at`.
extension Ledger {
    /// One budget scope: `key HASH`, `user NAME` or `team NAME`, its column in `requests`, and its limits.
    public struct BudgetScope: Sendable {
        /// `key HASH`, `user NAME` or `team NAME`.
        public var scope: String
        /// How a refusal names it (`key of ana`, `user ana`, `team search`).
        public var label: String
        /// The scope's column in `requests` and `reservations`.
        public var column: String
        /// The value of that column.
        public var value: String
        /// Its limits.
        public var budgets: Budgets
    }

    /// Holds `usd` and `tokens` in every scope of `scopes` until `expiresAt`, atomically across every process on this
    /// ledger; returns the reservation's id, or the first budget it would break (nothing is held then).
    public func reserveShared(
        key: ClientKey, scopes: [BudgetScope], usd: Double, tokens: Double, now: Double, expiresAt: Double,
        holder: String
    ) throws -> Result<Int, BudgetRefusalError> {
        let day = Double(BudgetPeriod.day(now)) * 86_400
        let month = BudgetPeriod.monthStart(now)
        let dayKey = BudgetCounters.dayPeriod(BudgetPeriod.day(now))
        let monthKey = BudgetCounters.monthPeriod(BudgetPeriod.month(now))
        return try database.transaction { statements in
            let limited = scopes.filter { !$0.budgets.isEmpty }.sorted { $0.scope < $1.scope }
            for scope in limited {
                try statements.execute("SELECT pg_advisory_xact_lock(hashtext(?))", [.text("budget " + scope.scope)])
            }
            for scope in limited {
                // Two counter rows and the scope's live reservations (found by index): the same few rows whatever
                // the month's traffic.
                let figures =
                    try statements.query(
                        """
                        SELECT
                            (SELECT usd FROM budget_counters WHERE scope = ? AND period = ?) AS day_usd,
                            (SELECT tokens FROM budget_counters WHERE scope = ? AND period = ?) AS day_tokens,
                            (SELECT usd FROM budget_counters WHERE scope = ? AND period = ?) AS month_usd,
                            (SELECT tokens FROM budget_counters WHERE scope = ? AND period = ?) AS month_tokens,
                            CAST(COALESCE(SUM(CASE WHEN time >= ? THEN usd END), 0) AS DOUBLE PRECISION)
                                AS reserved_day_usd,
                            CAST(COALESCE(SUM(usd), 0) AS DOUBLE PRECISION) AS reserved_month_usd,
                            CAST(COALESCE(SUM(CASE WHEN time >= ? THEN tokens END), 0) AS DOUBLE PRECISION)
                                AS reserved_day_tokens,
                            CAST(COALESCE(SUM(tokens), 0) AS DOUBLE PRECISION) AS reserved_month_tokens
                        FROM reservations WHERE \(scope.column) = ? AND expires_at > ? AND time >= ?
                        """,
                        [
                            .text(scope.scope), .text(dayKey), .text(scope.scope), .text(dayKey),
                            .text(scope.scope), .text(monthKey), .text(scope.scope), .text(monthKey),
                            .real(day), .real(day), .text(scope.value), .real(now), .real(month),
                        ]
                    ).first ?? LedgerRecord([:])
                let checks: [(String, Double?, String, Double, Bool)] = [
                    ("usd_per_day", scope.budgets.usdPerDay, "day_usd", usd, true),
                    ("usd_per_month", scope.budgets.usdPerMonth, "month_usd", usd, true),
                    ("tokens_per_day", scope.budgets.tokensPerDay, "day_tokens", tokens, false),
                    ("tokens_per_month", scope.budgets.tokensPerMonth, "month_tokens", tokens, false),
                ]
                for (name, limit, column, request, isUSD) in checks {
                    guard let limit else { continue }
                    let spent = figures.double(column)
                    let reserved = figures.double("reserved_" + column)
                    if spent + reserved + request > limit {
                        return .failure(
                            BudgetRefusalError(
                                refusal: BudgetRefusal(
                                    budget: "\(scope.label) \(name)", limit: limit, spent: spent, reserved: reserved,
                                    request: request, isUSD: isUSD)))
                    }
                }
            }
            let id = try statements.insert(
                """
                INSERT INTO reservations (time, expires_at, key_hash, "user", team, usd, tokens, holder)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """,
                [
                    .real(now), .real(expiresAt), .text(key.sha256), .text(key.user), .text(key.team), .real(usd),
                    .real(tokens), .text(holder),
                ])
            return .success(id)
        }
    }

    /// Settled spend and tokens by budget scope (`key HASH`, `user NAME`, `team NAME`) in day `day` and month
    /// `month`, from `budget_counters` (on SQLite after folding in the rows not yet in them).
    public func counters(day: Int, month: Int) throws -> [String: (
        day: (usd: Double, tokens: Double), month: (usd: Double, tokens: Double)
    )] {
        try foldCounters()
        let (dayKey, monthKey) = (BudgetCounters.dayPeriod(day), BudgetCounters.monthPeriod(month))
        var result: [String: (day: (usd: Double, tokens: Double), month: (usd: Double, tokens: Double))] = [:]
        for row in try database.query(
            "SELECT scope, period, usd, tokens FROM budget_counters WHERE period = ? OR period = ?",
            [.text(dayKey), .text(monthKey)])
        {
            var entry = result[row.string("scope")] ?? ((0, 0), (0, 0))
            if row.string("period") == dayKey {
                entry.day = (row.double("usd"), row.double("tokens"))
            } else {
                entry.month = (row.double("usd"), row.double("tokens"))
            }
            result[row.string("scope")] = entry
        }
        return result
    }

    /// Releases a shared reservation whose request leaves no ledger row.
    public func releaseShared(reservation id: Int) throws {
        try database.execute("DELETE FROM reservations WHERE id = ?", [.integer(id)])
    }

    /// Deletes reservations that expired before `now`; returns how many.
    @discardableResult
    public func sweepExpiredReservations(now: Double) throws -> Int {
        try database.execute("DELETE FROM reservations WHERE expires_at <= ?", [.real(now)])
    }

    /// Live (unexpired) reservations: their count and USD held.
    public func liveReservations(now: Double) throws -> (count: Int, usd: Double) {
        let row = try database.query(
            """
            SELECT COUNT(*) AS count, CAST(COALESCE(SUM(usd), 0) AS DOUBLE PRECISION) AS usd
            FROM reservations WHERE expires_at > ?
            """,
            [.real(now)]
        ).first
        return (row?.int("count") ?? 0, row?.double("usd") ?? 0)
    }
}

extension Ledger {
    /// What every replica has recorded of `session`: start, spend, tokens, newest trip and confirmation (one query).
    public func sharedSession(_ session: String) throws -> SharedSession {
        let row = try database.query(
            """
            SELECT (SELECT MIN(time) FROM requests WHERE session = ?) AS start,
                (SELECT CAST(COALESCE(SUM(cost_usd), 0) AS DOUBLE PRECISION) FROM requests WHERE session = ?) AS spend,
                (SELECT CAST(COALESCE(SUM(input_tokens + cached_input_tokens + cache_write_tokens + output_tokens), 0)
                    AS BIGINT) FROM requests WHERE session = ?) AS tokens,
                (SELECT MAX(time) FROM trips WHERE session = ?) AS tripped,
                (SELECT MAX(time) FROM confirmations WHERE session = ?) AS confirmed
            """,
            Array(repeating: .text(session), count: 5)
        ).first
        return SharedSession(
            start: row?.optionalDouble("start"), spendUSD: row?.double("spend") ?? 0, tokens: row?.int("tokens") ?? 0,
            lastTrip: row?.optionalDouble("tripped"), lastConfirmation: row?.optionalDouble("confirmed"))
    }
}

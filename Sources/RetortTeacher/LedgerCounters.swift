import Dispatch
import Foundation
import Synchronization

/// Increments of `budget_counters`, summed per scope and period before they are written (one upsert row each, in a
/// fixed order, so concurrent writers lock counter rows in the same order and never deadlock).
struct BudgetCounters {
    /// The tokens a budget counts, in SQL over `requests` (reasoning tokens are part of the output).
    static let tokenSum = "input_tokens + cached_input_tokens + cache_write_tokens + output_tokens"

    /// A counter row's key.
    struct Key: Hashable, Comparable {
        var scope: String
        var period: String

        static func < (lhs: Key, rhs: Key) -> Bool { (lhs.scope, lhs.period) < (rhs.scope, rhs.period) }
    }

    private(set) var totals: [Key: (usd: Double, tokens: Double)] = [:]

    var isEmpty: Bool { totals.isEmpty }

    /// The period key of day `day` (days since 1970, UTC).
    static func dayPeriod(_ day: Int) -> String { "day \(day)" }

    /// The period key of month `month` (months since year 0, UTC).
    static func monthPeriod(_ month: Int) -> String { "month \(month)" }

    /// Adds spend to `scope` in day `day` and in its month; nothing for a row that spent nothing.
    mutating func add(scope: String, day: Int, month: Int? = nil, usd: Double, tokens: Double) {
        guard usd != 0 || tokens != 0 else { return }
        let month = month ?? BudgetPeriod.month(Double(day) * 86_400)
        for period in [BudgetCounters.dayPeriod(day), BudgetCounters.monthPeriod(month)] {
            let key = Key(scope: scope, period: period)
            let old = totals[key] ?? (0, 0)
            totals[key] = (old.usd + usd, old.tokens + tokens)
        }
    }

    /// Adds a request row's spend to its key, user and team.
    mutating func add(_ row: LedgerRow) {
        add(
            time: row.time, keyHash: row.keyHash, user: row.user, team: row.team, usd: row.costUSD,
            tokens: row.usage.total)
    }

    /// Adds the spend of a request made at `time` (unix seconds) to its key, user and team, in the request's UTC day
    /// and month: the one place a request's spend becomes counter keys, whether its row is being inserted
    /// (PostgreSQL) or folded in later (SQLite, `Ledger.foldCounters`).
    mutating func add(time: Double, keyHash: String, user: String, team: String, usd: Double, tokens: Int) {
        guard usd != 0 || tokens != 0 else { return }
        let day = BudgetPeriod.day(time)
        let month = BudgetPeriod.month(time)
        for scope in ["key " + keyHash, "user " + user, "team " + team] {
            add(scope: scope, day: day, month: month, usd: usd, tokens: Double(tokens))
        }
    }

    /// One upsert of every counter (SQL and arguments, the common dialect).
    func upsert() -> (sql: String, arguments: [LedgerValue]) {
        let keys = totals.keys.sorted()
        var arguments: [LedgerValue] = []
        arguments.reserveCapacity(keys.count * 4)
        for key in keys {
            let value = totals[key] ?? (0, 0)
            arguments += [.text(key.scope), .text(key.period), .real(value.usd), .real(value.tokens)]
        }
        let sql = """
            INSERT INTO budget_counters (scope, period, usd, tokens) VALUES \
            \(Array(repeating: "(?, ?, ?, ?)", count: keys.count).joined(separator: ", ")) \
            ON CONFLICT (scope, period) DO UPDATE SET usd = budget_counters.usd + excluded.usd,
                tokens = budget_counters.tokens + excluded.tokens
            """
        return (sql, arguments)
    }

    /// Writes the counters (chunks of 1000 rows).
    func write(_ statements: any LedgerStatements) throws {
        let keys = totals.keys.sorted()
        for start in stride(from: 0, to: keys.count, by: 1000) {
            var chunk = BudgetCounters()
            for key in keys[start..<min(keys.count, start + 1000)] { chunk.totals[key] = totals[key] }
            let (sql, arguments) = chunk.upsert()
            try statements.execute(sql, arguments)
        }
    }
}

/// Group commit of request rows: a request's row joins the batch being gathered while the previous batch commits, and
/// the request waits until its batch has committed (so an answer is never sent for a row the ledger does not hold,
/// and a batch that fails fails every request in it). One writer thread commits one batch at a time; under light load
/// a batch is one row and nothing waits for a timer.
final class LedgerRowGroup: Sendable {
    private struct State {
        var pending: [(row: LedgerRow, done: CheckedContinuation<Void, any Error>)] = []
        var writing = false
    }

    /// The most rows one batch commits.
    static let maximumBatch = 256

    private let state = Mutex(State())
    private let queue = DispatchQueue(label: "retort.ledger.rows")
    private let write: @Sendable ([LedgerRow]) throws -> Void

    init(write: @escaping @Sendable ([LedgerRow]) throws -> Void) { self.write = write }

    /// Returns when `row` has committed; throws the batch's error when it could not be.
    func record(_ row: LedgerRow) async throws {
        try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, any Error>) in
            let start = state.withLock { state -> Bool in
                state.pending.append((row, done))
                if state.writing { return false }
                state.writing = true
                return true
            }
            if start { queue.async { self.drain() } }
        }
    }

    private func drain() {
        while true {
            let batch = state.withLock { state -> [(row: LedgerRow, done: CheckedContinuation<Void, any Error>)] in
                let count = min(state.pending.count, LedgerRowGroup.maximumBatch)
                let batch = Array(state.pending.prefix(count))
                state.pending.removeFirst(count)
                if batch.isEmpty { state.writing = false }
                return batch
            }
            if batch.isEmpty { return }
            do {
                try write(batch.map(\.row))
                for entry in batch { entry.done.resume() }
            } catch {
                for entry in batch { entry.done.resume(throwing: error) }
            }
        }
    }
}

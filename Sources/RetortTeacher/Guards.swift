import Foundation

/// UTC calendar periods for budgets.
enum BudgetPeriod {
    /// Days since 1970-01-01 UTC.
    static func day(_ time: Double) -> Int { Int((time / 86_400).rounded(.down)) }

    static let calendar: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(secondsFromGMT: 0) ?? calendar.timeZone
        return calendar
    }()

    /// Months since year 0, UTC.
    static func month(_ time: Double) -> Int {
        let parts = calendar.dateComponents([.year, .month], from: Date(timeIntervalSince1970: time))
        return (parts.year ?? 0) * 12 + (parts.month ?? 1) - 1
    }

    /// The start of `time`'s UTC month, in unix seconds.
    static func monthStart(_ time: Double) -> Double {
        let parts = calendar.dateComponents([.year, .month], from: Date(timeIntervalSince1970: time))
        return calendar.date(from: parts)?.timeIntervalSince1970 ?? Double(day(time)) * 86_400
    }
}

/// A request refused because it could break a budget (HTTP 429 `budget_exceeded`).
public struct BudgetRefusal: Sendable, Equatable {
    /// Which budget, e.g. `user ana usd_per_day`.
    public var budget: String
    /// The budget's limit.
    public var limit: Double
    /// Settled spend in the period.
    public var spent: Double
    /// Held by requests in flight.
    public var reserved: Double
    /// This request's maximum.
    public var request: Double
    /// Whether the figures are USD (else tokens).
    public var isUSD: Bool
}

extension BudgetRefusal {
    /// `BUDGET: limit L, spent S, reserved R, this request up to Q` (`$` for USD budgets).
    public var summary: String {
        let unit = isUSD ? "$" : ""
        return
            "\(budget): limit \(unit)\(BudgetRefusal.figure(limit)), spent \(unit)\(BudgetRefusal.figure(spent)), reserved \(unit)\(BudgetRefusal.figure(reserved)), this request up to \(unit)\(BudgetRefusal.figure(request))"
    }

    /// A whole number as itself, else four decimals.
    static func figure(_ value: Double) -> String {
        Int(exactly: value).map { String($0) } ?? String(format: "%.4f", value)
    }
}

/// A held reservation, settled once.
public struct Reservation: Sendable {
    /// The reservation's row in a shared (PostgreSQL) ledger; the request's ledger row releases it.
    public let sharedID: Int?
    let scopes: [String]
    let usd: Double
    let tokens: Double
    let day: Int
    let month: Int
}

/// Budgets enforced by reservation: the request's maximum cost is held before forwarding and settled after,
/// atomically under one lock (a lock, not an actor: no thread hop on the hot path), so concurrent requests can never
/// overspend. On a shared (PostgreSQL) ledger the reservations live in the ledger instead, so replicas share them
/// (`Ledger.reserveShared`).
public final class BudgetBook: @unchecked Sendable {
    private let lock = NSLock()
    /// The shared ledger that holds reservations, nil for in-memory budgets (SQLite).
    private let shared: Ledger?
    /// Names this process in the reservations it holds.
    private let holder = "\(ProcessInfo.processInfo.hostName)/\(ProcessInfo.processInfo.processIdentifier)"
    /// Admissions since the last sweep of expired reservations.
    private var admissionsSinceSweep = 0
    struct Tally {
        var day = 0
        var month = 0
        var dayUSD = 0.0
        var monthUSD = 0.0
        var dayTokens = 0.0
        var monthTokens = 0.0
        var reservedDayUSD = 0.0
        var reservedMonthUSD = 0.0
        var reservedDayTokens = 0.0
        var reservedMonthTokens = 0.0

        mutating func roll(day: Int, month: Int) {
            if day != self.day {
                self.day = day
                dayUSD = 0
                dayTokens = 0
                reservedDayUSD = 0
                reservedDayTokens = 0
            }
            if month != self.month {
                self.month = month
                monthUSD = 0
                monthTokens = 0
                reservedMonthUSD = 0
                reservedMonthTokens = 0
            }
        }
    }

    private var tallies: [String: Tally] = [:]
    private var limits: [String: Budgets] = [:]

    /// Starts from the spend the ledger already holds for the current UTC day and month.
    public init(config: GatewayConfig, ledger: Ledger, now: Double = Date().timeIntervalSince1970) throws {
        limits = BudgetBook.limits(config)
        if ledger.isShared {
            shared = ledger
            return
        }
        shared = nil
        let day = BudgetPeriod.day(now)
        let month = BudgetPeriod.month(now)
        var loaded: [String: Tally] = [:]
        for (scope, spend) in try ledger.counters(day: day, month: month) {
            var tally = Tally(day: day, month: month)
            (tally.dayUSD, tally.dayTokens) = spend.day
            (tally.monthUSD, tally.monthTokens) = spend.month
            loaded[scope] = tally
        }
        tallies = loaded
    }

    static func limits(_ config: GatewayConfig) -> [String: Budgets] {
        var limits: [String: Budgets] = [:]
        for (hash, key) in config.keys where !key.budgets.isEmpty { limits["key " + hash] = key.budgets }
        for (user, budgets) in config.userBudgets where !budgets.isEmpty { limits["user " + user] = budgets }
        for (team, budgets) in config.teamBudgets where !budgets.isEmpty { limits["team " + team] = budgets }
        return limits
    }

    /// Takes the limits of a reloaded config (spend and reservations carry over).
    public func reload(_ config: GatewayConfig) {
        lock.lock()
        defer { lock.unlock() }
        limits = BudgetBook.limits(config)
    }

    /// Holds `usd` and `tokens` against every budget of `key`, or says which budget it would break. A shared
    /// reservation lapses after `lifetime` seconds (the request's longest possible run); only a shared ledger that
    /// cannot be reached throws.
    public func reserve(
        key: ClientKey, usd: Double, tokens: Double, lifetime: Double = 600, now: Double = Date().timeIntervalSince1970
    ) throws -> Result<Reservation, BudgetRefusalError> {
        if let shared {
            return try reserveShared(shared, key: key, usd: usd, tokens: tokens, lifetime: lifetime, now: now)
        }
        lock.lock()
        defer { lock.unlock() }
        let day = BudgetPeriod.day(now)
        let month = BudgetPeriod.month(now)
        let scopes = ["key " + key.sha256, "user " + key.user, "team " + key.team]
        for scope in scopes {
            guard let budget = limits[scope] else { continue }
            var tally = tallies[scope] ?? Tally(day: day, month: month)
            tally.roll(day: day, month: month)
            tallies[scope] = tally
            let label = scope.hasPrefix("key ") ? "key of \(key.user)" : scope
            let checks: [(String, Double?, Double, Double, Double, Bool)] = [
                ("usd_per_day", budget.usdPerDay, tally.dayUSD, tally.reservedDayUSD, usd, true),
                ("usd_per_month", budget.usdPerMonth, tally.monthUSD, tally.reservedMonthUSD, usd, true),
                ("tokens_per_day", budget.tokensPerDay, tally.dayTokens, tally.reservedDayTokens, tokens, false),
                (
                    "tokens_per_month", budget.tokensPerMonth, tally.monthTokens, tally.reservedMonthTokens, tokens,
                    false
                ),
            ]
            for (name, limit, spent, reserved, request, isUSD) in checks {
                guard let limit else { continue }
                if spent + reserved + request > limit {
                    return .failure(
                        BudgetRefusalError(
                            refusal: BudgetRefusal(
                                budget: "\(label) \(name)", limit: limit, spent: spent, reserved: reserved,
                                request: request, isUSD: isUSD
                            )
                        )
                    )
                }
            }
        }
        for scope in scopes where limits[scope] != nil || tallies[scope] != nil {
            var tally = tallies[scope] ?? Tally(day: day, month: month)
            tally.roll(day: day, month: month)
            tally.reservedDayUSD += usd
            tally.reservedMonthUSD += usd
            tally.reservedDayTokens += tokens
            tally.reservedMonthTokens += tokens
            tallies[scope] = tally
        }
        return .success(
            Reservation(sharedID: nil, scopes: scopes, usd: usd, tokens: tokens, day: day, month: month))
    }

    private func reserveShared(
        _ ledger: Ledger, key: ClientKey, usd: Double, tokens: Double, lifetime: Double, now: Double
    ) throws -> Result<Reservation, BudgetRefusalError> {
        let (scopes, sweep): ([Ledger.BudgetScope], Bool) = {
            lock.lock()
            defer { lock.unlock() }
            admissionsSinceSweep += 1
            let sweep = admissionsSinceSweep >= 256
            if sweep { admissionsSinceSweep = 0 }
            let scopes = [
                ("key " + key.sha256, "key of \(key.user)", "key_hash", key.sha256),
                ("user " + key.user, "user \(key.user)", "\"user\"", key.user),
                ("team " + key.team, "team \(key.team)", "team", key.team),
            ].compactMap { scope, label, column, value -> Ledger.BudgetScope? in
                limits[scope].map {
                    Ledger.BudgetScope(scope: scope, label: label, column: column, value: value, budgets: $0)
                }
            }
            return (scopes, sweep)
        }()
        let day = BudgetPeriod.day(now)
        let month = BudgetPeriod.month(now)
        // A key with no budget in any of its scopes has nothing to hold: no round trip to the ledger.
        guard !scopes.isEmpty else {
            return .success(Reservation(sharedID: nil, scopes: [], usd: usd, tokens: tokens, day: day, month: month))
        }
        if sweep { try ledger.sweepExpiredReservations(now: now) }
        switch try ledger.reserveShared(
            key: key, scopes: scopes, usd: usd, tokens: tokens, now: now, expiresAt: now + lifetime, holder: holder)
        {
        case .success(let id):
            return .success(
                Reservation(sharedID: id, scopes: [], usd: usd, tokens: tokens, day: day, month: month))
        case .failure(let refusal): return .failure(refusal)
        }
    }

    /// Releases `reservation` and books what the request really cost. A shared reservation is released by the
    /// request's ledger row instead (`LedgerRow.reservationID`), in the statement that books the cost.
    public func settle(_ reservation: Reservation, usd: Double, tokens: Double) {
        guard reservation.sharedID == nil else { return }
        lock.lock()
        defer { lock.unlock() }
        for scope in reservation.scopes {
            var tally = tallies[scope] ?? Tally(day: reservation.day, month: reservation.month)
            if tally.day == reservation.day {
                tally.reservedDayUSD = max(0, tally.reservedDayUSD - reservation.usd)
                tally.reservedDayTokens = max(0, tally.reservedDayTokens - reservation.tokens)
                tally.dayUSD += usd
                tally.dayTokens += tokens
            }
            if tally.month == reservation.month {
                tally.reservedMonthUSD = max(0, tally.reservedMonthUSD - reservation.usd)
                tally.reservedMonthTokens = max(0, tally.reservedMonthTokens - reservation.tokens)
                tally.monthUSD += usd
                tally.monthTokens += tokens
            }
            tallies[scope] = tally
        }
    }
}

extension RouteConfig {
    /// How long a request on this route can hold its reservation: every deployment tried `retry.attempts` times to
    /// its `timeout_s`, plus a minute for the answer to be relayed and recorded. A shared reservation lapses after it.
    public func reservationLifetime(retry: RetryPolicy) -> Double {
        deployments.reduce(60) { $0 + $1.timeoutSeconds * Double(max(1, retry.attempts)) }
    }
}

/// The error form of a budget refusal.
public struct BudgetRefusalError: Error, Sendable {
    /// The refusal.
    public let refusal: BudgetRefusal
}

/// A session that needs confirmation (HTTP 409 `confirmation_required`).
public struct SessionRefusal: Sendable, Equatable {
    /// The session id.
    public var session: String
    /// How long the session has run.
    public var durationSeconds: Double
    /// Tokens the session has used.
    public var tokens: Int
    /// USD the session has spent.
    public var spendUSD: Double
    /// The spend allowed before confirmation.
    public var limitUSD: Double?
    /// The duration allowed before confirmation.
    public var limitSeconds: Double?
    /// Why it tripped.
    public var reason: String
    /// Whether this is the first refusal of this trip (log, record and notify once).
    public var isNewTrip: Bool
    /// The key's user.
    public var user: String
}

/// Sessions and the runaway breaker: a session past its duration or spend waits for a confirmation.
public final class SessionBook: @unchecked Sendable {
    private let lock = NSLock()
    struct State {
        var id: String
        var keyHash: String
        var user: String
        var start: Double
        var last: Double
        var tokens = 0
        var spend = 0.0
        var allowedUSD: Double?
        var allowedSeconds: Double?
        var trippedAt: Double?
    }

    private var policy: SessionPolicy
    private var sessions: [String: State] = [:]
    private var currentByKey: [String: String] = [:]

    /// Creates a value from its parts.
    public init(policy: SessionPolicy) { self.policy = policy }

    /// Takes a reloaded config's policy.
    public func reload(_ policy: SessionPolicy) {
        lock.lock()
        defer { lock.unlock() }
        self.policy = policy
    }

    /// The session of a request from `key` (named by `header` or found by the idle gap), or why it must wait.
    public func begin(
        key: ClientKey, header: String?, now: Double = Date().timeIntervalSince1970
    ) -> (session: String, refusal: SessionRefusal?) {
        lock.lock()
        defer { lock.unlock() }
        let id: String
        if let header, !header.isEmpty {
            id = header
        } else if let current = currentByKey[key.sha256], let state = sessions[current],
            now - state.last <= policy.idleGapSeconds
        {
            id = current
        } else {
            id = "\(key.user)-\(key.sha256.prefix(8))-\(Int(now))"
            currentByKey[key.sha256] = id
        }
        var state =
            sessions[id]
            ?? State(
                id: id, keyHash: key.sha256, user: key.user, start: now, last: now, allowedUSD: policy.maxUSD,
                allowedSeconds: policy.maxDurationSeconds
            )
        state.last = now
        let duration = now - state.start
        var reason: String?
        if let allowed = state.allowedUSD, state.spend > allowed {
            reason = String(format: "spent $%.4f, over the $%g limit", state.spend, allowed)
        } else if let allowed = state.allowedSeconds, duration > allowed {
            reason = String(format: "running %.0f s, over the %.0f s limit", duration, allowed)
        }
        var refusal: SessionRefusal?
        if let reason {
            let isNew = state.trippedAt == nil
            if isNew { state.trippedAt = now }
            refusal = SessionRefusal(
                session: id, durationSeconds: duration, tokens: state.tokens, spendUSD: state.spend,
                limitUSD: state.allowedUSD, limitSeconds: state.allowedSeconds, reason: reason, isNewTrip: isNew,
                user: state.user
            )
        }
        sessions[id] = state
        return (id, refusal)
    }

    /// Takes what other gateway replicas know of `session` (from a shared ledger): the earliest start, the larger
    /// spend and tokens, and a trip that no confirmation has released yet. Call before `begin` for that session.
    public func adopt(
        _ session: String, key: ClientKey, shared: SharedSession, now: Double = Date().timeIntervalSince1970
    ) {
        lock.lock()
        defer { lock.unlock() }
        var state =
            sessions[session]
            ?? State(
                id: session, keyHash: key.sha256, user: key.user, start: shared.start ?? now, last: now,
                allowedUSD: policy.maxUSD, allowedSeconds: policy.maxDurationSeconds)
        if let start = shared.start { state.start = min(state.start, start) }
        state.spend = max(state.spend, shared.spendUSD)
        state.tokens = max(state.tokens, shared.tokens)
        if let tripped = shared.lastTrip, tripped > (shared.lastConfirmation ?? -.infinity), state.trippedAt == nil {
            state.trippedAt = tripped
        }
        sessions[session] = state
    }

    /// Whether `session` exists and belongs to `keyHash`.
    public func belongs(_ session: String, keyHash: String) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        return sessions[session]?.keyHash == keyHash
    }

    /// Forgets the current trip of `session` (its record could not be stored): the next request trips it again.
    package func untrip(_ session: String) {
        lock.lock()
        defer { lock.unlock() }
        sessions[session]?.trippedAt = nil
    }

    /// When the current trip of `session` happened, if it is tripped.
    public func trippedAt(_ session: String) -> Double? {
        lock.lock()
        defer { lock.unlock() }
        return sessions[session]?.trippedAt
    }

    /// Books a finished request's spend.
    public func settle(session: String, usd: Double, tokens: Int) {
        lock.lock()
        defer { lock.unlock() }
        guard var state = sessions[session] else { return }
        state.spend += usd
        state.tokens += tokens
        sessions[session] = state
    }

    /// Confirms `session` for `keyHash` (nil: any key, for the operator's CLI); false if unknown or another key's.
    /// The session then runs to the next multiple of each limit.
    @discardableResult
    public func confirm(_ session: String, keyHash: String?, now: Double = Date().timeIntervalSince1970) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard var state = sessions[session], keyHash == nil || state.keyHash == keyHash else { return false }
        if let limit = policy.maxUSD, limit > 0 {
            state.allowedUSD = ((state.spend / limit).rounded(.down) + 1) * limit
        }
        if let limit = policy.maxDurationSeconds, limit > 0 {
            state.allowedSeconds = (((now - state.start) / limit).rounded(.down) + 1) * limit
        }
        state.trippedAt = nil
        sessions[session] = state
        return true
    }
}

/// A session as the shared ledger knows it, across every replica.
public struct SharedSession: Sendable, Equatable {
    /// Its first request, if any was recorded.
    public var start: Double?
    /// Settled spend.
    public var spendUSD: Double
    /// Tokens used.
    public var tokens: Int
    /// The newest trip.
    public var lastTrip: Double?
    /// The newest confirmation.
    public var lastConfirmation: Double?

    /// Creates a value from its parts.
    public init(start: Double?, spendUSD: Double, tokens: Int, lastTrip: Double?, lastConfirmation: Double?) {
        self.start = start
        self.spendUSD = spendUSD
        self.tokens = tokens
        self.lastTrip = lastTrip
        self.lastConfirmation = lastConfirmation
    }
}

/// Per-deployment circuit breakers: closed → open after `failures` in `window` → half-open probe after `cooldown`.
public final class BreakerBoard: @unchecked Sendable {
    private let lock = NSLock()
    /// A breaker's state.
    public enum State: String, Sendable {
        case closed, open
        case halfOpen = "half-open"
    }

    struct Breaker {
        var failures: [Double] = []
        var openUntil: Double?
        var probing = false
    }

    private var policy: BreakerPolicy
    private var breakers: [String: Breaker] = [:]

    /// Creates a value from its parts.
    public init(policy: BreakerPolicy) { self.policy = policy }

    /// Takes a reloaded config's policy and closes every breaker.
    public func reload(_ policy: BreakerPolicy) {
        lock.lock()
        defer { lock.unlock() }
        self.policy = policy
        breakers = [:]
    }

    /// Whether an attempt on `deployment` may go out now (one probe at a time once the cool-down is over).
    public func admit(_ deployment: String, now: Double = Date().timeIntervalSince1970) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard var breaker = breakers[deployment], let until = breaker.openUntil else { return true }
        if now < until || breaker.probing { return false }
        breaker.probing = true
        breakers[deployment] = breaker
        return true
    }

    /// A successful attempt closes the breaker.
    public func success(_ deployment: String) {
        lock.lock()
        defer { lock.unlock() }
        breakers[deployment] = nil
    }

    /// A failed attempt; opens the breaker at the threshold, or again after a failed probe.
    public func failure(_ deployment: String, now: Double = Date().timeIntervalSince1970) {
        lock.lock()
        defer { lock.unlock() }
        var breaker = breakers[deployment] ?? Breaker()
        if breaker.openUntil != nil {
            breaker.openUntil = now + policy.cooldownSeconds
            breaker.probing = false
        } else {
            breaker.failures = breaker.failures.filter { now - $0 <= policy.windowSeconds } + [now]
            if breaker.failures.count >= policy.failures {
                breaker.openUntil = now + policy.cooldownSeconds
                breaker.failures = []
            }
        }
        breakers[deployment] = breaker
    }

    /// An attempt that ended neither way (a probe that got a client error) frees the probe slot.
    public func release(_ deployment: String) {
        lock.lock()
        defer { lock.unlock() }
        breakers[deployment]?.probing = false
    }

    /// The state of `deployment`'s breaker.
    public func state(_ deployment: String, now: Double = Date().timeIntervalSince1970) -> State {
        lock.lock()
        defer { lock.unlock() }
        guard let until = breakers[deployment]?.openUntil else { return .closed }
        return now < until ? .open : .halfOpen
    }
}

/// Requests in flight and per minute to one deployment.
actor DeploymentLimiter {
    private var inFlight = 0
    private var waiters: [CheckedContinuation<Void, Never>] = []
    private var recent: [(time: Double, tokens: Int)] = []

    /// Waits for a slot under `concurrency` and the per-minute limits, then holds it.
    func acquire(concurrency: Int?, rpm: Int?, tpm: Int?, tokens: Int) async {
        if let concurrency {
            while inFlight >= concurrency {
                await withCheckedContinuation { waiters.append($0) }
            }
        }
        inFlight += 1
        while true {
            let now = Date().timeIntervalSince1970
            recent.removeAll { now - $0.time > 60 }
            let requestsOK = rpm.map { recent.count < $0 } ?? true
            let tokensOK = tpm.map { recent.reduce(0) { $0 + $1.tokens } + tokens <= $0 || recent.isEmpty } ?? true
            if requestsOK && tokensOK { break }
            let wait = max(0.01, 60 - (now - (recent.first?.time ?? now)))
            try? await Task.sleep(for: .seconds(min(wait, 1)))
        }
        if rpm != nil || tpm != nil { recent.append((Date().timeIntervalSince1970, tokens)) }
    }

    /// Frees the slot.
    func release() {
        inFlight -= 1
        if !waiters.isEmpty { waiters.removeFirst().resume() }
    }
}

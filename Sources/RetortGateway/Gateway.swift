import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import RetortData
import RetortDeployments
import RetortNumerics
import RetortTeacher
import Synchronization

/// An OpenAI-style error answer.
struct GatewayFailure: Error {
    var status: HTTPResponse.Status
    var type: String
    var code: String
    var message: String
    var extra: [String: JSON] = [:]

    var json: JSON {
        var error: [String: JSON] = ["type": .string(type), "code": .string(code), "message": .string(message)]
        for (key, value) in extra { error[key] = value }
        return ["error": .object(error)]
    }
}

/// The gateway: authentication, budgets, sessions, routing, ledger, metrics; the HTTP server wraps it.
public final class Gateway: Sendable {
    /// The configuration and the deployed students by route (FORMATS.md §8), swapped together on reload.
    private let state: Mutex<Snapshot>
    /// Reloads under way (`/healthz` answers 503 until they are done).
    let reloadsInFlight = Atomic<Int>(0)
    /// Draws that decide which student answers get a shadow check.
    private let shadowDraws: Mutex<SeededGenerator>
    /// Where the config was read from (for reloads); nil for a config built in code.
    public let configPath: String?
    /// The usage ledger.
    public let ledger: Ledger
    let budgets: BudgetBook
    let sessions: SessionBook
    let breakers: BreakerBoard
    let dispatcher: Dispatcher
    /// The Prometheus metrics.
    public let metrics: GatewayMetrics
    let logger: Logger
    /// Writes of the ledger's other tables, and whether the ledger took its last write.
    let ledgerWrites: LedgerWrites
    /// Recently seen tokens and their SHA-256 (in memory only, never written anywhere).
    private let tokenHashes = Mutex<[String: String]>([:])
    let startTime = Date().timeIntervalSince1970

    /// A gateway over `config`; `environment` supplies the secrets named by `api_key_env`.
    public init(
        config: GatewayConfig, configPath: String? = nil, logger: Logger = Logger(label: "retort.gateway"),
        environment: @escaping @Sendable (String) -> String? = { ProcessInfo.processInfo.environment[$0] },
        ledgerBusyTimeout: Double = 2, shadowSeed: UInt64 = UInt64.random(in: 0...UInt64.max)
    ) throws {
        state = Mutex(Snapshot(config: config, students: [:]))
        shadowDraws = Mutex(SeededGenerator(seed: shadowSeed))
        self.configPath = configPath
        self.logger = logger
        let ledger = try Ledger(config: config, busyTimeout: ledgerBusyTimeout)
        try? ledger.checkpointInBackground()
        self.ledger = ledger
        budgets = try BudgetBook(config: config, ledger: ledger)
        sessions = SessionBook(policy: config.session)
        let breakers = BreakerBoard(policy: config.breaker)
        self.breakers = breakers
        let metrics = GatewayMetrics()
        self.metrics = metrics
        let writes = LedgerWrites(ledger: ledger, metrics: metrics, logger: logger)
        ledgerWrites = writes
        dispatcher = Dispatcher(
            breakers: breakers, logger: logger, environment: environment,
            onFailover: { route, deployment, reason in
                metrics.failover(route: route, deployment: deployment)
                let time = Date().timeIntervalSince1970
                await writes.write(
                    "failovers", metadata: ["route": "\(route)", "deployment": "\(deployment)", "reason": "\(reason)"]
                ) {
                    try ledger.recordFailover(route: route, deployment: deployment, reason: reason, time: time)
                }
            },
            onAttempt: { deployment, outcome, seconds in
                metrics.attempt(deployment: deployment, outcome: outcome, seconds: seconds)
            }
        )
        let students = loadStudents(for: config, current: [:])
        state.withLock { $0.students = students }
    }

    /// Whether to shadow-check one student answer, at `rate`.
    func drawShadow(rate: Double) -> Bool {
        guard rate > 0 else { return false }
        return shadowDraws.withLock { Double.random(in: 0..<1, using: &$0) } < rate
    }

    /// The current configuration.
    public var config: GatewayConfig { state.withLock { $0.config } }

    /// What one request runs on: the configuration and the deployed students of one moment.
    public struct Snapshot: Sendable {
        /// The configuration.
        public var config: GatewayConfig
        /// Deployed students by route.
        public var students: [String: ServedStudent]
    }

    /// The configuration and students now (a request takes one and keeps it to the end).
    public var snapshot: Snapshot { state.withLock { $0 } }

    /// The deployed students by route, as the current configuration serves them.
    public var students: [String: ServedStudent] { state.withLock { $0.students } }

    /// Re-reads the config file and the ledger's deployments; a bad file is refused and the running config stays.
    /// Models load before anything is swapped, so requests never wait on a reload and those in flight finish on the
    /// configuration they started with.
    public func reload() async throws(DataError) {
        guard let configPath else {
            await apply(config)
            return
        }
        reloadsInFlight.add(1, ordering: .relaxed)
        defer { reloadsInFlight.subtract(1, ordering: .relaxed) }
        let fresh = try GatewayConfig.load(configPath)
        await apply(fresh)
        logger.info("configuration reloaded", metadata: ["file": "\(configPath)"])
    }

    /// Replaces the configuration and reloads the deployments from the ledger (tests, and reload).
    public func apply(_ fresh: GatewayConfig) async {
        reloadsInFlight.add(1, ordering: .relaxed)
        defer { reloadsInFlight.subtract(1, ordering: .relaxed) }
        let students = loadStudents(for: fresh, current: self.students)
        state.withLock { $0 = Snapshot(config: fresh, students: students) }
        budgets.reload(fresh)
        sessions.reload(fresh.session)
        breakers.reload(fresh.breaker)
        await dispatcher.reload()
    }

    /// Follows the deployments other processes make on a shared (PostgreSQL) ledger: every `interval`, a changed set
    /// of serving deployments reloads the students, so a `retort deploy` or a rollback on another replica reaches this
    /// one within about `interval`. Runs until cancelled.
    func followDeployments(every interval: Duration = .milliseconds(250)) async {
        var seen = Set(students.values.map(\.record.id))
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            guard let serving = try? ledger.servingDeployments() else { continue }
            let ids = Set(serving.map(\.id))
            guard ids != seen else { continue }
            seen = ids
            let config = self.config
            let fresh = loadStudents(for: config, current: students)
            state.withLock { $0.students = fresh }
            logger.info(
                "deployments changed in the shared ledger; students reloaded", metadata: ["serving": "\(ids.sorted())"])
        }
    }

    /// Closes upstream connections and, on an SQLite ledger, folds the last request rows into the budget counters
    /// (otherwise the next open would).
    public func shutdown() async {
        await dispatcher.shutdown()
        try? ledger.foldCounters()
    }

    /// SHA-256 of a client token, lowercase hex.
    public static func hash(token: String) -> String { sha256Hex(token) }

    /// SHA-256 of `text`'s UTF-8 bytes, lowercase hex (key hashes, cache keys, batch digests).
    public static func sha256Hex(_ text: String) -> String { RetortTeacher.sha256Hex(text) }

    /// The key a request authenticates with under `config` (default: the current one), or nil.
    func authenticate(_ request: Request, in config: GatewayConfig? = nil, allowQuery: Bool = false) -> ClientKey? {
        var token: String?
        if let header = request.headers[.authorization], header.lowercased().hasPrefix("bearer ") {
            token = String(header.dropFirst(7)).trimmingCharacters(in: .whitespaces)
        } else if allowQuery, let query = request.uri.queryParameters["key"] {
            token = String(query)
        }
        guard let token, !token.isEmpty else { return nil }
        let hash =
            tokenHashes.withLock { $0[token] }
            ?? {
                let hash = Gateway.hash(token: token)
                tokenHashes.withLock { cache in
                    if cache.count >= 4096 { cache.removeAll() }
                    cache[token] = hash
                }
                return hash
            }()
        return (config ?? self.config).keys[hash]
    }

    /// Writes a ledger row, committed with the rows of other requests in flight (group commit) before this returns; a
    /// failure marks the ledger unhealthy so later requests fail closed.
    func record(_ row: LedgerRow) async -> Bool {
        do {
            try await ledger.recordGrouped(row)
            ledgerWrites.healthy.store(true, ordering: .relaxed)
            return true
        } catch {
            ledgerWrites.failed(
                "requests", error: error,
                metadata: ["route": "\(row.route)", "user": "\(row.user)", "status": "\(row.status)"])
            return false
        }
    }

    /// Whether the ledger can take writes (probed again after a failure).
    func ledgerWritable() -> Bool {
        if ledgerWrites.healthy.load(ordering: .relaxed) { return true }
        do {
            try ledger.probeWritable()
            ledgerWrites.healthy.store(true, ordering: .relaxed)
            return true
        } catch {
            return false
        }
    }

    /// Posts a JSON event to `notify.webhook` without waiting.
    func notify(_ event: JSON) {
        guard let webhook = config.webhook else { return }
        let logger = self.logger
        Task {
            var request = HTTPClientRequest(url: webhook)
            request.method = .POST
            request.headers.add(name: "content-type", value: "application/json")
            request.body = .bytes(ByteBuffer(data: event.data))
            do {
                _ = try await HTTPClient.shared.execute(request, timeout: .seconds(5))
            } catch {
                logger.warning("webhook failed", metadata: ["error": "\(error)"])
            }
        }
    }
}

/// Writes to the ledger's tables besides a request's own row (failovers, trips, confirmations, shadows, captures,
/// rollbacks). A write that fails is tried again; if it still fails it is logged with what was lost, counted in
/// `retort_gateway_ledger_write_failures_total{table}`, and the ledger is marked unhealthy so the next request probes
/// it and is refused (`ledger_unavailable`) while it cannot be written. Nothing is dropped silently.
final class LedgerWrites: Sendable {
    let ledger: Ledger
    let metrics: GatewayMetrics
    let logger: Logger
    /// Whether the last write went through (false: requests probe the ledger first and fail closed).
    let healthy = Atomic<Bool>(true)
    /// Tries per write.
    static let tries = 3

    init(ledger: Ledger, metrics: GatewayMetrics, logger: Logger) {
        self.ledger = ledger
        self.metrics = metrics
        self.logger = logger
    }

    /// Runs `body` (one write to `table`) up to `tries` times, 50 ms and then 100 ms apart; whether it was stored.
    @discardableResult
    func write(_ table: String, metadata: Logger.Metadata, _ body: () throws -> Void) async -> Bool {
        var lastError: any Error = CancellationError()
        for attempt in 1...LedgerWrites.tries {
            do {
                try body()
                return true
            } catch {
                lastError = error
                if attempt < LedgerWrites.tries {
                    logger.warning(
                        "ledger write failed; trying again",
                        metadata: metadata.merging(["table": "\(table)", "error": "\(error)"]) { $1 })
                    try? await Task.sleep(for: .milliseconds(50 * attempt))
                }
            }
        }
        failed(table, error: lastError, metadata: metadata)
        return false
    }

    /// Logs and counts a write to `table` that did not go through, and marks the ledger unhealthy.
    func failed(_ table: String, error: any Error, metadata: Logger.Metadata) {
        healthy.store(false, ordering: .relaxed)
        metrics.ledgerWriteFailure(table: table)
        logger.error(
            "ledger write failed; refusing requests until the ledger can be written",
            metadata: metadata.merging(["table": "\(table)", "error": "\(error)"]) { $1 })
    }
}

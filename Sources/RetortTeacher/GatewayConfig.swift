import Foundation
import RetortData

/// The gateway's configuration file (FORMATS.md §5), validated: every problem is a `FILE:LINE: what to fix` error.
public struct GatewayConfig: Sendable {
    /// The file it was read from.
    public var file: String
    /// Address to listen on.
    public var host: String
    /// Port to listen on (0: any free port).
    public var port: Int
    /// The SQLite ledger's path, resolved against the config file's folder; for a PostgreSQL ledger, the local anchor
    /// `var/gateway-postgres` beside which pid files and deployed models live.
    public var ledgerPath: String
    /// Where the ledger is: a SQLite file, or a PostgreSQL database shared by replicas.
    public var ledger: LedgerLocation
    /// Client keys by their SHA-256 (lowercase hex).
    public var keys: [String: ClientKey]
    /// Budgets per user.
    public var userBudgets: [String: Budgets]
    /// Budgets per team.
    public var teamBudgets: [String: Budgets]
    /// Upstream providers by name.
    public var providers: [String: ProviderConfig]
    /// Routes by the model name clients send.
    public var routes: [String: RouteConfig]
    /// Retries of one deployment within one request.
    public var retry: RetryPolicy
    /// The per-deployment circuit breaker.
    public var breaker: BreakerPolicy
    /// The runaway-session breaker.
    public var session: SessionPolicy
    /// Where breaker trips are posted, when set.
    public var webhook: String?
    /// PostgreSQL ledger: whether an answer also waits for its request row's WAL flush on the server
    /// (`ledger_synchronous_commit: true`); by default it waits for the commit only (see `Ledger.init(postgres:)`).
    public var ledgerSynchronousCommit = false

    /// Reads and validates `path`.
    /// `environment` supplies the variable `ledger_password_env` names.
    public static func load(
        _ path: String, environment: (String) -> String? = { ProcessInfo.processInfo.environment[$0] }
    ) throws(DataError) -> GatewayConfig {
        let url = URL(fileURLWithPath: path)
        let value = try YAMLValue.load(url)
        return try GatewayConfig(value, folder: url.deletingLastPathComponent().path, environment: environment)
    }

    /// Listens on `listen` (`HOST:PORT`, `--listen`) instead of the file's address.
    public mutating func listen(on listen: String) throws(DataError) {
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]) else {
            throw DataError(.usage, "--listen: write HOST:PORT, e.g. 127.0.0.1:8787")
        }
        host = String(listen[..<colon])
        self.port = port
    }

    /// Parses YAML text as if it came from `file` (relative paths resolve against `folder`).
    public static func parse(
        _ text: String, file: String, folder: String,
        environment: (String) -> String? = { ProcessInfo.processInfo.environment[$0] }
    ) throws(DataError) -> GatewayConfig {
        try GatewayConfig(try YAMLValue.parse(text, file: file), folder: folder, environment: environment)
    }

    init(_ root: YAMLValue, folder: String, environment: (String) -> String?) throws(DataError) {
        let top = try root.mapping(
            allowed: [
                "listen", "ledger", "ledger_password_env", "ledger_synchronous_commit", "keys", "users", "teams",
                "providers", "routes", "retry",
                "breaker", "session",
                "notify",
            ],
            required: ["providers", "routes"]
        )
        file = root.file
        if let listen = top["listen"] {
            let text = try listen.string()
            guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
                (0...65535).contains(port)
            else { throw listen.error("\"\(text)\" is not HOST:PORT; write e.g. 127.0.0.1:8787") }
            host = String(text[..<colon])
            self.port = port
        } else {
            host = "127.0.0.1"
            port = 8787
        }
        (ledger, ledgerPath) = try LedgerLocation.parse(
            top["ledger"], passwordVariable: top["ledger_password_env"], folder: folder, environment: environment)
        if let value = top["ledger_synchronous_commit"] {
            guard case .postgres = ledger else {
                throw value.error(
                    "ledger_synchronous_commit applies only to a postgres:// ledger; remove it or set ledger: postgres://USER@HOST:PORT/DB"
                )
            }
            ledgerSynchronousCommit = try value.bool()
        }

        var providers: [String: ProviderConfig] = [:]
        for (name, value) in try top.need("providers").namedEntries() {
            providers[name] = try ProviderConfig(name: name, value)
        }
        self.providers = providers

        var routes: [String: RouteConfig] = [:]
        for (name, value) in try top.need("routes").namedEntries() {
            routes[name] = try RouteConfig(name: name, value, providers: providers)
        }
        guard !routes.isEmpty else {
            throw try top.need("routes").error("no routes; add at least one route with deployments")
        }
        self.routes = routes

        var users: [String: Budgets] = [:]
        for (name, value) in try top["users"]?.namedEntries() ?? [:] {
            let entry = try value.mapping(allowed: ["budgets"])
            users[name] = try entry["budgets"].map { value throws(DataError) in try Budgets(value) } ?? Budgets()
        }
        userBudgets = users
        var teams: [String: Budgets] = [:]
        for (name, value) in try top["teams"]?.namedEntries() ?? [:] {
            let entry = try value.mapping(allowed: ["budgets"])
            teams[name] = try entry["budgets"].map { value throws(DataError) in try Budgets(value) } ?? Budgets()
        }
        teamBudgets = teams

        var keys: [String: ClientKey] = [:]
        for value in try top["keys"]?.sequence() ?? [] {
            let key = try ClientKey(value, routes: routes)
            if keys[key.sha256] != nil { throw value.error("this sha256 is listed twice; keep one entry per key") }
            keys[key.sha256] = key
        }
        self.keys = keys

        retry = try top["retry"].map { value throws(DataError) in try RetryPolicy(value) } ?? RetryPolicy()
        breaker = try top["breaker"].map { value throws(DataError) in try BreakerPolicy(value) } ?? BreakerPolicy()
        session = try top["session"].map { value throws(DataError) in try SessionPolicy(value) } ?? SessionPolicy()
        if let notify = top["notify"] {
            webhook = try notify.mapping(allowed: ["webhook"])["webhook"]?.string()
        }
    }

    /// The route names `key` may use, sorted.
    public func routeNames(for key: ClientKey) -> [String] {
        routes.keys.filter { key.allows(route: $0) }.sorted()
    }
}

/// Where the gateway's ledger is (`ledger:` in gateway.yaml, FORMATS.md §5).
public enum LedgerLocation: Sendable, Equatable {
    /// A SQLite file (WAL), the one-machine default.
    case sqlite(path: String)
    /// A PostgreSQL database that gateway replicas share.
    case postgres(PostgresLedgerLocation)

    /// Reads `ledger:` (a path, or `postgres://USER@HOST:PORT/DB`) and `ledger_password_env:`; returns the location and
    /// the local path (the SQLite file, or the anchor of a PostgreSQL ledger).
    static func parse(
        _ value: YAMLValue?, passwordVariable: YAMLValue?, folder: String, environment: (String) -> String?
    ) throws(DataError) -> (LedgerLocation, String) {
        func resolved(_ path: String) -> String {
            path.hasPrefix("/") ? path : (folder as NSString).appendingPathComponent(path)
        }
        let text = try value?.string() ?? "var/gateway.sqlite"
        guard text.hasPrefix("postgres://") || text.hasPrefix("postgresql://"), let value else {
            if let passwordVariable {
                throw passwordVariable.error(
                    "ledger_password_env applies only to a postgres:// ledger; remove it or set ledger: postgres://USER@HOST:PORT/DB"
                )
            }
            let path = resolved(text)
            return (.sqlite(path: path), path)
        }
        var location: PostgresLedgerLocation
        switch PostgresLedgerLocation.parse(text) {
        case .success(let parsed): location = parsed
        case .failure(let error): throw value.error("ledger: \(error.message)")
        }
        if let passwordVariable {
            let name = try passwordVariable.string()
            guard let password = environment(name), !password.isEmpty else {
                throw passwordVariable.error(
                    "ledger_password_env: the environment variable \(name) is not set; export \(name) with the password of \(location.user), or remove ledger_password_env for trust authentication"
                )
            }
            location.password = password
        }
        return (.postgres(location), resolved("var/gateway-postgres"))
    }

    /// The file path or the URL (never a password), for messages.
    public var description: String {
        switch self {
        case .sqlite(let path): path
        case .postgres(let location): location.description
        }
    }

    /// Whether the ledger can be read now without creating it: the SQLite file exists, or the ledger is PostgreSQL.
    public var mayExist: Bool {
        switch self {
        case .sqlite(let path): FileManager.default.fileExists(atPath: path)
        case .postgres: true
        }
    }
}

/// A client key: who it belongs to and what it may do.
public struct ClientKey: Sendable {
    /// SHA-256 of the token (lowercase hex).
    public var sha256: String
    /// The key's user.
    public var user: String
    /// The user's team.
    public var team: String
    /// Routes it may use (nil: every route).
    public var routes: Set<String>?
    /// Whether it may open /dashboard.
    public var admin: Bool
    /// The key's own budgets.
    public var budgets: Budgets

    /// Whether the key may call `route`.
    public func allows(route: String) -> Bool { routes?.contains(route) ?? true }

    /// A new random client token: `rk-` and 64 hex digits (32 bytes from the system's generator).
    public static func newToken() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        return "rk-" + bytes.map { String(format: "%02x", $0) }.joined()
    }

    /// The `keys:` entry of a config for `token`: its SHA-256 only, never the token.
    public static func configEntry(token: String, user: String, team: String, admin: Bool) -> [String] {
        var lines = ["  - sha256: \(sha256Hex(token))", "    user: \(user)", "    team: \(team)"]
        if admin { lines.append("    admin: true") }
        return lines
    }

    init(_ value: YAMLValue, routes known: [String: RouteConfig]) throws(DataError) {
        let entry = try value.mapping(
            allowed: ["sha256", "user", "team", "routes", "admin", "budgets"],
            required: ["sha256", "user"]
        )
        let hash = try entry.need("sha256").string().lowercased()
        guard hash.count == 64, hash.allSatisfy({ $0.isHexDigit }) else {
            throw try entry.need("sha256").error(
                "expected 64 hex digits (the SHA-256 of the key); `retort gateway key` prints one"
            )
        }
        sha256 = hash
        user = try entry.need("user").string()
        team = try entry["team"]?.string() ?? ""
        if let list = entry["routes"] {
            var names = Set<String>()
            for item in try list.sequence() {
                let name = try item.string()
                guard known[name] != nil else {
                    throw item.error(
                        "no route named \"\(name)\"; routes: \(known.keys.sorted().joined(separator: ", "))")
                }
                names.insert(name)
            }
            routes = names
        }
        admin = try entry["admin"]?.bool() ?? false
        budgets = try entry["budgets"].map { value throws(DataError) in try Budgets(value) } ?? Budgets()
    }

    /// A key built in code (tests).
    public init(
        sha256: String, user: String, team: String, routes: Set<String>? = nil, admin: Bool = false,
        budgets: Budgets = Budgets()
    ) {
        self.sha256 = sha256
        self.user = user
        self.team = team
        self.routes = routes
        self.admin = admin
        self.budgets = budgets
    }
}

/// Spending limits for one key, user or team, in UTC days and months.
public struct Budgets: Sendable, Equatable {
    /// USD per UTC day.
    public var usdPerDay: Double?
    /// USD per UTC month.
    public var usdPerMonth: Double?
    /// Tokens per UTC day.
    public var tokensPerDay: Double?
    /// Tokens per UTC month.
    public var tokensPerMonth: Double?

    /// Creates a value from its parts.
    public init(
        usdPerDay: Double? = nil, usdPerMonth: Double? = nil, tokensPerDay: Double? = nil,
        tokensPerMonth: Double? = nil
    ) {
        self.usdPerDay = usdPerDay
        self.usdPerMonth = usdPerMonth
        self.tokensPerDay = tokensPerDay
        self.tokensPerMonth = tokensPerMonth
    }

    init(_ value: YAMLValue) throws(DataError) {
        let entry = try value.mapping(allowed: ["usd_per_day", "usd_per_month", "tokens_per_day", "tokens_per_month"])
        usdPerDay = try entry.number("usd_per_day", in: ConfigLimits.usd, unit: "USD")
        usdPerMonth = try entry.number("usd_per_month", in: ConfigLimits.usd, unit: "USD")
        tokensPerDay = try entry.number("tokens_per_day", in: ConfigLimits.tokens, unit: "tokens")
        tokensPerMonth = try entry.number("tokens_per_month", in: ConfigLimits.tokens, unit: "tokens")
    }

    /// Whether any limit is set.
    public var isEmpty: Bool { usdPerDay == nil && usdPerMonth == nil && tokensPerDay == nil && tokensPerMonth == nil }
}

/// The wire format an upstream speaks.
public enum ProviderKind: String, Sendable {
    /// OpenAI-compatible `/chat/completions`.
    case openai
    /// Anthropic Messages (`/v1/messages`).
    case anthropic
}

/// An upstream provider.
public struct ProviderConfig: Sendable {
    /// The name in the config.
    public var name: String
    /// The wire format.
    public var kind: ProviderKind
    /// Base URL: for `openai` up to and including `/v1`; for `anthropic` the host (the gateway adds `/v1/messages`).
    public var baseURL: String
    /// The environment variable holding the secret (never the secret itself).
    public var apiKeyEnv: String?

    init(name: String, _ value: YAMLValue) throws(DataError) {
        let entry = try value.mapping(allowed: ["kind", "base_url", "api_key_env"], required: ["kind", "base_url"])
        self.name = name
        let kindText = try entry.need("kind").string()
        guard let kind = ProviderKind(rawValue: kindText) else {
            throw try entry.need("kind").error("unknown provider kind \"\(kindText)\"; use openai or anthropic")
        }
        self.kind = kind
        let base = try entry.need("base_url").string()
        guard let url = URL(string: base), let scheme = url.scheme, ["http", "https"].contains(scheme), url.host != nil
        else { throw try entry.need("base_url").error("\"\(base)\" is not an http(s) URL") }
        baseURL = base.hasSuffix("/") ? String(base.dropLast()) : base
        apiKeyEnv = try entry["api_key_env"]?.string()
    }

    /// A provider built in code (tests).
    public init(name: String, kind: ProviderKind, baseURL: String, apiKeyEnv: String? = nil) {
        self.name = name
        self.kind = kind
        self.baseURL = baseURL
        self.apiKeyEnv = apiKeyEnv
    }
}

/// USD per million tokens, by kind of token.
public struct Price: Sendable, Equatable {
    /// Uncached input.
    public var inputPerMTok: Double
    /// Input read from a cache.
    public var cachedInputPerMTok: Double
    /// Input written to a cache.
    public var cacheWritePerMTok: Double
    /// Output, reasoning included.
    public var outputPerMTok: Double

    /// Creates a value from its parts.
    public init(input: Double, cachedInput: Double? = nil, cacheWrite: Double? = nil, output: Double) {
        inputPerMTok = input
        cachedInputPerMTok = cachedInput ?? input
        cacheWritePerMTok = cacheWrite ?? input
        outputPerMTok = output
    }

    init(_ value: YAMLValue) throws(DataError) {
        let entry = try value.mapping(
            allowed: ["input_per_mtok", "cached_input_per_mtok", "cache_write_per_mtok", "output_per_mtok"],
            required: ["input_per_mtok", "output_per_mtok"]
        )
        func number(_ key: String) throws(DataError) -> Double? {
            try entry.number(key, in: ConfigLimits.pricePerMTok, unit: "USD per million tokens")
        }
        self.init(
            input: try number("input_per_mtok") ?? 0, cachedInput: try number("cached_input_per_mtok"),
            cacheWrite: try number("cache_write_per_mtok"), output: try number("output_per_mtok") ?? 0
        )
    }

    /// The cost of `usage` in USD (reasoning tokens are inside `output` and priced as output).
    public func cost(of usage: TokenUsage) -> Double {
        (Double(usage.inputUncached) * inputPerMTok + Double(usage.cacheRead) * cachedInputPerMTok
            + Double(usage.cacheWrite) * cacheWritePerMTok + Double(usage.output) * outputPerMTok) / 1_000_000
    }

    /// The highest price per token of any kind (for reservations).
    public var highestPerMTok: Double { max(inputPerMTok, cachedInputPerMTok, cacheWritePerMTok, outputPerMTok) }
}

/// One upstream model behind a route.
public struct Deployment: Sendable {
    /// The provider's name in the config.
    public var provider: String
    /// Its wire format and address.
    public var providerConfig: ProviderConfig
    /// The upstream model name.
    public var model: String
    /// USD per million tokens.
    public var price: Price
    /// Bounds one attempt until the first byte, and for streams the longest gap between chunks.
    public var timeoutSeconds: Double
    /// Requests in flight to this deployment (nil: unbounded).
    public var concurrency: Int?
    /// Requests per minute (nil: unbounded).
    public var requestsPerMinute: Int?
    /// Tokens per minute (nil: unbounded).
    public var tokensPerMinute: Int?

    /// `provider/model`, the name used by the breaker, the ledger and `x-retort-deployment`.
    public var id: String { "\(provider)/\(model)" }

    init(_ value: YAMLValue, providers: [String: ProviderConfig]) throws(DataError) {
        let entry = try value.mapping(
            allowed: ["provider", "model", "price", "timeout_s", "concurrency", "rate_limit"],
            required: ["provider", "model", "price"]
        )
        provider = try entry.need("provider").string()
        guard let config = providers[provider] else {
            throw try entry.need("provider").error(
                "no provider named \"\(provider)\"; providers: \(providers.keys.sorted().joined(separator: ", "))"
            )
        }
        providerConfig = config
        model = try entry.need("model").string()
        price = try Price(try entry.need("price"))
        timeoutSeconds = try entry.number("timeout_s", in: ConfigLimits.timeoutSeconds, unit: "seconds") ?? 60
        concurrency = try entry["concurrency"]?.int(in: ConfigLimits.concurrency)
        if let item = entry["rate_limit"] {
            let limits = try item.mapping(allowed: ["rpm", "tpm"])
            requestsPerMinute = try limits["rpm"]?.int(in: ConfigLimits.requestsPerMinute, unit: "requests per minute")
            tokensPerMinute = try limits["tpm"]?.int(in: ConfigLimits.tokensPerMinute, unit: "tokens per minute")
        }
    }

    /// A deployment built in code (tests).
    public init(provider: ProviderConfig, model: String, price: Price, timeoutSeconds: Double = 60) {
        self.provider = provider.name
        self.providerConfig = provider
        self.model = model
        self.price = price
        self.timeoutSeconds = timeoutSeconds
    }
}

/// Which deployments a request may fail over to.
public enum Fallback: String, Sendable {
    /// Move down the list.
    case any
    /// Only deployments serving the same upstream model as the first.
    case sameModel = "same-model"
}

/// A model name clients send, and the deployments behind it.
public struct RouteConfig: Sendable {
    /// The name in the config.
    public var name: String
    /// Which deployments a request may fail over to.
    public var fallback: Fallback
    /// The task whose teacher rows this route's traffic becomes.
    public var capture: String?
    /// What of the request is the captured row's input (default `{{last_user}}`).
    public var captureInput: String?
    /// Tried in order.
    public var deployments: [Deployment]

    init(name: String, _ value: YAMLValue, providers: [String: ProviderConfig]) throws(DataError) {
        let entry = try value.mapping(
            allowed: ["fallback", "capture", "capture_input", "deployments"],
            required: ["deployments"]
        )
        self.name = name
        let fallbackText = try entry["fallback"]?.string() ?? "any"
        guard let fallback = Fallback(rawValue: fallbackText) else {
            throw try entry.need("fallback").error("unknown fallback \"\(fallbackText)\"; use any or same-model")
        }
        self.fallback = fallback
        capture = try entry["capture"]?.string()
        captureInput = try entry["capture_input"]?.string()
        var deployments: [Deployment] = []
        for item in try entry.need("deployments").sequence() {
            deployments.append(try Deployment(item, providers: providers))
        }
        guard !deployments.isEmpty else {
            throw try entry.need("deployments").error("a route needs at least one deployment")
        }
        self.deployments = deployments
    }

    /// A route built in code (tests).
    public init(name: String, fallback: Fallback = .any, deployments: [Deployment]) {
        self.name = name
        self.fallback = fallback
        self.deployments = deployments
    }

    /// The deployments a request may use, in order.
    public var eligibleDeployments: [Deployment] {
        guard fallback == .sameModel, let first = deployments.first else { return deployments }
        return deployments.filter { $0.model == first.model }
    }

    /// The highest per-token price over the eligible deployments (USD per million tokens).
    public var highestPerMTok: Double { eligibleDeployments.map(\.price.highestPerMTok).max() ?? 0 }
}

/// Retries of one deployment within one request.
public struct RetryPolicy: Sendable {
    /// Upstream requests made.
    public var attempts = 3
    /// The first backoff.
    public var backoffMilliseconds = 200.0
    /// The longest wait before the deployment counts as failed.
    public var maxBackoffMilliseconds = 5000.0

    /// Creates a value from its parts.
    public init(attempts: Int = 3, backoffMilliseconds: Double = 200, maxBackoffMilliseconds: Double = 5000) {
        self.attempts = attempts
        self.backoffMilliseconds = backoffMilliseconds
        self.maxBackoffMilliseconds = maxBackoffMilliseconds
    }

    init(_ value: YAMLValue) throws(DataError) {
        let entry = try value.mapping(allowed: ["attempts", "backoff_ms", "max_backoff_ms"])
        attempts = try entry["attempts"]?.int(in: ConfigLimits.attempts, unit: "(1 = no retry)") ?? 3
        backoffMilliseconds = try entry.number("backoff_ms", in: ConfigLimits.backoffMilliseconds, unit: "ms") ?? 200
        maxBackoffMilliseconds =
            try entry.number("max_backoff_ms", in: ConfigLimits.backoffMilliseconds, unit: "ms") ?? 5000
        guard maxBackoffMilliseconds >= backoffMilliseconds else {
            throw (entry["max_backoff_ms"] ?? value).error(
                "need backoff_ms ≤ max_backoff_ms, got \(NumberRange.format(backoffMilliseconds)) > \(NumberRange.format(maxBackoffMilliseconds))"
            )
        }
    }
}

/// The per-deployment circuit breaker.
public struct BreakerPolicy: Sendable {
    /// Failures that open the breaker.
    public var failures = 5
    /// The window failures are counted in.
    public var windowSeconds = 30.0
    /// How long it stays open.
    public var cooldownSeconds = 30.0

    /// Creates a value from its parts.
    public init(failures: Int = 5, windowSeconds: Double = 30, cooldownSeconds: Double = 30) {
        self.failures = failures
        self.windowSeconds = windowSeconds
        self.cooldownSeconds = cooldownSeconds
    }

    init(_ value: YAMLValue) throws(DataError) {
        let entry = try value.mapping(allowed: ["failures", "window_s", "cooldown_s"])
        failures = try entry["failures"]?.int(in: ConfigLimits.failures) ?? 5
        windowSeconds = try entry.number("window_s", in: ConfigLimits.timeoutSeconds, unit: "seconds") ?? 30
        cooldownSeconds = try entry.number("cooldown_s", in: ConfigLimits.timeoutSeconds, unit: "seconds") ?? 30
    }
}

/// The runaway-session breaker.
public struct SessionPolicy: Sendable {
    /// A key's requests with no gap longer than this are one session.
    public var idleGapSeconds = 1800.0
    /// A session longer than this needs confirmation.
    public var maxDurationSeconds: Double?
    /// A session spending more than this needs confirmation.
    public var maxUSD: Double?

    /// Creates a value from its parts.
    public init(idleGapSeconds: Double = 1800, maxDurationSeconds: Double? = nil, maxUSD: Double? = nil) {
        self.idleGapSeconds = idleGapSeconds
        self.maxDurationSeconds = maxDurationSeconds
        self.maxUSD = maxUSD
    }

    init(_ value: YAMLValue) throws(DataError) {
        let entry = try value.mapping(allowed: ["idle_gap", "max_duration", "max_usd"])
        idleGapSeconds = try entry["idle_gap"]?.seconds(in: ConfigLimits.duration) ?? 1800
        maxDurationSeconds = try entry["max_duration"]?.seconds(in: ConfigLimits.duration)
        maxUSD = try entry.number("max_usd", in: ConfigLimits.usd, unit: "USD")
    }
}

/// The allowed range of every number in a gateway config, chosen so that what `gateway check` accepts `serve` can
/// honour: every duration converts to whole milliseconds or nanoseconds without overflow, and every sum of
/// budgets, prices and tokens stays finite.
enum ConfigLimits {
    /// `timeout_s`, `window_s`, `cooldown_s`: up to a day.
    static let timeoutSeconds = NumberRange.positive(upTo: 86_400)
    /// `backoff_ms`, `max_backoff_ms`: up to 10 minutes.
    static let backoffMilliseconds = NumberRange.nonNegative(upTo: 600_000)
    /// Session `idle_gap` and `max_duration`: positive, up to 10 years.
    static let duration = NumberRange.positive(upTo: DurationText.maximum)
    /// Budgets and `max_usd`, in USD.
    static let usd = NumberRange.nonNegative(upTo: 1e9)
    /// Token budgets.
    static let tokens = NumberRange.nonNegative(upTo: 1e15)
    /// Prices, USD per million tokens.
    static let pricePerMTok = NumberRange.nonNegative(upTo: 1e6)
    /// Requests in flight to one deployment.
    static let concurrency = 1...100_000
    /// `rate_limit.rpm`.
    static let requestsPerMinute = 1...1_000_000_000
    /// `rate_limit.tpm`.
    static let tokensPerMinute = 1...1_000_000_000_000
    /// `retry.attempts`.
    static let attempts = 1...100
    /// `breaker.failures`.
    static let failures = 1...1_000_000
}

extension [String: YAMLValue] {
    /// The number under `key`, if given, checked against `range` (`unit` names what it counts in the message).
    package func number(_ key: String, in range: NumberRange, unit: String) throws(DataError) -> Double? {
        try self[key]?.double(in: range, unit: unit)
    }

    /// An entry that `mapping(allowed:required:)` has already checked is present.
    package func need(_ key: String) throws(DataError) -> YAMLValue {
        guard let value = self[key] else { throw DataError(.badData, "missing key \(key)") }
        return value
    }
}

import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import RetortData
import Synchronization

/// Where a PostgreSQL ledger is: `postgres://USER@HOST:PORT/DB` (FORMATS.md §5), its password from the environment.
public struct PostgresLedgerLocation: Sendable, Equatable, CustomStringConvertible {
    /// The role to log in as.
    public var user: String
    /// Host name or address.
    public var host: String
    /// TCP port.
    public var port: Int
    /// The database.
    public var database: String
    /// The password (from `ledger_password_env`), nil for trust or peer authentication.
    public var password: String?

    /// Creates a location from its parts.
    public init(user: String, host: String, port: Int = 5432, database: String, password: String? = nil) {
        self.user = user
        self.host = host
        self.port = port
        self.database = database
        self.password = password
    }

    /// Parses `postgres://USER@HOST[:PORT]/DB` (or `postgresql://`); the error says what to write instead.
    public static func parse(_ url: String) -> Result<PostgresLedgerLocation, PostgresURLError> {
        let example = "write e.g. postgres://retort@127.0.0.1:5432/retort"
        var rest = Substring(url)
        if rest.hasPrefix("postgresql://") {
            rest = rest.dropFirst("postgresql://".count)
        } else if rest.hasPrefix("postgres://") {
            rest = rest.dropFirst("postgres://".count)
        } else {
            return .failure(PostgresURLError(message: "\"\(url)\" is not a postgres:// URL; \(example)"))
        }
        guard let at = rest.firstIndex(of: "@") else {
            return .failure(PostgresURLError(message: "\"\(url)\" names no user; \(example)"))
        }
        let user = rest[..<at]
        if user.contains(":") {
            return .failure(
                PostgresURLError(
                    message:
                        "\"\(url)\" holds a password; remove it and name an environment variable with ledger_password_env"
                ))
        }
        rest = rest[rest.index(after: at)...]
        guard let slash = rest.firstIndex(of: "/") else {
            return .failure(PostgresURLError(message: "\"\(url)\" names no database; \(example)"))
        }
        let hostPort = rest[..<slash]
        let database = rest[rest.index(after: slash)...]
        guard !user.isEmpty, !hostPort.isEmpty, !database.isEmpty, !database.contains("/"), !database.contains("?")
        else {
            return .failure(PostgresURLError(message: "\"\(url)\" is not postgres://USER@HOST:PORT/DB; \(example)"))
        }
        var host = String(hostPort)
        var port = 5432
        if let colon = hostPort.lastIndex(of: ":"), !hostPort.hasSuffix("]") {
            guard let number = Int(hostPort[hostPort.index(after: colon)...]), (1...65535).contains(number) else {
                return .failure(PostgresURLError(message: "\"\(url)\" has no valid port (1-65535); \(example)"))
            }
            port = number
            host = String(hostPort[..<colon])
        }
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else {
            return .failure(PostgresURLError(message: "\"\(url)\" names no host; \(example)"))
        }
        return .success(PostgresLedgerLocation(user: String(user), host: host, port: port, database: String(database)))
    }

    /// `postgres://USER@HOST:PORT/DB` (never the password).
    public var description: String {
        let shown = host.contains(":") ? "[\(host)]" : host
        return "postgres://\(user)@\(shown):\(port)/\(database)"
    }
}

/// A PostgreSQL call that failed, in words.
public struct PostgresLedgerError: Error, Sendable, CustomStringConvertible {
    /// What PostgreSQL or the connection said.
    public var description: String
}

/// Why a `ledger:` URL was refused.
public struct PostgresURLError: Error, Sendable {
    /// What is wrong and what to write instead.
    public var message: String
}

/// The PostgreSQL ledger through PostgresNIO: a small pool of connections on NIO's event loops.
///
/// Calls block the calling thread until PostgreSQL answers (as the SQLite backend blocks on the file), so a write
/// has committed when it returns. The futures complete on NIO's own threads, never on Swift's cooperative pool, so a
/// caller there cannot starve them. A connection that fails is closed and dropped; the next call opens a new one, so
/// the ledger recovers by itself when the server comes back. A statement that gets no answer within
/// ``statementTimeout`` fails and its connection is closed: PostgresNIO can leave a query on a connection the server
/// dropped unanswered (a restart under load once held a gateway's row writer, and so every request after it, for
/// good), and a ledger must fail closed rather than wait forever.
final class PostgresLedgerDatabase: LedgerDatabase {
    let target: PostgresLedgerLocation
    let maximumConnections: Int
    var backend: LedgerBackend { .postgres }
    var location: String { target.description }

    private struct Pool {
        var idle: [PostgresConnection] = []
        var open = 0
        var nextID = 0
        var closed = false
    }

    private let pool = Mutex(Pool())
    private let slots: DispatchSemaphore
    private let logger = Logger(label: "retort.ledger.postgres")
    private let connectTimeout: TimeAmount
    private let startupParameters: [(String, String)]
    /// How long a statement waits for PostgreSQL's answer before it fails and its connection is closed.
    let statementTimeout: TimeAmount

    /// The default ``statementTimeout``: a request's statements (its row, the counters admission reads) answer in
    /// about a millisecond; ten seconds leaves room for a report over a large ledger and still ends a lost answer.
    static let defaultStatementTimeout = TimeAmount.seconds(10)

    /// Connects lazily; `maximumConnections` bounds the connections open at once (callers past it wait);
    /// `startupParameters` are session settings every connection starts with (e.g. `synchronous_commit`).
    init(
        _ location: PostgresLedgerLocation, maximumConnections: Int = 8, connectTimeoutSeconds: Int64 = 2,
        startupParameters: [(String, String)] = [], statementTimeout: TimeAmount = defaultStatementTimeout
    ) {
        target = location
        self.statementTimeout = statementTimeout
        self.startupParameters = startupParameters
        self.maximumConnections = maximumConnections
        slots = DispatchSemaphore(value: maximumConnections)
        connectTimeout = .seconds(connectTimeoutSeconds)
    }

    deinit { close() }

    @discardableResult

    func execute(_ sql: String, _ arguments: [LedgerValue]) throws -> Int {
        try withConnection { try statements($0).execute(sql, arguments) }
    }

    func insert(_ sql: String, _ arguments: [LedgerValue]) throws -> Int {
        try withConnection { try statements($0).insert(sql, arguments) }
    }

    func query(_ sql: String, _ arguments: [LedgerValue]) throws -> [LedgerRecord] {
        try withConnection { try statements($0).query(sql, arguments) }
    }

    func transaction<T>(_ body: (any LedgerStatements) throws -> T) throws -> T {
        try withConnection { connection in
            let statements = statements(connection)
            try statements.execute("BEGIN", [])
            let result: T
            do {
                result = try body(statements)
            } catch {
                try statements.execute("ROLLBACK", [])
                throw error
            }
            try statements.execute("COMMIT", [])
            return result
        }
    }

    private func statements(_ connection: PostgresConnection) -> Statements {
        Statements(connection: connection, logger: logger, timeout: statementTimeout)
    }

    /// Waits on the calling thread for `future` for at most `timeout` (as `EventLoopFuture.wait()` waits, one
    /// callback on the future and no timer on its event loop); past it, runs `onTimeout` and throws. A late answer is
    /// dropped.
    static func wait<T: Sendable>(
        for future: EventLoopFuture<T>, timeout: TimeAmount, onTimeout: () -> Void
    ) throws -> T {
        future.eventLoop.preconditionNotInEventLoop()
        let answer = Mutex<Result<T, any Error>?>(nil)
        let answered = DispatchSemaphore(value: 0)
        future.whenComplete { result in
            answer.withLock { $0 = result }
            answered.signal()
        }
        guard answered.wait(timeout: .now() + .nanoseconds(Int(timeout.nanoseconds))) == .success,
            let result = answer.withLock({ $0 })
        else {
            onTimeout()
            let seconds = Double(timeout.nanoseconds) / 1e9
            throw PostgresLedgerError(
                description:
                    "PostgreSQL did not answer within \(seconds) s; the connection is closed and the next call opens a new one"
            )
        }
        return try result.get()
    }

    func close() {
        let connections = pool.withLock { pool in
            pool.closed = true
            defer { pool.idle = [] }
            return pool.idle
        }
        for connection in connections { PostgresLedgerDatabase.discard(connection) }
    }

    /// Closes `connection`, keeping it alive until it has closed (PostgresNIO asserts a connection is closed when
    /// it is released).
    static func discard(_ connection: PostgresConnection) {
        connection.close().whenComplete { _ in withExtendedLifetime(connection) {} }
    }

    /// Runs `body` on a pooled connection; a connection whose call failed is closed instead of pooled.
    private func withConnection<T>(_ body: (PostgresConnection) throws -> T) throws -> T {
        slots.wait()
        defer { slots.signal() }
        let connection = try checkOut()
        do {
            let result = try body(connection)
            checkIn(connection)
            return result
        } catch {
            pool.withLock { $0.open -= 1 }
            PostgresLedgerDatabase.discard(connection)
            throw PostgresLedgerDatabase.readable(error)
        }
    }

    /// PostgresNIO's errors describe themselves generically (to keep data out of logs); their reflection has the
    /// server's message, which an operator needs. Other errors pass through.
    static func readable(_ error: any Error) -> any Error {
        error is PSQLError ? PostgresLedgerError(description: Ledger.describe(error)) : error
    }

    private func checkOut() throws -> PostgresConnection {
        let (reused, id): (PostgresConnection?, Int) = pool.withLock { pool in
            while let connection = pool.idle.popLast() {
                if !connection.isClosed { return (connection, 0) }
                pool.open -= 1
            }
            pool.open += 1
            pool.nextID += 1
            return (nil, pool.nextID)
        }
        if let reused { return reused }
        var configuration = PostgresConnection.Configuration(
            host: target.host, port: target.port, username: target.user, password: target.password,
            database: target.database, tls: .disable)
        configuration.options.connectTimeout = connectTimeout
        configuration.options.additionalStartupParameters = startupParameters
        do {
            return try PostgresConnection.connect(
                on: MultiThreadedEventLoopGroup.singleton.any(), configuration: configuration, id: id, logger: logger
            ).wait()
        } catch {
            pool.withLock { $0.open -= 1 }
            throw PostgresLedgerDatabase.readable(error)
        }
    }

    private func checkIn(_ connection: PostgresConnection) {
        let keep = pool.withLock { pool in
            guard !pool.closed, !connection.isClosed else {
                pool.open -= 1
                return false
            }
            pool.idle.append(connection)
            return true
        }
        if !keep { PostgresLedgerDatabase.discard(connection) }
    }

    /// Statements on one connection.
    struct Statements: LedgerStatements {
        let connection: PostgresConnection
        let logger: Logger
        let timeout: TimeAmount

        @discardableResult

        func execute(_ sql: String, _ arguments: [LedgerValue]) throws -> Int {
            try run(sql, arguments).metadata.rows ?? 0
        }

        func insert(_ sql: String, _ arguments: [LedgerValue]) throws -> Int {
            try run(sql + " RETURNING id", arguments).first.map(Statements.record)?.int("id") ?? 0
        }

        func query(_ sql: String, _ arguments: [LedgerValue]) throws -> [LedgerRecord] {
            try run(sql, arguments).map(Statements.record)
        }

        private func run(_ sql: String, _ arguments: [LedgerValue]) throws -> PostgresQueryResult {
            var binds = PostgresBindings(capacity: arguments.count)
            for argument in arguments {
                switch argument {
                case .null: binds.appendNull()
                case .integer(let value): binds.append(value)
                case .real(let value): binds.append(value)
                case .text(let value): binds.append(value)
                }
            }
            let query = PostgresQuery(unsafeSQL: PostgresLedgerDatabase.numberedPlaceholders(sql), binds: binds)
            return try PostgresLedgerDatabase.wait(for: connection.query(query, logger: logger), timeout: timeout) {
                PostgresLedgerDatabase.discard(connection)
            }
        }

        static func record(_ row: PostgresRow) -> LedgerRecord {
            var values: [String: LedgerValue] = [:]
            for cell in row {
                let value: LedgerValue
                if cell.bytes == nil {
                    value = .null
                } else {
                    switch cell.dataType {
                    case .int2, .int4, .int8, .oid: value = (try? cell.decode(Int.self)).map { .integer($0) } ?? .null
                    case .float4, .float8: value = (try? cell.decode(Double.self)).map { .real($0) } ?? .null
                    case .numeric:
                        value =
                            (try? cell.decode(Decimal.self)).map { .real(NSDecimalNumber(decimal: $0).doubleValue) }
                            ?? .null
                    case .bool: value = (try? cell.decode(Bool.self)).map { .integer($0 ? 1 : 0) } ?? .null
                    default: value = (try? cell.decode(String.self)).map { .text($0) } ?? .null
                    }
                }
                values[cell.columnName.lowercased()] = value
            }
            return LedgerRecord(values)
        }
    }

    /// `?` placeholders as PostgreSQL's `$1, $2, …` (outside quoted strings and identifiers).
    static func numberedPlaceholders(_ sql: String) -> String {
        var result = ""
        result.reserveCapacity(sql.utf8.count + 16)
        var number = 0
        var quote: Character?
        for character in sql {
            if let open = quote {
                if character == open { quote = nil }
                result.append(character)
            } else if character == "'" || character == "\"" {
                quote = character
                result.append(character)
            } else if character == "?" {
                number += 1
                result += "$\(number)"
            } else {
                result.append(character)
            }
        }
        return result
    }
}

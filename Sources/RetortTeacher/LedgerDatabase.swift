import Foundation
import GRDB

/// A value bound to, or read back from, a ledger statement.
///
/// The ledger's SQL uses only these four storage classes, so the same statement text runs on SQLite and on
/// PostgreSQL: booleans are stored as 0/1 integers, times as unix seconds.
public enum LedgerValue: Sendable, Equatable {
    /// SQL NULL.
    case null
    /// A 64-bit integer.
    case integer(Int)
    /// A double.
    case real(Double)
    /// UTF-8 text.
    case text(String)
}

/// Swift values that bind as a ledger value.
public protocol LedgerBindable {
    /// The value as the ledger stores it.
    var ledgerValue: LedgerValue { get }
}

extension Int: LedgerBindable {
    /// The value as the ledger stores it.
    public var ledgerValue: LedgerValue { .integer(self) }
}

extension Double: LedgerBindable {
    /// The value as the ledger stores it.
    public var ledgerValue: LedgerValue { .real(self) }
}

extension String: LedgerBindable {
    /// The value as the ledger stores it.
    public var ledgerValue: LedgerValue { .text(self) }
}

extension Bool: LedgerBindable {
    /// The value as the ledger stores it (0 or 1).
    public var ledgerValue: LedgerValue { .integer(self ? 1 : 0) }
}

extension Optional: LedgerBindable where Wrapped: LedgerBindable {
    /// The value as the ledger stores it (NULL for nil).
    public var ledgerValue: LedgerValue { self?.ledgerValue ?? .null }
}

/// One row a ledger query returned, by column name.
public struct LedgerRecord: Sendable, Equatable {
    /// Values by (lower-case) column name.
    public var values: [String: LedgerValue]

    /// Creates a record.
    public init(_ values: [String: LedgerValue]) { self.values = values }

    /// The column as a double (integers widen; NULL, missing or text: 0).
    public func double(_ column: String) -> Double { optionalDouble(column) ?? 0 }

    /// The column as a double, nil when NULL or missing.
    public func optionalDouble(_ column: String) -> Double? {
        switch values[column] {
        case .real(let value): value
        case .integer(let value): Double(value)
        case .text(let text): Double(text)
        case .null, nil: nil
        }
    }

    /// The column as an integer (doubles truncate; NULL, missing or text: 0).
    public func int(_ column: String) -> Int { optionalInt(column) ?? 0 }

    /// The column as an integer, nil when NULL or missing.
    public func optionalInt(_ column: String) -> Int? {
        switch values[column] {
        case .integer(let value): value
        case .real(let value): Int(exactly: value.rounded(.towardZero))
        case .text(let text): Int(text)
        case .null, nil: nil
        }
    }

    /// The column as a boolean (non-zero integer).
    public func bool(_ column: String) -> Bool { int(column) != 0 }

    /// The column as text ("" when NULL or missing).
    public func string(_ column: String) -> String { optionalString(column) ?? "" }

    /// The column as text, nil when NULL or missing.
    public func optionalString(_ column: String) -> String? {
        switch values[column] {
        case .text(let text): text
        case .integer(let value): String(value)
        case .real(let value): String(value)
        case .null, nil: nil
        }
    }
}

/// Statements on the ledger: the seam between the ledger's tables and the database that holds them.
///
/// Statement text is the common dialect of SQLite and PostgreSQL: `?` placeholders, `"user"` quoted,
/// `CAST(… AS DOUBLE PRECISION)` for sums; each backend adapts only the placeholders.
public protocol LedgerStatements {
    /// Runs a statement; returns how many rows it changed.
    @discardableResult
    func execute(_ sql: String, _ arguments: [LedgerValue]) throws -> Int
    /// Runs an `INSERT` into a table with an `id` key; returns the new row's id.
    func insert(_ sql: String, _ arguments: [LedgerValue]) throws -> Int
    /// Runs a query; returns its rows.
    func query(_ sql: String, _ arguments: [LedgerValue]) throws -> [LedgerRecord]
}

/// Which database holds a ledger.
public enum LedgerBackend: String, Sendable {
    /// One SQLite file (WAL), for one machine.
    case sqlite
    /// A PostgreSQL database shared by gateway replicas.
    case postgres
}

/// A database that holds the ledger's tables: statements outside a transaction are each their own transaction.
/// Calls are synchronous: a write has committed when it returns.
public protocol LedgerDatabase: LedgerStatements, Sendable {
    /// SQLite or PostgreSQL.
    var backend: LedgerBackend { get }
    /// Where it is, for messages (a file path, or a URL without its password).
    var location: String { get }
    /// Runs `body` in one transaction: committed when it returns, rolled back when it throws.
    func transaction<T>(_ body: (any LedgerStatements) throws -> T) throws -> T
    /// Closes its connections (later calls open new ones where the backend can).
    func close()
}

/// The SQLite ledger (WAL) through a GRDB `DatabasePool`.
final class SQLiteLedgerDatabase: LedgerDatabase {
    let pool: DatabasePool
    let location: String
    var backend: LedgerBackend { .sqlite }

    init(path: String, busyTimeout: Double) throws {
        location = path
        let folder = (path as NSString).deletingLastPathComponent
        if !folder.isEmpty {
            try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        }
        var configuration = Configuration()
        configuration.busyMode = .timeout(busyTimeout)
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
        }
        pool = try DatabasePool(path: path, configuration: configuration)
    }

    /// One statement in autocommit mode is its own transaction; no BEGIN/COMMIT round trips.
    @discardableResult
    func execute(_ sql: String, _ arguments: [LedgerValue]) throws -> Int {
        try pool.writeWithoutTransaction { db in try Connection(db: db).execute(sql, arguments) }
    }

    func insert(_ sql: String, _ arguments: [LedgerValue]) throws -> Int {
        try pool.writeWithoutTransaction { db in try Connection(db: db).insert(sql, arguments) }
    }

    func query(_ sql: String, _ arguments: [LedgerValue]) throws -> [LedgerRecord] {
        try pool.read { db in try Connection(db: db).query(sql, arguments) }
    }

    func transaction<T>(_ body: (any LedgerStatements) throws -> T) throws -> T {
        try pool.write { db in try body(Connection(db: db)) }
    }

    func close() {}

    /// Moves WAL checkpoints off the commit path: the writer stops checkpointing when a commit fills the WAL (a
    /// checkpoint copies pages and syncs the file, stalling the commit and every request waiting on it); a thread of
    /// its own checkpoints (`PASSIVE`, so it never blocks the writer) every `interval` seconds instead, while this
    /// database is alive, running `beforeEach` (the ledger's counter fold) before each checkpoint.
    func checkpointInBackground(every interval: Double, beforeEach: @escaping @Sendable () -> Void = {}) throws {
        var configuration = Configuration()
        configuration.busyMode = .timeout(1)
        let checkpointer = try DatabaseQueue(path: location, configuration: configuration)
        try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_autocheckpoint = 0") }
        Thread.detachNewThread { [weak self] in
            while self != nil {
                Thread.sleep(forTimeInterval: interval)
                beforeEach()
                try? checkpointer.writeWithoutTransaction { db in
                    try db.execute(sql: "PRAGMA wal_checkpoint(PASSIVE)")
                }
            }
        }
    }

    /// Runs `body` in one `BEGIN IMMEDIATE` transaction (the write lock first, so a check and the write it decides
    /// cannot interleave with another process's).
    func immediateTransaction<T>(_ body: (any LedgerStatements) throws -> T) throws -> T {
        try pool.writeWithoutTransaction { db in
            var result: T?
            try db.inTransaction(.immediate) {
                result = try body(Connection(db: db))
                return .commit
            }
            guard let result else { preconditionFailure("a committed transaction ran its body") }
            return result
        }
    }

    /// Runs schema statements (several, separated by `;`) in one transaction.
    func executeScript(_ sql: String) throws {
        try pool.write { db in try db.execute(sql: sql) }
    }

    /// Statements on one GRDB connection.
    struct Connection: LedgerStatements {
        let db: Database

        @discardableResult

        func execute(_ sql: String, _ arguments: [LedgerValue]) throws -> Int {
            try db.cachedStatement(sql: sql).execute(arguments: Connection.arguments(arguments))
            return db.changesCount
        }

        func insert(_ sql: String, _ arguments: [LedgerValue]) throws -> Int {
            try db.cachedStatement(sql: sql).execute(arguments: Connection.arguments(arguments))
            return Int(db.lastInsertedRowID)
        }

        func query(_ sql: String, _ arguments: [LedgerValue]) throws -> [LedgerRecord] {
            try Row.fetchAll(db.cachedStatement(sql: sql), arguments: Connection.arguments(arguments)).map { row in
                var values: [String: LedgerValue] = [:]
                for (column, value) in row {
                    values[column.lowercased()] =
                        switch value.storage {
                        case .null: .null
                        case .int64(let integer): .integer(Int(integer))
                        case .double(let double): .real(double)
                        case .string(let text): .text(text)
                        case .blob(let data): .text(String(decoding: data, as: UTF8.self))
                        }
                }
                return LedgerRecord(values)
            }
        }

        static func arguments(_ values: [LedgerValue]) -> StatementArguments {
            StatementArguments(
                values.map { value -> (any DatabaseValueConvertible)? in
                    switch value {
                    case .null: nil
                    case .integer(let integer): integer
                    case .real(let double): double
                    case .text(let text): text
                    }
                })
        }
    }
}

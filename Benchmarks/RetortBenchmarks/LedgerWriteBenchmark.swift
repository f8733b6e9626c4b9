import Foundation
import RetortData
import RetortTeacher

/// The time of one ledger write (`Ledger.record` of a request row, committed when it returns) on each backend.
public struct LedgerWriteBenchmark: Sendable {
    /// Writes timed per backend (after 50 untimed ones).
    public var writes: Int
    /// A PostgreSQL ledger to time next to SQLite, when given.
    public var postgres: PostgresLedgerLocation?
    /// Folder for the SQLite file.
    public var folder: String

    /// Creates a value from its parts.
    public init(writes: Int, postgres: PostgresLedgerLocation?, folder: String) {
        self.writes = writes
        self.postgres = postgres
        self.folder = folder
    }

    /// One backend's figures, in ms.
    public struct Figures: Sendable {
        /// `sqlite` or `postgres`.
        public var backend: String
        /// Median write.
        public var p50: Double
        /// 99th percentile write.
        public var p99: Double
    }

    /// Times `writes` sequential writes on SQLite, then on PostgreSQL when set.
    public func run() throws -> [Figures] {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let path = (folder as NSString).appendingPathComponent("ledger-bench-\(UUID().uuidString).sqlite")
        defer {
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
        }
        var ledgers: [(String, Ledger)] = [("sqlite", try Ledger(path: path))]
        if let postgres { ledgers.append(("postgres", try Ledger(postgres: postgres, path: path + ".anchor"))) }
        return try ledgers.map { name, ledger in
            defer { ledger.close() }
            var times: [Double] = []
            for index in 0..<(writes + 50) {
                let row = LedgerRow(
                    time: Date().timeIntervalSince1970, keyHash: "bench", user: "bench", team: "bench",
                    route: "teacher", deployment: "fake/model", servedModel: "model", session: "bench-\(index)",
                    usage: TokenUsage(inputUncached: 100, cacheRead: 0, cacheWrite: 0, output: 20, reasoning: 0),
                    costUSD: 0.0001, latencyMilliseconds: 3, status: 200, attempts: 1)
                let start = DispatchTime.now().uptimeNanoseconds
                try ledger.record(row)
                if index >= 50 { times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6) }
            }
            times.sort()
            let at = { (q: Double) in times[min(times.count - 1, Int(q * Double(times.count)))] }
            return Figures(backend: name, p50: at(0.5), p99: at(0.99))
        }
    }
}

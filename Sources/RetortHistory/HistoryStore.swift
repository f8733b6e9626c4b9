import Foundation
import GRDB
import RetortSearch

/// One finished search as the history keeps it: the task's fingerprint and meta-features, the whole report
/// (constraints, every candidate's final figures, frontier, recommendation, budget use) and every rung record of the
/// journal (each trial at each fidelity).
public struct HistoryRun: Codable, Sendable {
    /// `JOB/RUN-ID`.
    public var id: String
    /// The task's data fingerprint (the same rows give the same id wherever they live).
    public var taskId: String
    /// The task's meta-features.
    public var meta: MetaFeatures
    /// report.json of the run.
    public var report: RunReport
    /// The journal's rung records: every trial at every fidelity.
    public var rungs: [JournalRecord]

    enum CodingKeys: String, CodingKey {
        case id, meta, report, rungs
        case taskId = "task_id"
    }

    /// A run record.
    public init(id: String, taskId: String, meta: MetaFeatures, report: RunReport, rungs: [JournalRecord]) {
        self.id = id
        self.taskId = taskId
        self.meta = meta
        self.report = report
        self.rungs = rungs
    }
}

/// `retort history export`: every run, in one JSON document that `import` reads back.
public struct HistoryExport: Codable, Sendable {
    /// Always `retort-history`.
    public var format = HistoryStore.format
    /// The schema version.
    public var version = HistoryStore.version
    /// Runs, oldest first.
    public var runs: [HistoryRun]
}

/// A history store error: what is wrong with which file and what to do.
public struct HistoryError: Error, Sendable, CustomStringConvertible {
    /// The message.
    public let message: String
    /// The history file.
    public let file: String
    /// An error about `file`.
    public init(_ message: String, file: String) {
        self.message = message
        self.file = file
    }
    /// `FILE: error: message`.
    public var description: String { "\(file): error: \(message)" }
}

/// A run's row in `retort history list`.
public struct HistoryRunSummary: Sendable, Equatable {
    /// `JOB/RUN-ID`.
    public var id: String
    /// Task name and fingerprint.
    public var task: String, taskId: String
    /// The public dataset the task was made from (report.json `task_dataset`), when known.
    public var dataset: String? = nil
    /// Input kind.
    public var kind: String
    /// When the run was made.
    public var createdAt: String
    /// Strategy.
    public var strategy: String
    /// `student` or `no-distillation`, and the candidate.
    public var recommendation: String
    /// Trial records kept (final figures plus rung records).
    public var trials: Int
}

/// The history of past searches in SQLite (through GRDB): tasks with their meta-features, runs with their reports,
/// and every trial at every fidelity, one row each for querying, with its full record in JSON.
public final class HistoryStore: Sendable {
    /// The format name kept in the `meta` table (a file without it is not a Retort history).
    public static let format = "retort-history"
    /// The schema version this Retort writes and reads.
    public static let version = 1

    let queue: DatabaseQueue
    /// The file.
    public let path: String

    /// Opens (creating when missing) the history at `path`; a file that is not SQLite, not a Retort history or of
    /// another schema version is refused with a message saying so.
    public init(path: String) throws(HistoryError) {
        self.path = path
        do {
            let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            queue = try DatabaseQueue(path: path)
            try queue.write { db in
                let tables = try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'")
                if tables.isEmpty {
                    try Self.createSchema(db)
                    return
                }
                guard tables.contains("meta"),
                    let format = try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'format'"),
                    format == Self.format
                else {
                    throw HistoryError(
                        "this SQLite file is not a Retort history (no meta format \(Self.format)); give another --history path",
                        file: path)
                }
                let version = try Int.fetchOne(db, sql: "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'version'")
                guard version == Self.version else {
                    throw HistoryError(
                        "history schema version \(version.map(String.init) ?? "?") is not the version \(Self.version) this Retort reads; use a matching Retort or another --history path",
                        file: path)
                }
            }
        } catch let error as HistoryError {
            throw error
        } catch let error as DatabaseError {
            throw HistoryError(
                "cannot open the history (\(error.message ?? "\(error.resultCode)")); is it a Retort history file?",
                file: path)
        } catch {
            throw HistoryError("cannot open the history: \(error)", file: path)
        }
    }

    static func createSchema(_ db: Database) throws {
        try db.execute(
            sql: """
                CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                CREATE TABLE task (
                    id TEXT PRIMARY KEY, name TEXT NOT NULL, kind TEXT NOT NULL, meta TEXT NOT NULL,
                    first_seen TEXT NOT NULL);
                CREATE TABLE run (
                    id TEXT PRIMARY KEY, task_id TEXT NOT NULL REFERENCES task(id), job TEXT NOT NULL,
                    created_at TEXT NOT NULL, strategy TEXT NOT NULL, primary_metric TEXT NOT NULL,
                    recommendation_kind TEXT NOT NULL, recommendation_candidate TEXT,
                    wall_seconds REAL NOT NULL, candidate_epochs REAL NOT NULL, record TEXT NOT NULL);
                CREATE TABLE trial (
                    run_id TEXT NOT NULL REFERENCES run(id) ON DELETE CASCADE, candidate TEXT NOT NULL,
                    rung INTEGER NOT NULL, family TEXT, precision TEXT, fidelity REAL, status TEXT,
                    size_bytes INTEGER, flops INTEGER, latency_ms_p50 REAL, metric REAL, gap REAL,
                    train_seconds REAL, record TEXT NOT NULL, PRIMARY KEY (run_id, candidate, rung));
                CREATE INDEX trial_family ON trial(family);
                CREATE INDEX run_task ON run(task_id);
                """)
        try db.execute(
            sql: "INSERT INTO meta (key, value) VALUES ('format', ?), ('version', ?)",
            arguments: [format, "\(version)"])
    }

    /// The JSON text the history stores a value as (meta-features, run records, trials, rungs: sorted keys), for
    /// ``record(_:)`` and ``replaceMeta(of:with:)`` alike, so a replaced record differs only in what was replaced.
    static func stored(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    /// Records `run` (its task first); a run already recorded (same id) is left as it is. Returns whether it was new.
    @discardableResult
    public func record(_ run: HistoryRun) throws(HistoryError) -> Bool {
        do {
            return try queue.write { db in
                if try Bool.fetchOne(db, sql: "SELECT 1 FROM run WHERE id = ?", arguments: [run.id]) == true {
                    return false
                }
                let report = run.report
                try db.execute(
                    sql: "INSERT OR IGNORE INTO task (id, name, kind, meta, first_seen) VALUES (?, ?, ?, ?, ?)",
                    arguments: [
                        run.taskId, report.task, run.meta.kind, try Self.stored(run.meta), report.createdAt,
                    ])
                try db.execute(
                    sql: """
                        INSERT INTO run (id, task_id, job, created_at, strategy, primary_metric, recommendation_kind,
                            recommendation_candidate, wall_seconds, candidate_epochs, record)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [
                        run.id, run.taskId, report.job, report.createdAt, report.search.strategy,
                        report.primaryMetric, report.recommendation.kind, report.recommendation.candidate,
                        report.search.wallSeconds, report.search.candidateEpochs, try Self.stored(run),
                    ])
                let metric = report.primaryMetric
                for trial in report.candidates {
                    try db.execute(
                        sql: """
                            INSERT OR REPLACE INTO trial (run_id, candidate, rung, family, precision, fidelity, status,
                                size_bytes, flops, latency_ms_p50, metric, gap, train_seconds, record)
                            VALUES (?, ?, -1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                            """,
                        arguments: [
                            run.id, trial.id, trial.family.rawValue, trial.precision.rawValue, trial.fidelity,
                            trial.status.rawValue, trial.sizeBytes, trial.flopsPerExample, trial.latencyMsP50,
                            trial.metrics[metric]?.value, trial.differenceToTeacher?.value, trial.trainSeconds,
                            try Self.stored(trial),
                        ])
                }
                for rung in run.rungs {
                    guard let candidate = rung.candidate, let index = rung.rung else { continue }
                    try db.execute(
                        sql: """
                            INSERT OR REPLACE INTO trial (run_id, candidate, rung, fidelity, size_bytes, flops, metric,
                                gap, train_seconds, record)
                            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                            """,
                        arguments: [
                            run.id, candidate, index, rung.fidelity, rung.sizeBytes, rung.flops,
                            rung.metrics?[metric]?.value, rung.differenceToTeacher?.value, rung.trainSeconds,
                            try Self.stored(rung),
                        ])
                }
                return true
            }
        } catch {
            throw HistoryError("cannot record run \(run.id): \(error)", file: path)
        }
    }

    /// Every run, oldest first.
    public func list() throws(HistoryError) -> [HistoryRunSummary] {
        do {
            return try queue.read { db in
                try Row.fetchAll(
                    db,
                    sql: """
                        SELECT run.id, task.name, run.task_id, task.kind, run.created_at, run.strategy,
                            run.recommendation_kind, run.recommendation_candidate,
                            json_extract(run.record, '$.report.task_dataset') AS dataset,
                            (SELECT COUNT(*) FROM trial WHERE trial.run_id = run.id) AS trials
                        FROM run JOIN task ON task.id = run.task_id ORDER BY run.created_at, run.id
                        """
                ).map { row in
                    let candidate: String? = row["recommendation_candidate"]
                    let kind: String = row["recommendation_kind"]
                    return HistoryRunSummary(
                        id: row["id"], task: row["name"], taskId: row["task_id"], dataset: row["dataset"],
                        kind: row["kind"], createdAt: row["created_at"], strategy: row["strategy"],
                        recommendation: candidate.map { "\(kind): \($0)" } ?? kind, trials: row["trials"])
                }
            }
        } catch {
            throw HistoryError("cannot read the history: \(error)", file: path)
        }
    }

    /// The runs whose id, task name, task fingerprint or source dataset (task.json `dataset`) is `key`.
    public func runs(matching key: String) throws(HistoryError) -> [HistoryRun] {
        do {
            let records = try queue.read { db in
                try String.fetchAll(
                    db,
                    sql: """
                        SELECT run.record FROM run JOIN task ON task.id = run.task_id
                        WHERE run.id = ? OR task.name = ? OR run.task_id = ?
                            OR json_extract(run.record, '$.report.task_dataset') = ?
                        ORDER BY run.created_at, run.id
                        """, arguments: [key, key, key, key])
            }
            return try records.map { try JSONDecoder().decode(HistoryRun.self, from: Data($0.utf8)) }
        } catch {
            throw HistoryError("cannot read the history: \(error)", file: path)
        }
    }

    /// Forgets the runs matching `key` (run id, task name, fingerprint or source dataset) and tasks left without runs;
    /// returns how many runs went.
    @discardableResult
    public func forget(_ key: String) throws(HistoryError) -> Int {
        do {
            return try queue.write { db in
                let ids = try String.fetchAll(
                    db,
                    sql: """
                        SELECT run.id FROM run JOIN task ON task.id = run.task_id
                        WHERE run.id = ? OR task.name = ? OR run.task_id = ?
                            OR json_extract(run.record, '$.report.task_dataset') = ?
                        """, arguments: [key, key, key, key])
                for id in ids {
                    try db.execute(sql: "DELETE FROM trial WHERE run_id = ?", arguments: [id])
                    try db.execute(sql: "DELETE FROM run WHERE id = ?", arguments: [id])
                }
                try db.execute(sql: "DELETE FROM task WHERE id NOT IN (SELECT task_id FROM run)")
                return ids.count
            }
        } catch {
            throw HistoryError("cannot forget \(key): \(error)", file: path)
        }
    }

    /// Every run, for `retort history export`.
    public func exportAll() throws(HistoryError) -> HistoryExport {
        do {
            let records = try queue.read { db in
                try String.fetchAll(db, sql: "SELECT record FROM run ORDER BY created_at, id")
            }
            return HistoryExport(
                runs: try records.map { try JSONDecoder().decode(HistoryRun.self, from: Data($0.utf8)) })
        } catch {
            throw HistoryError("cannot export the history: \(error)", file: path)
        }
    }

    /// Records every run of `export` not recorded yet (importing twice changes nothing); returns how many were new.
    public func importing(_ export: HistoryExport) throws(HistoryError) -> Int {
        guard export.format == Self.format, export.version == Self.version else {
            throw HistoryError(
                "the export is \(export.format) version \(export.version); this Retort imports \(Self.format) version \(Self.version)",
                file: path)
        }
        var added = 0
        for run in export.runs where try record(run) { added += 1 }
        return added
    }

    /// Every recorded task's fingerprint with its meta-features (a record that does not decode is left out).
    public func taskMetas() throws(HistoryError) -> [String: MetaFeatures] {
        do {
            let rows = try queue.read { db in
                try Row.fetchAll(db, sql: "SELECT id, meta FROM task").map {
                    ($0["id"] as String, $0["meta"] as String)
                }
            }
            var metas: [String: MetaFeatures] = [:]
            for (id, text) in rows {
                metas[id] = try? JSONDecoder().decode(MetaFeatures.self, from: Data(text.utf8))
            }
            return metas
        } catch {
            throw HistoryError("cannot read the history: \(error)", file: path)
        }
    }

    /// Replaces the meta-features of the task `taskId`, in its task row and in each of its runs' records (so an export
    /// carries them too), in one transaction.
    public func replaceMeta(of taskId: String, with meta: MetaFeatures) throws(HistoryError) {
        do {
            try queue.write { db in
                try db.execute(
                    sql: "UPDATE task SET meta = ? WHERE id = ?", arguments: [try Self.stored(meta), taskId])
                let runs = try Row.fetchAll(
                    db, sql: "SELECT id, record FROM run WHERE task_id = ?", arguments: [taskId])
                for row in runs {
                    var run = try JSONDecoder().decode(HistoryRun.self, from: Data((row["record"] as String).utf8))
                    run.meta = meta
                    try db.execute(
                        sql: "UPDATE run SET record = ? WHERE id = ?",
                        arguments: [try Self.stored(run), row["id"] as String])
                }
            }
        } catch {
            throw HistoryError("cannot update the meta-features of task \(taskId): \(error)", file: path)
        }
    }

    /// Runs raw `sql` on the SQLite file at `path` without the history's checks (tests and repairs).
    public static func execute(_ sql: String, at path: String) throws {
        try DatabaseQueue(path: path).write { try $0.execute(sql: sql) }
    }

    /// Tasks recorded, by input kind (what the learned strategy will need: at least 3 of a kind).
    public func taskCount(kind: String) throws(HistoryError) -> Int {
        do {
            return try queue.read { db in
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM task WHERE kind = ?", arguments: [kind]) ?? 0
            }
        } catch {
            throw HistoryError("cannot read the history: \(error)", file: path)
        }
    }
}

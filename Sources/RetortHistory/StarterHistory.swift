import Foundation
import GRDB
import RetortData

/// The starter history: Retort's own searches on public tasks (history/starter.json.gz, made by
/// `make starter-history`), imported once into the default history so a new team's first search already has past
/// tasks to learn from.
public enum StarterHistory {
    /// The `meta` key that records the import (its value: the export's file name and run count), so runs forgotten
    /// later do not come back.
    static let metaKey = "starter_imported"

    /// The starter export to use: `RETORT_STARTER_HISTORY` when set (empty or `none`: no starter), else
    /// `starter.json.gz` beside the executable or in its `../share/retort/`, else the checkout's
    /// history/starter.json.gz. Nil when none is there.
    public static func locate(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        executable: URL? = Bundle.main.executableURL
    ) -> String? {
        if let given = environment["RETORT_STARTER_HISTORY"] {
            return given.isEmpty || given == "none" ? nil : given
        }
        var candidates: [URL] = []
        if let folder = executable?.resolvingSymlinksInPath().deletingLastPathComponent() {
            candidates.append(folder.appendingPathComponent("starter.json.gz"))
            candidates.append(folder.appendingPathComponent("../share/retort/starter.json.gz").standardizedFileURL)
        }
        // Sources/RetortHistory/StarterHistory.swift → the checkout's history/.
        candidates.append(
            URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().appendingPathComponent("history/starter.json.gz"))
        return candidates.first { FileManager.default.fileExists(atPath: $0.path) }?.path
    }

    /// Imports the export at `path` into `store` unless a starter was imported before; returns the number of new
    /// runs, or nil when it had been imported already.
    public static func importOnce(_ path: String, into store: HistoryStore) throws -> Int? {
        if try store.metaValue(metaKey) != nil { return nil }
        let export = try HistoryExport.read(path)
        let added = try store.importing(export)
        try store.setMetaValue(metaKey, "\(URL(fileURLWithPath: path).lastPathComponent), \(export.runs.count) runs")
        return added
    }
}

extension HistoryStore {
    /// A value of the history's `meta` table, or nil.
    public func metaValue(_ key: String) throws(HistoryError) -> String? {
        do {
            return try queue.read { db in
                try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = ?", arguments: [key])
            }
        } catch {
            throw HistoryError("cannot read the history: \(error)", file: path)
        }
    }

    /// Sets a value of the history's `meta` table.
    public func setMetaValue(_ key: String, _ value: String) throws(HistoryError) {
        do {
            try queue.write { db in
                try db.execute(
                    sql: "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", arguments: [key, value])
            }
        } catch {
            throw HistoryError("cannot write the history: \(error)", file: path)
        }
    }
}

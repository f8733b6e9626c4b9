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

    /// The `meta` key that records which meta-features the starter's task records carry (a history that imported the
    /// starter before ``MetaFeatures/goldProbeHeadroom`` existed gets it from the shipped export once).
    static let metaFeaturesKey = "starter_meta_features"
    /// Its value today.
    static let metaFeaturesVersion = "gold_probe_headroom"

    /// Imports the export at `path` into `store` unless a starter was imported before; returns the number of new
    /// runs, or nil when it had been imported already. A starter imported by an older Retort has its tasks' missing
    /// meta-features filled in from the export, once (``fillInMetaFeatures(from:in:)``).
    public static func importOnce(_ path: String, into store: HistoryStore) throws -> Int? {
        if try store.metaValue(metaKey) != nil {
            // An unreadable export here leaves the records as they are (`history show` prints "—" for what they lack)
            // and is tried again next time; the import itself succeeded long ago.
            if try store.metaValue(metaFeaturesKey) != metaFeaturesVersion, let export = try? HistoryExport.read(path) {
                try fillInMetaFeatures(from: export, in: store)
                try store.setMetaValue(metaFeaturesKey, metaFeaturesVersion)
            }
            return nil
        }
        let export = try HistoryExport.read(path)
        let added = try store.importing(export)
        try store.setMetaValue(metaKey, "\(URL(fileURLWithPath: path).lastPathComponent), \(export.runs.count) runs")
        try store.setMetaValue(metaFeaturesKey, metaFeaturesVersion)
        return added
    }

    /// Gives each task of `export` recorded in `store` the meta-features its record lacks and the export has
    /// (`MetaFeatures.filledIn(from:)` with its record); values the store holds stay. Returns how many tasks changed.
    @discardableResult
    public static func fillInMetaFeatures(from export: HistoryExport, in store: HistoryStore) throws -> Int {
        var stored = try store.taskMetas()
        var changed = 0
        for run in export.runs {
            guard let meta = stored[run.taskId] else { continue }
            let filled = meta.filledIn(from: run.meta)
            guard filled != meta else { continue }
            try store.replaceMeta(of: run.taskId, with: filled)
            stored[run.taskId] = filled
            changed += 1
        }
        return changed
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

import ArgumentParser
import Foundation
import RetortData
import RetortHistory
import RetortSearch

/// Where the history lives: `--history PATH`, else `RETORT_HISTORY`, else results/history.sqlite; `--no-history` to
/// record nothing.
struct HistoryOptions: ParsableArguments {
    @Option(
        name: .customLong("history"),
        help:
            "The history store (SQLite) to record into and learn from (default: $RETORT_HISTORY, else results/history.sqlite)."
    )
    var path: String?
    @Flag(name: .customLong("no-history"), help: "Record nothing in the history.")
    var disabled = false

    /// The history file this invocation uses.
    var resolvedPath: String {
        path ?? ProcessInfo.processInfo.environment["RETORT_HISTORY"].flatMap { $0.isEmpty ? nil : $0 }
            ?? "results/history.sqlite"
    }

    /// Whether this is the default history (neither `--history` nor `RETORT_HISTORY`): the one the starter history
    /// goes into.
    var isDefault: Bool {
        path == nil && (ProcessInfo.processInfo.environment["RETORT_HISTORY"] ?? "").isEmpty
    }

    /// The starter history this invocation imports (history/README.md): the default history's only, and none with
    /// `RETORT_STARTER_HISTORY=none`.
    private var starter: String? { isDefault ? StarterHistory.locate() : nil }

    /// Opens the history file, importing the starter history into the default history once (announced on stderr).
    private func opened(starter: String?) throws -> HistoryStore {
        let store = try HistoryStore(path: resolvedPath)
        if let starter, let added = try StarterHistory.importOnce(starter, into: store) {
            FileHandle.standardError.write(
                Data(
                    "[history] imported the starter history (\(added) runs of Retort's own searches on public tasks, \(starter)) into \(resolvedPath)\n"
                        .utf8))
        }
        return store
    }

    /// The history file, after the starter history went into the default history (see ``existingStore()``); other
    /// histories are not opened here.
    func prepared() throws -> String {
        if let starter { _ = try opened(starter: starter) }
        return resolvedPath
    }

    /// The history store, opened once: the default history gets the starter history first (and is created for it);
    /// nil when there is no file yet and nothing to put in one.
    func existingStore() throws -> HistoryStore? {
        let starter = self.starter
        guard starter != nil || FileManager.default.fileExists(atPath: resolvedPath) else { return nil }
        return try opened(starter: starter)
    }

    /// The history store this invocation reads, created when missing (see ``existingStore()``).
    func store() throws -> HistoryStore { try existingStore() ?? HistoryStore(path: resolvedPath) }

    /// The history file a search records into, or nil with `--no-history`. An existing file is opened now (the same
    /// open that imports the starter history), so a corrupt or foreign one stops the search before it starts; a missing
    /// one is created only when a run finishes (the default history is created at once when the starter history goes
    /// into it).
    func open() throws -> String? {
        if disabled { return nil }
        _ = try existingStore()
        return resolvedPath
    }
}

struct History: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "What past searches taught Retort: list, show, forget, export, import and refresh runs.",
        subcommands: [List.self, Show.self, Forget.self, Export.self, Import.self, Refresh.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every recorded run, oldest first.")
        @OptionGroup var history: HistoryOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await ErrorReporting.run {
                let store = try history.store()
                let runs = try store.list()
                if output.json {
                    let rows = runs.map { run in
                        var row = [
                            "id": run.id, "task": run.task, "task_id": run.taskId, "kind": run.kind,
                            "created_at": run.createdAt, "strategy": run.strategy,
                            "recommendation": run.recommendation, "trials": "\(run.trials)",
                        ]
                        row["dataset"] = run.dataset
                        return row
                    }
                    let data = try JSONSerialization.data(withJSONObject: rows, options: [.prettyPrinted, .sortedKeys])
                    say(String(decoding: data, as: UTF8.self))
                    return
                }
                var lines = [
                    "| run | task | dataset | kind | created | strategy | recommendation | trial records |",
                    "|---|---|---|---|---|---|---|---|",
                ]
                for run in runs {
                    lines.append(
                        "| \(run.id) | \(run.task) (\(run.taskId.prefix(8))) | \(run.dataset ?? "—") | \(run.kind) | \(run.createdAt) | \(run.strategy) | \(run.recommendation) | \(run.trials) |"
                    )
                }
                say(output.styled(lines.joined(separator: "\n")))
                say("\(runs.count) run(s) in \(history.resolvedPath)")
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A task's meta-features and its runs (by run id JOB/RUN-ID, task name or task fingerprint).")
        @Argument(help: "A run id (JOB/RUN-ID), a task name or a task fingerprint.")
        var key: String
        @OptionGroup var history: HistoryOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await ErrorReporting.run {
                let store = try history.store()
                let runs = try store.runs(matching: key)
                guard let first = runs.first else {
                    throw DataError(
                        .missingInput, "no run, task name or fingerprint \"\(key)\" in the history",
                        file: history.resolvedPath)
                }
                if output.json {
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                    say(String(decoding: try encoder.encode(runs), as: UTF8.self))
                    return
                }
                let meta = first.meta
                if let structured = meta.structured {
                    say(
                        "task \(first.report.task) (\(first.taskId)), \(meta.kind), \(meta.rows) train rows, \(structured.keys) keys, \(meta.classes) distinct teacher answers"
                    )
                    say(
                        String(
                            format:
                                "meta-features: vocabulary %d, mean length %.1f, answer entropy %.3f, copied values %.3f, closed keys %.3f (value sets mean %.1f, max %d), optional keys %.3f, fields per answer %.2f, teacher invalid %.3f, teacher-vs-gold %@, retrieval probe %.3f (field F1 %.3f), slope %+.3f per doubling",
                            meta.dimension, meta.meanTextLength, meta.classEntropy, structured.copiedValueShare,
                            structured.closedKeyShare, structured.meanValueSetSize, structured.maxValueSetSize,
                            structured.optionalKeyShare, structured.meanAnswerFields, structured.teacherInvalidShare,
                            meta.teacherGoldAccuracy.map { String(format: "%.3f", $0) } ?? "—",
                            meta.probeCentroidAccuracy, structured.probeFieldF1, meta.learningCurveSlope))
                } else {
                    say(
                        "task \(first.report.task) (\(first.taskId)), \(meta.kind), \(meta.rows) train rows, \(meta.classes) classes"
                    )
                    say(
                        String(
                            format:
                                "meta-features: dimension %d, mean length %.1f, class entropy %.3f, teacher max-prob %.3f, teacher entropy %.3f, teacher-vs-gold %@, centroid probe %.3f, linear probe %.3f, slope %+.3f per doubling, gold-probe headroom %@",
                            meta.dimension, meta.meanTextLength, meta.classEntropy, meta.teacherMeanMaxProbability,
                            meta.teacherMeanEntropy, meta.teacherGoldAccuracy.map { String(format: "%.3f", $0) } ?? "—",
                            meta.probeCentroidAccuracy, meta.probeLinearAccuracy, meta.learningCurveSlope,
                            meta.goldProbeHeadroom.map { String(format: "%+.3f", $0) } ?? "—"))
                }
                for run in runs {
                    let report = run.report
                    say(
                        "\(run.id): \(report.search.strategy), \(report.candidates.count) candidates, \(run.rungs.count) rung records, recommendation \(report.recommendation.kind)\(report.recommendation.candidate.map { " \($0)" } ?? "")"
                    )
                }
            }
        }
    }

    struct Forget: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Forget runs (by run id JOB/RUN-ID, task name, task fingerprint or source dataset).")
        @Argument(help: "A run id (JOB/RUN-ID), a task name, a task fingerprint or a source dataset (keel:iris).")
        var key: String
        @OptionGroup var history: HistoryOptions

        func run() async throws {
            try await ErrorReporting.run {
                let count = try history.store().forget(key)
                guard count > 0 else {
                    throw DataError(
                        .missingInput, "no run, task name or fingerprint \"\(key)\" in the history",
                        file: history.resolvedPath)
                }
                say("forgot \(count) run(s)")
            }
        }
    }

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Every run as one JSON document (for `retort history import` elsewhere).")
        @Option(help: "Write to this file instead of stdout (gzip-compressed when it ends in .gz).")
        var out: String?
        @Flag(
            help:
                "Leave out what learning never reads (test figures, cascade curves, economics, copies of trials in rung records)."
        )
        var compact = false
        @OptionGroup var history: HistoryOptions

        func run() async throws {
            try await ErrorReporting.run {
                var export = try history.store().exportAll()
                if compact { export = export.compacted() }
                if let out {
                    try export.write(to: out)
                    say("exported \(export.runs.count) run(s) to \(out)")
                } else {
                    say(String(decoding: try export.encoded(), as: UTF8.self))
                }
            }
        }
    }

    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Add the runs of an export (runs already present are left alone: importing twice changes nothing).")
        @Argument(help: "A file written by `retort history export` (plain or .gz).")
        var file: String
        @OptionGroup var history: HistoryOptions

        func run() async throws {
            try await ErrorReporting.run {
                let export = try HistoryExport.read(file)
                let added = try history.store().importing(export)
                say("imported \(added) new run(s) of \(export.runs.count) into \(history.resolvedPath)")
            }
        }
    }

    struct Refresh: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Fill in the meta-features that tasks recorded by an older Retort lack, from their task folders (matched by fingerprint)."
        )
        @Argument(help: "Task folders (with task.json), or folders holding task folders.")
        var folders: [String]
        @OptionGroup var history: HistoryOptions

        func run() async throws {
            try await ErrorReporting.run {
                let store = try history.store()
                let metas = try store.taskMetas()
                var (seen, filled, absent, structured) = (0, 0, 0, 0)
                for folder in try Self.taskFolders(folders) {
                    let job = Job(task: folder)
                    if TaskFile.declaresStructured(job) {
                        structured += 1
                        continue
                    }
                    let task = try TaskData.load(job)
                    let id = SearchFingerprint.task(task)
                    guard let meta = metas[id] else {
                        absent += 1
                        continue
                    }
                    seen += 1
                    let refreshed = try meta.filledIn(from: task)
                    if refreshed != meta {
                        try store.replaceMeta(of: id, with: refreshed)
                        filled += 1
                    }
                }
                say(
                    "refreshed \(filled) of \(seen) recorded task(s) in \(history.resolvedPath); \(absent) folder(s) hold tasks the history does not"
                        + (structured > 0
                            ? "; \(structured) structured task(s) skipped (nothing to fill in: the gold-probe headroom is for label tasks)"
                            : ""))
            }
        }

        /// Each folder that holds task.json, else its subfolders that do (sorted); a folder with neither is an error.
        static func taskFolders(_ paths: [String]) throws(DataError) -> [URL] {
            let manager = FileManager.default
            var found: [URL] = []
            for path in paths {
                let url = URL(fileURLWithPath: path)
                if manager.fileExists(atPath: url.appendingPathComponent("task.json").path) {
                    found.append(url)
                    continue
                }
                let children = ((try? manager.contentsOfDirectory(atPath: path)) ?? []).sorted().map {
                    url.appendingPathComponent($0)
                }.filter { manager.fileExists(atPath: $0.appendingPathComponent("task.json").path) }
                guard !children.isEmpty else {
                    throw DataError(
                        .missingInput, "neither a task folder (no task.json) nor a folder of task folders", file: path)
                }
                found += children
            }
            return found
        }
    }
}

import ArgumentParser
import Foundation
import RetortData
import RetortHistory

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

    /// The history file a search records into, or nil with `--no-history`. An existing file is opened now, so a
    /// corrupt or foreign one stops the search before it starts; a missing one is created only when a run finishes.
    func open() throws -> String? {
        if disabled { return nil }
        if FileManager.default.fileExists(atPath: resolvedPath) { _ = try HistoryStore(path: resolvedPath) }
        return resolvedPath
    }
}

struct History: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "What past searches taught Retort: list, show, forget, export and import runs.",
        subcommands: [List.self, Show.self, Forget.self, Export.self, Import.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every recorded run, oldest first.")
        @OptionGroup var history: HistoryOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await ErrorReporting.run {
                let store = try HistoryStore(path: history.resolvedPath)
                let runs = try store.list()
                if output.json {
                    let rows = runs.map {
                        [
                            "id": $0.id, "task": $0.task, "task_id": $0.taskId, "kind": $0.kind,
                            "created_at": $0.createdAt, "strategy": $0.strategy,
                            "recommendation": $0.recommendation, "trials": "\($0.trials)",
                        ]
                    }
                    let data = try JSONSerialization.data(withJSONObject: rows, options: [.prettyPrinted, .sortedKeys])
                    say(String(decoding: data, as: UTF8.self))
                    return
                }
                var lines = [
                    "| run | task | kind | created | strategy | recommendation | trial records |",
                    "|---|---|---|---|---|---|---|",
                ]
                for run in runs {
                    lines.append(
                        "| \(run.id) | \(run.task) (\(run.taskId.prefix(8))) | \(run.kind) | \(run.createdAt) | \(run.strategy) | \(run.recommendation) | \(run.trials) |"
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
                let store = try HistoryStore(path: history.resolvedPath)
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
                                "meta-features: dimension %d, mean length %.1f, class entropy %.3f, teacher max-prob %.3f, teacher entropy %.3f, teacher-vs-gold %@, centroid probe %.3f, linear probe %.3f, slope %+.3f per doubling",
                            meta.dimension, meta.meanTextLength, meta.classEntropy, meta.teacherMeanMaxProbability,
                            meta.teacherMeanEntropy, meta.teacherGoldAccuracy.map { String(format: "%.3f", $0) } ?? "—",
                            meta.probeCentroidAccuracy, meta.probeLinearAccuracy, meta.learningCurveSlope))
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
            abstract: "Forget runs (by run id JOB/RUN-ID, task name or task fingerprint).")
        @Argument(help: "A run id (JOB/RUN-ID), a task name or a task fingerprint.")
        var key: String
        @OptionGroup var history: HistoryOptions

        func run() async throws {
            try await ErrorReporting.run {
                let count = try HistoryStore(path: history.resolvedPath).forget(key)
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
        @Option(help: "Write to this file instead of stdout.")
        var out: String?
        @OptionGroup var history: HistoryOptions

        func run() async throws {
            try await ErrorReporting.run {
                let export = try HistoryStore(path: history.resolvedPath).exportAll()
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                let data = try encoder.encode(export)
                if let out {
                    do { try data.write(to: URL(fileURLWithPath: out), options: .atomic) } catch {
                        throw DataError(.cannotCreateOutput, "cannot write the export", file: out)
                    }
                    say("exported \(export.runs.count) run(s) to \(out)")
                } else {
                    say(String(decoding: data, as: UTF8.self))
                }
            }
        }
    }

    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Add the runs of an export (runs already present are left alone: importing twice changes nothing).")
        @Argument(help: "A file written by `retort history export`.")
        var file: String
        @OptionGroup var history: HistoryOptions

        func run() async throws {
            try await ErrorReporting.run {
                guard let data = FileManager.default.contents(atPath: file) else {
                    throw DataError(.missingInput, "cannot read the export", file: file)
                }
                let export: HistoryExport
                do { export = try JSONDecoder().decode(HistoryExport.self, from: data) } catch {
                    throw DataError(
                        .badData, "not a Retort history export: \(DecodingProblem.describe(any: error))", file: file,
                        line: DecodingProblem.line(of: error, in: data))
                }
                let added = try HistoryStore(path: history.resolvedPath).importing(export)
                say("imported \(added) new run(s) of \(export.runs.count) into \(history.resolvedPath)")
            }
        }
    }
}

import Foundation
import RetortData
import RetortSearch

/// A run folder `OUT/RUN-ID/`, built as `OUT/RUN-ID.partial/` and renamed only when every file is written, so a
/// folder without `.partial` is always complete. `OUT/latest` then points at it.
public struct RunDirectory: Sendable {
    /// The results folder of the job.
    public let root: URL
    /// Run id.
    public let runId: String
    /// The folder being written.
    public let partial: URL
    /// The folder once finished.
    public let final: URL

    /// Creates `root/RUN-ID.partial/`, checking that it can be written. `runId` is a UTC timestamp (made unique).
    public static func create(root: URL, date: Date = Date()) throws(DataError) -> RunDirectory {
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyyMMdd-HHmmss"
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.locale = Locale(identifier: "en_US_POSIX")
        let base = formatter.string(from: date)
        let manager = FileManager.default
        do { try manager.createDirectory(at: root, withIntermediateDirectories: true) } catch {
            throw DataError(
                .cannotCreateOutput, "cannot create the results folder (\(reason(error))); choose another with --out",
                file: root.relativePath)
        }
        var runId = base
        var suffix = 1
        while manager.fileExists(atPath: root.appendingPathComponent(runId).path)
            || manager.fileExists(atPath: root.appendingPathComponent(runId + ".partial").path)
        {
            suffix += 1
            runId = "\(base)-\(suffix)"
        }
        let partial = root.appendingPathComponent(runId + ".partial")
        do {
            try manager.createDirectory(at: partial, withIntermediateDirectories: false)
            let probe = partial.appendingPathComponent(".write-test")
            try Data().write(to: probe)
            try manager.removeItem(at: probe)
        } catch {
            throw DataError(
                .cannotCreateOutput, "cannot write in the results folder (\(reason(error))); choose another with --out",
                file: root.relativePath)
        }
        return RunDirectory(root: root, runId: runId, partial: partial, final: root.appendingPathComponent(runId))
    }

    /// Reopens the folder of an interrupted run (`RUN-ID.partial`) to continue it.
    public static func resuming(_ folder: URL) throws(DataError) -> RunDirectory {
        let path = folder.relativePath
        let name = folder.standardizedFileURL.lastPathComponent
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder.path, isDirectory: &isDirectory), isDirectory.boolValue
        else {
            throw DataError(
                .missingInput, "no such run folder; give the RUN-ID.partial folder of an interrupted run", file: path)
        }
        guard name.hasSuffix(".partial") else {
            throw DataError(
                .usage, "this run finished already (its folder has no .partial suffix); start a new search instead",
                file: path)
        }
        let root = folder.standardizedFileURL.deletingLastPathComponent()
        let runId = String(name.dropLast(".partial".count))
        return RunDirectory(
            root: root, runId: runId, partial: folder.standardizedFileURL, final: root.appendingPathComponent(runId))
    }

    /// The checkpoint folder inside the run (deleted when the run finishes).
    public var checkpoints: URL { partial.appendingPathComponent("checkpoints") }

    /// Creates `checkpoints/` and opens (or, resuming, continues) `journal.jsonl` in the partial folder.
    public func openJournal() throws(DataError) -> Journal {
        do {
            try FileManager.default.createDirectory(at: checkpoints, withIntermediateDirectories: true)
            return try Journal(url: partial.appendingPathComponent("journal.jsonl"))
        } catch {
            throw DataError(
                .cannotCreateOutput, "cannot create journal.jsonl and checkpoints/", file: partial.relativePath)
        }
    }

    /// Writes report.json, frontier.md, candidates.csv, cascade.csv and the recommended model, then renames the folder into place
    /// and points `latest` at it.
    public func finish(
        report: RunReport, outcome: SearchOutcome, exportModel: ((URL) throws -> Void)? = nil
    ) throws(DataError) -> URL {
        // The last stage, for a live view of the journal (`retort ui`); --resume ignores it.
        if let journal = FileHandle(forWritingAtPath: partial.appendingPathComponent("journal.jsonl").path) {
            let line = String(
                format: "{\"phase\":\"write the report and export the model\",\"time\":%.3f,\"type\":\"phase\"}\n",
                Date().timeIntervalSince1970)
            journal.seekToEndOfFile()
            journal.write(Data(line.utf8))
            try? journal.close()
        }
        do {
            try report.encoded().write(to: partial.appendingPathComponent("report.json"), options: .atomic)
            try Data(FrontierTable.markdown(report).utf8).write(
                to: partial.appendingPathComponent("frontier.md"), options: .atomic)
            try Data(CandidatesCSV.render(report).utf8).write(
                to: partial.appendingPathComponent("candidates.csv"), options: .atomic)
            if report.cascades != nil {
                try Data(CascadeCSV.render(report).utf8).write(
                    to: partial.appendingPathComponent("cascade.csv"), options: .atomic)
            }
            try Data(HTMLReport.render(report).utf8).write(
                to: partial.appendingPathComponent("report.html"), options: .atomic)
            if let bundle = outcome.recommendedBundle {
                try bundle.write(to: partial.appendingPathComponent("model"))
            } else if let exportModel {
                try exportModel(partial.appendingPathComponent("model"))
            }
            if FileManager.default.fileExists(atPath: checkpoints.path) {
                try FileManager.default.removeItem(at: checkpoints)
            }
            try FileManager.default.moveItem(at: partial, to: final)
        } catch {
            throw DataError(
                .io,
                "writing the run failed (\(Self.reason(error))); the partial run stays in \(partial.lastPathComponent)",
                file: root.relativePath)
        }
        let latest = root.appendingPathComponent("latest")
        try? FileManager.default.removeItem(at: latest)
        try? FileManager.default.createSymbolicLink(atPath: latest.path, withDestinationPath: runId)
        return final
    }

    static func reason(_ error: any Error) -> String {
        FileProblem.reason(error)
    }
}

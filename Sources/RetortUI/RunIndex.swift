import Foundation
import RetortReports
import RetortSearch

/// A run folder under the results folder: finished (`JOB/RUN-ID` with report.json) or in progress / interrupted
/// (`JOB/RUN-ID.partial` with a journal).
public struct RunEntry: Sendable {
    /// The folder, relative to the results folder (`JOB/RUN-ID` or `JOB/RUN-ID.partial`); the UI's run key.
    public var path: String
    /// The folder.
    public var folder: URL
    /// The job (the parent folder's name).
    public var job: String
    /// The run id (a UTC timestamp).
    public var runId: String
    /// Whether the run finished (report.json written and the folder renamed into place).
    public var finished: Bool
    /// When the journal was last written.
    public var modified: Date

    /// When the run started, from its id (`yyyyMMdd-HHmmss`, UTC).
    public var started: Date? { RunIndex.date(fromRunId: runId) }

    /// The journal file.
    public var journal: URL { folder.appendingPathComponent("journal.jsonl") }

    /// The finished run's report.
    public func report() throws -> RunReport { try RunReport.load(runDirectory: folder) }
}

/// Finds run folders under a results folder.
public enum RunIndex {
    /// Every run folder up to `depth` levels below `root` (symlinks such as `latest` and checkpoints skipped), newest
    /// first.
    public static func scan(root: URL, depth: Int = 4) -> [RunEntry] {
        var entries: [RunEntry] = []
        let manager = FileManager.default
        func visit(_ folder: URL, level: Int) {
            guard level <= depth,
                let names = try? manager.contentsOfDirectory(atPath: folder.path)
            else { return }
            for name in names where !name.hasPrefix(".") && name != "latest" && name != "checkpoints" && name != "model"
            {
                let child = folder.appendingPathComponent(name)
                guard let values = try? child.resourceValues(forKeys: [.isDirectoryKey, .isSymbolicLinkKey]),
                    values.isDirectory == true, values.isSymbolicLink != true
                else { continue }
                let journal = child.appendingPathComponent("journal.jsonl")
                if manager.fileExists(atPath: journal.path) {
                    let partial = name.hasSuffix(".partial")
                    let finished =
                        !partial && manager.fileExists(atPath: child.appendingPathComponent("report.json").path)
                    let modified =
                        (try? journal.resourceValues(forKeys: [.contentModificationDateKey]))?
                        .contentModificationDate ?? .distantPast
                    let relative = String(child.path.dropFirst(root.path.count).drop { $0 == "/" })
                    entries.append(
                        RunEntry(
                            path: relative, folder: child, job: folder.lastPathComponent,
                            runId: finalPath(of: name), finished: finished,
                            modified: modified))
                } else {
                    visit(child, level: level + 1)
                }
            }
        }
        visit(root.standardizedFileURL, level: 0)
        return entries.sorted { ($0.runId, $0.path) > ($1.runId, $1.path) }
    }

    /// The run at `path` under `root`, refusing paths that leave it.
    public static func entry(root: URL, path: String) -> RunEntry? {
        guard !path.isEmpty, !path.split(separator: "/").contains(where: { $0 == ".." || $0 == "." }) else {
            return nil
        }
        let entries = scan(root: root)
        // A run that finished since the link was made: JOB/RUN-ID.partial became JOB/RUN-ID.
        return entries.first { $0.path == path } ?? entries.first { $0.path == finalPath(of: path) }
    }

    /// Where a run folder ends up when it finishes: `JOB/RUN-ID.partial` → `JOB/RUN-ID` (a finished one stays).
    public static func finalPath(of path: String) -> String {
        path.hasSuffix(".partial") ? String(path.dropLast(".partial".count)) : path
    }

    static func date(fromRunId runId: String) -> Date? {
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyyMMdd-HHmmss"
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.locale = Locale(identifier: "en_US_POSIX")
        return formatter.date(from: String(runId.prefix(15)))
    }
}

import Foundation
import RetortData
import RetortTestSupport
import Testing

/// A temporary working folder holding a task folder (and job files) that the tests write themselves; removed when
/// the last reference goes.
final class Workspace: Sendable {
    /// The working directory of every command.
    let folder: URL

    /// A workspace whose task folder `taskName` holds the given rows.
    init(
        taskName: String, kind: TaskKind, train: [[String: Any]], validation: [[String: Any]], test: [[String: Any]]
    ) throws {
        let task = try SyntheticTasks.writeTask(
            name: taskName, kind: kind, train: train, validation: validation, test: test)
        folder = task.deletingLastPathComponent()
    }

    /// An empty workspace.
    init() {
        folder = SyntheticTasks.temporaryFolder()
    }

    /// A workspace in `folder`, which the caller made (and which goes with the workspace).
    init(folder: URL) {
        self.folder = folder
    }

    deinit {
        try? FileManager.default.removeItem(at: folder)
    }

    /// A small learnable numeric task (three Gaussian blobs) named `name`.
    static func numeric(name: String = "blobs", learnable: Bool = true) throws -> Workspace {
        try Workspace(
            taskName: name, kind: .numeric,
            train: SyntheticTasks.numericRows(count: 300, learnable: learnable, seed: 11, idPrefix: "tr"),
            validation: SyntheticTasks.numericRows(count: 150, learnable: learnable, seed: 12, idPrefix: "va"),
            test: SyntheticTasks.numericRows(count: 150, learnable: learnable, seed: 13, idPrefix: "te"))
    }

    /// A small keyword text task named `intents` whose teacher is gold (a linear student learns it).
    static func intents() throws -> Workspace {
        try Workspace(
            taskName: "intents", kind: .text, train: SyntheticTasks.textRows(count: 300, seed: 21, idPrefix: "tr"),
            validation: SyntheticTasks.textRows(count: 120, seed: 22, idPrefix: "va"),
            test: SyntheticTasks.textRows(count: 120, seed: 23, idPrefix: "te"))
    }

    /// Removes this workspace when the test process exits (for workspaces shared by several tests).
    func removeAtExit() {
        workspacesToRemoveAtExit.add(folder)
    }

    func url(_ relativePath: String) -> URL { folder.appendingPathComponent(relativePath) }

    func write(_ text: String, to relativePath: String) throws {
        try Data(text.utf8).write(to: url(relativePath))
    }

    func exists(_ relativePath: String) -> Bool { FileManager.default.fileExists(atPath: url(relativePath).path) }

    func text(_ relativePath: String) throws -> String {
        String(decoding: try Data(contentsOf: url(relativePath)), as: UTF8.self)
    }

    /// Runs `retort arguments` here.
    func retort(_ arguments: String..., timeout: Double = 120) async throws -> CommandResult {
        try await RetortBinary.run(arguments, in: folder, timeout: timeout)
    }

    /// Runs `retort arguments` here with `environment` added to the test process's.
    func retort(environment: [String: String], _ arguments: String..., timeout: Double = 120) async throws
        -> CommandResult
    {
        try await RetortBinary.run(arguments, in: folder, timeout: timeout, environment: environment)
    }

    /// The single finished run folder under `results/JOB/` (besides `latest`).
    func runFolder(job: String) throws -> URL {
        let root = url("results/\(job)")
        let entries = try FileManager.default.contentsOfDirectory(atPath: root.path).filter { $0 != "latest" }
        #expect(entries.count == 1, "one run folder expected in \(root.path): \(entries)")
        let name = try #require(entries.first)
        return root.appendingPathComponent(name)
    }

    /// The folder a crash leaves at `results/cut/20260101-000000.partial`: an empty `checkpoints/` and a journal of
    /// `lines` followed by half a record (the one in flight).
    func interruptedRun(journal lines: some Sequence<Substring>) throws -> URL {
        let partial = url("results/cut/20260101-000000.partial")
        try FileManager.default.createDirectory(
            at: partial.appendingPathComponent("checkpoints"), withIntermediateDirectories: true)
        try Data((lines.joined(separator: "\n") + "\n" + #"{"type":"rung","cand"#).utf8).write(
            to: partial.appendingPathComponent("journal.jsonl"))
        return partial
    }
}

/// Folders removed by an `atexit` handler. `@unchecked Sendable`: `folders` is only touched while holding `lock`.
private final class ExitCleanup: @unchecked Sendable {
    private let lock = NSLock()
    private var folders: [URL] = []
    private var registered = false

    func add(_ folder: URL) {
        let first = lock.withLock {
            folders.append(folder)
            defer { registered = true }
            return !registered
        }
        if first { atexit { workspacesToRemoveAtExit.removeAll() } }
    }

    func removeAll() {
        for folder in lock.withLock({ folders }) { try? FileManager.default.removeItem(at: folder) }
    }
}

private let workspacesToRemoveAtExit = ExitCleanup()

/// report.json of a run folder, as plain JSON.
struct Report {
    let json: [String: Any]

    init(runFolder: URL) throws {
        let data = try Data(contentsOf: runFolder.appendingPathComponent("report.json"))
        json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    var recommendation: [String: Any] { json["recommendation"] as? [String: Any] ?? [:] }
    var kind: String? { recommendation["kind"] as? String }
    var candidate: String? { recommendation["candidate"] as? String }
    var reason: String { recommendation["reason"] as? String ?? "" }
    var candidates: [[String: Any]] { json["candidates"] as? [[String: Any]] ?? [] }

    /// `recommendation.test_metrics.NAME.value`.
    func recommendationTestValue(_ metric: String) -> Double? {
        let metrics = recommendation["test_metrics"] as? [String: Any]
        return (metrics?[metric] as? [String: Any])?["value"] as? Double
    }
}

/// The job files of the end-to-end tests: tiny inline catalogs so a debug build searches in seconds.
enum Jobs {
    static func numeric(name: String, task: String, maxDrop: Double = 0.05) -> String {
        """
        name: \(name)
        data:
          task: \(task)
        candidates:
          numeric:
            - {family: linear, precision: [fp32, int8]}
            - {family: mlp, hidden: [[8]], precision: [fp32], epochs: 10}
        objective: {max_drop: \(maxDrop)}
        search: {budget_seconds: 120, seed: 3}
        """
    }

    static func linearOnly(name: String, task: String) -> String {
        """
        name: \(name)
        data: {task: \(task)}
        candidates:
          numeric: [{family: linear, precision: [fp32]}]
        search: {budget_seconds: 120, seed: 3}
        """
    }

    static func text(name: String, task: String) -> String {
        """
        name: \(name)
        data:
          task: \(task)
        candidates:
          text: [{family: linear, buckets_log2: [10], precision: [fp32]}]
        objective: {max_drop: 0.05}
        search: {budget_seconds: 120, seed: 3}
        """
    }
}

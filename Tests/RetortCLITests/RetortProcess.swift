import Foundation
import Testing

/// What one run of the `retort` binary did.
struct CommandResult: Sendable, CustomStringConvertible {
    /// The exit status, or the signal number when `crashed`.
    let exitCode: Int32
    /// Whether the process died of a signal (a trap) instead of exiting.
    let crashed: Bool
    let stdout: String
    let stderr: String

    /// Non-empty stderr lines.
    var stderrLines: [String] { stderr.split(separator: "\n").map(String.init) }

    var description: String {
        "exit \(exitCode)\(crashed ? " (signal)" : "")\n--- stdout ---\n\(stdout)\n--- stderr ---\n\(stderr)"
    }
}

/// The built `retort` executable, run as a user runs it.
enum RetortBinary {
    struct NotFound: Error, CustomStringConvertible {
        let searched: [String]
        var description: String {
            "the retort binary was not found; build it first (swift build --build-tests). Looked in:\n"
                + searched.joined(separator: "\n")
        }
    }

    /// The executable named `retort` beside the test bundle (on Linux: the build products folder).
    static let location: Result<URL, NotFound> = locate()

    static func url() throws -> URL { try location.get() }

    static func locate() -> Result<URL, NotFound> {
        let manager = FileManager.default
        var starts: [URL] = []
        if let override = ProcessInfo.processInfo.environment["RETORT_BINARY"] {
            starts.append(URL(fileURLWithPath: override).deletingLastPathComponent())
        }
        starts.append(URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent())
        starts.append(URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent())
        starts.append(Bundle.main.bundleURL)
        starts.append(Bundle.main.executableURL?.deletingLastPathComponent() ?? Bundle.main.bundleURL)
        var searched: [String] = []
        for start in starts {
            // Walk up a few levels: on macOS the test binary sits in `X.xctest/Contents/MacOS/`.
            var folder = start.standardizedFileURL
            for _ in 0..<4 {
                let candidate = folder.appendingPathComponent("retort")
                searched.append(candidate.path)
                var isDirectory: ObjCBool = false
                if manager.fileExists(atPath: candidate.path, isDirectory: &isDirectory), !isDirectory.boolValue,
                    manager.isExecutableFile(atPath: candidate.path)
                {
                    return .success(candidate)
                }
                folder = folder.deletingLastPathComponent()
            }
        }
        return .failure(NotFound(searched: searched))
    }

    /// Runs `retort arguments` with working directory `directory`; kills it after `timeout` seconds.
    static func run(
        _ arguments: [String], in directory: URL, timeout: Double = 120, environment: [String: String] = [:]
    ) async throws -> CommandResult {
        let executable = try url()
        await ProcessSlots.shared.acquire()
        do {
            let result = try await launch(
                executable, arguments, in: directory, timeout: timeout, environment: environment)
            await ProcessSlots.shared.release()
            return result
        } catch {
            await ProcessSlots.shared.release()
            throw error
        }
    }

    private static func launch(
        _ executable: URL, _ arguments: [String], in directory: URL, timeout: Double,
        environment extra: [String: String]
    ) async throws -> CommandResult {
        let io = FileManager.default.temporaryDirectory.appendingPathComponent("retort-cli-io-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: io, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: io) }
        let stdoutURL = io.appendingPathComponent("stdout")
        let stderrURL = io.appendingPathComponent("stderr")
        try Data().write(to: stdoutURL)
        try Data().write(to: stderrURL)
        let stdout = try FileHandle(forWritingTo: stdoutURL)
        let stderr = try FileHandle(forWritingTo: stderrURL)
        let box = ProcessBox()
        let process = box.process
        process.executableURL = executable
        process.arguments = arguments
        process.currentDirectoryURL = directory
        // Searches in a workspace's default history must not learn from the shipped starter history (the tests
        // that check the starter pass RETORT_STARTER_HISTORY themselves, in `extra`).
        var environment = ProcessInfo.processInfo.environment
        environment["RETORT_STARTER_HISTORY"] = "none"
        environment.merge(extra) { $1 }
        process.environment = environment
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = stdout
        process.standardError = stderr
        let launchError: (any Error)? = await withCheckedContinuation { continuation in
            process.terminationHandler = { _ in continuation.resume(returning: nil) }
            do {
                try process.run()
                box.startWatchdog(seconds: timeout)
            } catch {
                process.terminationHandler = nil
                continuation.resume(returning: error)
            }
        }
        try? stdout.close()
        try? stderr.close()
        if let launchError { throw launchError }
        #expect(!box.timedOut, "retort \(arguments.joined(separator: " ")) ran longer than \(timeout) s and was killed")
        return CommandResult(
            exitCode: process.terminationStatus,
            crashed: process.terminationReason == .uncaughtSignal,
            stdout: String(decoding: try Data(contentsOf: stdoutURL), as: UTF8.self),
            stderr: String(decoding: try Data(contentsOf: stderrURL), as: UTF8.self))
    }
}

/// A `Process` shared with the watchdog. `@unchecked Sendable`: `timedOut` is only touched under `lock`, and
/// `Process` itself is safe to query and terminate from another thread.
private final class ProcessBox: @unchecked Sendable {
    let process = Process()
    private let lock = NSLock()
    private var killed = false

    var timedOut: Bool { lock.withLock { killed } }

    func startWatchdog(seconds: Double) {
        DispatchQueue.global().asyncAfter(deadline: .now() + seconds) { [self] in
            guard process.isRunning else { return }
            lock.withLock { killed = true }
            process.terminate()
        }
    }
}

/// At most two `retort` processes at a time (the machine has two cores; searches measure latency).
actor ProcessSlots {
    static let shared = ProcessSlots(count: 2)

    private var available: Int
    private var waiters: [CheckedContinuation<Void, Never>] = []

    init(count: Int) { available = count }

    func acquire() async {
        if available > 0 {
            available -= 1
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    func release() {
        if waiters.isEmpty {
            available += 1
        } else {
            waiters.removeFirst().resume()
        }
    }
}

import Foundation
import Testing

/// `retort search` whose journal may grow to at most `bytes` (RLIMIT_FSIZE, with SIGXFSZ ignored: a write past it
/// fails with EFBIG, as on a full disk). Progress goes to pipes, which the limit does not touch.
func retortWithJournalLimit(_ arguments: [String], bytes: Int, in directory: URL) async throws -> CommandResult {
    let retort = try RetortBinary.url()
    await ProcessSlots.shared.acquire()
    defer { Task { await ProcessSlots.shared.release() } }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/sh")
    // dash counts `ulimit -f` in 512-byte blocks.
    process.arguments = ["-c", "trap '' XFSZ; ulimit -f \(bytes / 512); exec \"$0\" \"$@\"", retort.path] + arguments
    process.currentDirectoryURL = directory
    process.standardInput = FileHandle.nullDevice
    let (out, err) = (Pipe(), Pipe())
    process.standardOutput = out
    process.standardError = err
    try process.run()
    async let stdout = Task.detached { out.fileHandleForReading.readDataToEndOfFile() }.value
    async let stderr = Task.detached { err.fileHandleForReading.readDataToEndOfFile() }.value
    let (stdoutData, stderrData) = await (stdout, stderr)
    process.waitUntilExit()
    return CommandResult(
        exitCode: process.terminationStatus, crashed: process.terminationReason == .uncaughtSignal,
        stdout: String(decoding: stdoutData, as: UTF8.self), stderr: String(decoding: stderrData, as: UTF8.self))
}

@Suite struct JournalFailureCommandTests {
    @Test(
        "a journal that cannot grow stops retort search with FILE:LINE, exit 74 and the run left .partial; --resume finishes it as an uninterrupted run"
    )
    func journalWriteFailure() async throws {
        let workspace = try Workspace.numeric()
        try workspace.write(
            "numeric:\n  - family: linear\n    precision: [fp32, int8]\n    epochs: 10\n"
                + "  - family: mlp\n    hidden: [[8], [16]]\n    precision: [fp32]\n    epochs: 10\n",
            to: "c.yaml")
        let search = ["search", "--task", "blobs", "--candidates", "c.yaml", "--seed", "3", "--no-history"]
        let full = try await RetortBinary.run(search + ["--out", "results/full"], in: workspace.folder)
        #expect(full.exitCode == 0, "\(full)")
        let fullRun = try workspace.runFolder(job: "full")
        let journalBytes = try Data(contentsOf: fullRun.appendingPathComponent("journal.jsonl")).count

        // Half the journal fits: the search stops in the middle.
        let limited = try await retortWithJournalLimit(
            search + ["--out", "results/cut"], bytes: journalBytes / 2, in: workspace.folder)
        #expect(limited.exitCode == 74 && !limited.crashed, "\(limited)")
        let folders = try FileManager.default.contentsOfDirectory(atPath: workspace.url("results/cut").path)
        let partial = try #require(folders.first { $0.hasSuffix(".partial") }, "\(folders)")
        #expect(folders.filter { $0 != "latest" } == [partial], "no finished run folder")
        let journal = "results/cut/\(partial)/journal.jsonl"
        let good = try String(contentsOf: workspace.url(journal), encoding: .utf8).split(separator: "\n").count
        let line = try #require(limited.stderrLines.last)
        #expect(line.hasPrefix("\(journal):\(good + 1): error: cannot journal record \(good + 1)"), "\(line)")
        #expect(line.contains("File too large") && line.contains("retort search --resume results/cut/\(partial)"))

        let resumed = try await workspace.retort("search", "--resume", "results/cut/\(partial)")
        #expect(resumed.exitCode == 0, "\(resumed)")
        let report = try JSONSerialization.jsonObject(
            with: Data(contentsOf: workspace.url("results/cut/\(partial.dropLast(".partial".count))/report.json")))
        let fullReport = try JSONSerialization.jsonObject(
            with: Data(contentsOf: fullRun.appendingPathComponent("report.json")))
        let recommendation = { (object: Any) in
            ((object as? [String: Any])?["recommendation"] as? [String: Any])?["candidate"] as? String
        }
        #expect(recommendation(report) != nil && recommendation(report) == recommendation(fullReport))
    }
}

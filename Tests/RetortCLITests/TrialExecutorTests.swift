import Foundation
import RetortTestSupport
import Testing

/// `--executor process` runs every rung as its own `retort trial run` process from a spec; the spec is complete when
/// the search's answers equal the in-process ones.
@Suite struct TrialExecutorTests {
    /// Two rungs of halving, so the second continues from the state the first trial wrote.
    static let catalog = """
        numeric:
          - {family: linear, precision: [fp32, int8], epochs: 9}
          - {family: mlp, hidden: [[4], [8], [16]], precision: [fp32, int8], epochs: 9}
        """

    @Test("search --executor process gives the frontier and recommendation of --executor local")
    func processMatchesLocal() async throws {
        let workspace = try Workspace.numeric()
        try workspace.write(Self.catalog, to: "catalog.yaml")
        let common = [
            "search", "--task", "blobs", "--no-history", "--candidates", "catalog.yaml", "--strategy", "halving",
            "--seed", "5", "--max-drop", "0.05", "--workers", "2",
        ]
        let local = try await RetortBinary.run(
            common + ["--out", "results/local", "--executor", "local"], in: workspace.folder, timeout: 300)
        #expect(local.exitCode == 0, "\(local)")
        let process = try await RetortBinary.run(
            common + ["--out", "results/process", "--executor", "process"], in: workspace.folder, timeout: 300)
        #expect(process.exitCode == 0, "\(process)")
        #expect(process.stdout.contains("trial run"), "\(process)")
        let a = workspace.url("results/local/latest")
        let b = workspace.url("results/process/latest")
        let frontierA = try String(contentsOf: a.appendingPathComponent("frontier.md"), encoding: .utf8)
        let frontierB = try String(contentsOf: b.appendingPathComponent("frontier.md"), encoding: .utf8)
        #expect(frontierA.contains("| candidate |"))
        #expect(
            DeterminismTests.frontierWithoutLatency(frontierA) == DeterminismTests.frontierWithoutLatency(frontierB))
        let csvA = try String(contentsOf: a.appendingPathComponent("candidates.csv"), encoding: .utf8)
        let csvB = try String(contentsOf: b.appendingPathComponent("candidates.csv"), encoding: .utf8)
        #expect(csvA.contains("pruned"), "halving prunes: the second rung continues from a trial's state")
        let cascade = try String(contentsOf: a.appendingPathComponent("cascade.csv"), encoding: .utf8)
        #expect(
            cascade.hasPrefix("candidate,split,threshold,coverage,") && cascade.contains(/,validation,[0-9.e-]+,1,/))
        #expect(try Report(runFolder: b).json["cascades"] is [[String: Any]])
        #expect(DeterminismTests.csvWithoutLatency(csvA) == DeterminismTests.csvWithoutLatency(csvB))
        let reportA = try Report(runFolder: a)
        let reportB = try Report(runFolder: b)
        #expect(reportA.kind == reportB.kind && reportA.candidate == reportB.candidate)
        #expect(reportA.recommendationTestValue("accuracy") == reportB.recommendationTestValue("accuracy"))
        // The rung records are the same (in whatever order the workers finished), but for the training seconds.
        func rungs(_ run: URL) throws -> [String] {
            try String(contentsOf: run.appendingPathComponent("journal.jsonl"), encoding: .utf8)
                .split(separator: "\n").filter { $0.contains(#""type":"rung""#) }
                .map { String($0).replacing(/"train_seconds":[0-9.e-]+,?/, with: "") }.sorted()
        }
        let (rungsA, rungsB) = (try rungs(a), try rungs(b))
        #expect(rungsA == rungsB, "\(zip(rungsA, rungsB).filter { $0 != $1 }.prefix(2))")
        #expect(try !rungs(a).isEmpty)
    }

    @Test("trial run with a malformed spec: one `FILE[:LINE]: error:` line and a non-zero exit, no crash")
    func malformedSpec() async throws {
        let workspace = try Workspace.numeric()
        let located = /spec\.json(:[0-9]+)?: error: \S.*/
        for (text, expected) in [
            (#"{"version": 1, "group": "linear-fp32", "#, "not valid JSON"),
            (#"{"version": 1, "task": "blobs"}"#, "is missing"),
            (#"["not", "a", "spec"]"#, "wrong type"),
        ] {
            try workspace.write(text, to: "spec.json")
            let result = try await workspace.retort("trial", "run", "--spec", "spec.json", "--out", "out")
            #expect(result.exitCode == 65, "\(result)")
            #expect(!result.crashed)
            #expect(result.stderrLines.count == 1, "\(result)")
            #expect(result.stderrLines.first.map { $0.wholeMatch(of: located) != nil } == true, "\(result)")
            #expect(result.stderr.contains(expected), "\(result)")
            #expect(!workspace.exists("out"), "nothing is written for a bad spec")
        }
        let missing = try await workspace.retort("trial", "run", "--spec", "nowhere.json", "--out", "out")
        #expect(missing.exitCode == 66 && missing.stderr.hasPrefix("nowhere.json: error: "), "\(missing)")
    }

    @Test("trial serve answers each request line: a bad one with ok false and the reason, then goes on")
    func trialServe() async throws {
        let workspace = try Workspace.numeric()
        try workspace.write(#"{"version": 1, "task": "blobs"}"#, to: "bad.json")
        let process = Process()
        process.executableURL = try RetortBinary.url()
        process.arguments = ["trial", "serve"]
        process.currentDirectoryURL = workspace.folder
        let (input, output) = (Pipe(), Pipe())
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let requests = [
            "not json", #"{"spec": "bad.json", "out": "out1"}"#, #"{"spec": "nowhere.json", "out": "out2"}"#,
        ]
        try input.fileHandleForWriting.write(contentsOf: Data((requests.joined(separator: "\n") + "\n").utf8))
        try input.fileHandleForWriting.close()
        let answers = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .split(separator: "\n").map(String.init)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        #expect(answers.count == 3, "\(answers)")
        #expect(answers.allSatisfy { $0.contains(#""ok":false"#) }, "\(answers)")
        #expect(answers.count == 3 && answers[1].contains("is missing") && answers[2].contains("nowhere.json"))
        #expect(!workspace.exists("out1") && !workspace.exists("out2"))
    }

    @Test("--executor with an unknown name is a usage error")
    func unknownExecutor() async throws {
        let workspace = try Workspace.numeric()
        let result = try await workspace.retort("search", "--task", "blobs", "--no-history", "--executor", "slurm")
        #expect(result.exitCode == 64, "\(result)")
        #expect(result.stderr.contains("unknown executor"), "\(result)")
    }
}

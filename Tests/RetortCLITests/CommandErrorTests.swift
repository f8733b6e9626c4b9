import Foundation
import RetortTestSupport
import Testing

/// Bad input through the CLI: `PATH:LINE: error: message` on stderr and a sysexits code, and nothing half-written.
@Suite struct CommandErrorTests {
    /// `PATH:LINE: error: message`.
    static func isLocatedError(_ line: String) -> Bool {
        line.wholeMatch(of: /[^:\s]+:[0-9]+: error: \S.*/) != nil
    }

    @Test("malformed rows in train.jsonl: exit 65 and exactly one `PATH:LINE: error:` line per problem")
    func malformedTrainRows() async throws {
        let workspace = try Workspace.numeric(name: "bad")
        var lines = try workspace.text("bad/train.jsonl").split(separator: "\n").map(String.init)
        lines[2] = #"{"input": [1.0, 2.0"#
        lines[5] = "[1, 2, 3, 4]"
        try workspace.write(lines.joined(separator: "\n") + "\n", to: "bad/train.jsonl")
        let result = try await workspace.retort("search", "--task", "bad")
        #expect(result.exitCode == 65, "\(result)")
        #expect(!result.crashed)
        let errors = result.stderrLines
        #expect(errors.count == 2, "\(result)")
        #expect(errors.allSatisfy(Self.isLocatedError), "\(errors)")
        #expect(errors.first?.hasPrefix("bad/train.jsonl:3: error: not valid JSON") == true, "\(errors)")
        #expect(errors.last?.hasPrefix("bad/train.jsonl:6: error: expected a JSON object") == true, "\(errors)")
        #expect(!workspace.exists("results"), "nothing is written for bad data")
    }

    @Test("bad rows in several splits are all reported with their own file and line")
    func badRowsInSeveralSplits() async throws {
        let workspace = try Workspace.numeric(name: "bad")
        var validation = try workspace.text("bad/validation.jsonl").split(separator: "\n").map(String.init)
        validation[9] = #"{"id": "va-9", "input": [1, 2, 3, 4], "teacher": "c0", "extra": true}"#
        try workspace.write(validation.joined(separator: "\n"), to: "bad/validation.jsonl")
        try workspace.write(#"{"input": [1, 2, 3, 4], "gold": "c0"}"# + "\n", to: "bad/test.jsonl")
        let result = try await workspace.retort("search", "--task", "bad")
        #expect(result.exitCode == 65, "\(result)")
        #expect(
            result.stderrLines == [
                #"bad/validation.jsonl:10: error: unknown key "extra"; a row has only id, input, teacher, gold"#,
                #"bad/test.jsonl:1: error: missing "teacher"; every row needs the teacher's answer "#
                    + #"(a label or {"probs": {...}})"#,
            ], "\(result)")
    }

    @Test("a missing task folder: exit 66, naming the folder")
    func missingTaskFolder() async throws {
        let workspace = Workspace()
        let result = try await workspace.retort("search", "--task", "nope")
        #expect(result.exitCode == 66, "\(result)")
        #expect(result.stderrLines.count == 1)
        #expect(result.stderrLines.first?.hasPrefix("nope: error: no such task folder") == true, "\(result)")
        #expect(!workspace.exists("results"))
    }

    @Test("a job file that does not exist: exit 66")
    func missingJobFile() async throws {
        let result = try await Workspace().retort("search", "absent.yaml")
        #expect(result.exitCode == 66, "\(result)")
        #expect(result.stderr.contains("absent.yaml"))
    }

    @Test("a job file with an unknown key: exit 65 and the key's line")
    func jobWithUnknownKey() async throws {
        let workspace = try Workspace.numeric(name: "blobs")
        try workspace.write(Jobs.numeric(name: "j", task: "blobs") + "\nbudget: 10\n", to: "job.yaml")
        let result = try await workspace.retort("search", "job.yaml")
        #expect(result.exitCode == 65, "\(result)")
        #expect(result.stderrLines.count == 1)
        #expect(result.stderrLines.first?.hasPrefix(#"job.yaml:10: error: unknown key "budget""#) == true, "\(result)")
    }

    @Test("an output folder that cannot be created: exit 73 and no run folder anywhere")
    func unwritableOut() async throws {
        let workspace = try Workspace.numeric(name: "blobs")
        try workspace.write("a regular file", to: "blocker")
        let result = try await workspace.retort("search", "--task", "blobs", "--out", "blocker/runs")
        #expect(result.exitCode == 73, "\(result)")
        #expect(result.stderrLines.count == 1)
        #expect(result.stderr.contains("blocker/runs") && result.stderr.contains("--out"), "\(result)")
        #expect(try workspace.text("blocker") == "a regular file")
        #expect(!workspace.exists("results"))
        let entries = try FileManager.default.contentsOfDirectory(atPath: workspace.folder.path).sorted()
        #expect(entries == ["blobs", "blocker"])
    }

    @Test("a catalog with no candidates for the task's kind: exit 65 and no run folder left behind")
    func catalogWithoutCandidatesForKind() async throws {
        let workspace = try Workspace.numeric(name: "blobs")
        try workspace.write(
            """
            name: mismatch
            data: {task: blobs}
            candidates:
              text: [{family: linear, buckets_log2: [10]}]
            """, to: "job.yaml")
        let result = try await workspace.retort("search", "job.yaml")
        #expect(result.exitCode == 65, "\(result)")
        let message = #"error: the candidate catalog lists no numeric candidates; add a "numeric:" section"#
        #expect(result.stderrLines == [message])
        let results = workspace.url("results/mismatch").path
        let leftovers = (try? FileManager.default.contentsOfDirectory(atPath: results)) ?? []
        #expect(leftovers.isEmpty, "left behind: \(leftovers)")
    }

    @Test("search with neither a job nor --task is a usage error")
    func searchWithoutInput() async throws {
        let result = try await Workspace().retort("search")
        #expect(result.exitCode == 64, "\(result)")
        #expect(result.stderr.contains("--task"), "\(result)")
    }

    @Test("search with both a job and --task is a usage error")
    func searchWithJobAndTask() async throws {
        let result = try await Workspace().retort("search", "job.yaml", "--task", "t")
        #expect(result.exitCode == 64, "\(result)")
    }

    @Test(
        "malformed flag values are usage errors that say what to write",
        arguments: [
            (["--max-size", "lots"], "--max-size"), (["--budget", "soon"], "--budget"),
            (["--max-drop", "3"], "--max-drop"),
        ])
    func badFlagValues(flags: [String], named: String) async throws {
        let workspace = Workspace()
        let result = try await RetortBinary.run(["search", "--task", "t"] + flags, in: workspace.folder)
        #expect(result.exitCode == 64, "\(result)")
        #expect(result.stderrLines.count == 1)
        #expect(result.stderrLines.first?.hasPrefix("error: \(named)") == true, "\(result)")
    }

    @Test("a --max-size too large for an integer is a usage error, not a crash")
    func hugeMaxSize() async throws {
        let result = try await Workspace().retort("search", "--task", "t", "--max-size", "1e30")
        let crashed = result.crashed
        #expect(!crashed, "died of signal \(result.exitCode)")
        #expect(result.exitCode == 64, "stderr starts: \(result.stderr.prefix(200))")
    }

    @Test("frontier on a folder without report.json fails and says what to give")
    func frontierWithoutReport() async throws {
        let workspace = Workspace()
        try FileManager.default.createDirectory(at: workspace.url("empty-run"), withIntermediateDirectories: true)
        let result = try await workspace.retort("frontier", "empty-run")
        #expect(result.exitCode == 66, "\(result)")
        #expect(result.stderrLines.first?.hasPrefix("empty-run: error: no report.json") == true, "\(result)")
        #expect(result.stdout.isEmpty)
    }

    @Test("predict with a folder that holds no model fails with a message")
    func predictWithoutModel() async throws {
        let workspace = try Workspace.numeric(name: "blobs")
        let result = try await workspace.retort("predict", "blobs", "--input", "blobs/test.jsonl")
        #expect(result.exitCode != 0, "\(result)")
        #expect(result.stderr.contains("model.json"), "\(result)")
    }
}

/// `--help` documents the commands and the options users need.
@Suite struct HelpTests {
    @Test("retort --help lists the subcommands")
    func rootHelp() async throws {
        let result = try await Workspace().retort("--help")
        #expect(result.exitCode == 0, "\(result)")
        for word in ["search", "frontier", "predict", "demo"] {
            #expect(result.stdout.contains(word), "\(word) in \(result.stdout)")
        }
    }

    @Test("retort search --help lists the job argument and the options of FORMATS.md §3")
    func searchHelp() async throws {
        let result = try await Workspace().retort("search", "--help")
        #expect(result.exitCode == 0, "\(result)")
        let options = [
            "<job>", "--task", "--out", "--budget", "--seed", "--max-size", "--max-latency-ms", "--max-drop",
            "--metric",
        ]
        for option in options {
            #expect(result.stdout.contains(option), "\(option) in \(result.stdout)")
        }
    }
}

@Suite struct BenchCommandTests {
    @Test("retort bench measures every kernel and prints one table")
    func bench() async throws {
        let result = try await Workspace().retort("bench", "--seconds", "0.02", "--bootstrap-rows", "500")
        #expect(result.exitCode == 0, "\(result)")
        for row in [
            "sgemm 256³, 1 thread", "mlp training, hidden 256", "mlp training, hidden 1024", "embedding-bag d=32",
            "bootstrap CIs, N = 500", "plain resampling loop", "gbdt depth 5", "embedding-bag d=32 (text)",
            "encoder forward",
        ] {
            #expect(result.stdout.contains(row), "missing \(row)")
        }
        #expect(result.stdout.contains("GFLOP/s") && result.stdout.contains("examples/s"))
    }
}

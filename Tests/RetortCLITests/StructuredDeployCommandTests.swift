import Foundation
import RetortTestSupport
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// `retort deploy` of a structured run and `retort capture export`'s structured options, through the binary.
@Suite struct StructuredDeployCommandTests {
    @Test("deploy serves a structured run's student: the answer is its JSON object; status and rollback work")
    func deployStructuredRun() async throws {
        let workspace = try StructuredCommandTests.workspace(maxDrop: 0.5)
        let search = try await workspace.retort("search", "job.yaml")
        #expect(search.exitCode == 0, "\(search)")
        let run = try workspace.runFolder(job: "ha-mini")
        // The teacher deployment points at a closed port: only the student can answer here.
        let token = try await workspace.gatewayWithoutTeacher(route: "home")
        let gateway = try await ServerProcess.start(config: "gateway.yaml", in: workspace.folder)
        defer { gateway.process.terminate() }

        let deploy = try await workspace.retort(
            "deploy", run.path, "--config", "gateway.yaml", "--route", "home", "--shadow", "0", "--threshold", "0",
            "--min-agreement", "0.5")
        #expect(deploy.exitCode == 0, "\(deploy)")
        #expect(deploy.stdout.contains("deployed student/nearest-b1"), "\(deploy)")
        let input = "set the kitchen light to 40 percent"
        var content: String?
        let served = try await gateway.until {
            let answer = try await gateway.chat(route: "home", text: input, token: token)
            content = answer.content
            return answer.status == 200 && answer.servedModel?.hasPrefix("student/nearest-b1") == true
        }
        #expect(served, "the gateway serves the structured student without a restart")
        let object = try #require(
            try JSONSerialization.jsonObject(with: Data((content ?? "").utf8)) as? [String: Any], "\(content ?? "")")
        #expect(object["intent"] is String, "an answer of the synthetic task: \(object)")
        #expect(!(content ?? "").contains(" "), "compact canonical JSON")

        let status = try await workspace.retort("deploy", "status", "--config", "gateway.yaml", "--route", "home")
        #expect(status.exitCode == 0 && status.stdout.contains("serving"), "\(status)")
        let rollback = try await workspace.retort(
            "deploy", "rollback", "--config", "gateway.yaml", "--route", "home", "--reason", "test")
        #expect(rollback.exitCode == 0, "\(rollback)")
        let onTeacher = try await gateway.until {
            try await gateway.chat(route: "home", text: input, token: token).servedModel == nil
        }
        #expect(onTeacher, "after the rollback the teacher deployments answer (here: none can)")

        // deploy bench reads a structured run's rows (FORMATS.md §9) for its inputs.
        let bench = try await workspace.retort(
            "deploy", "bench", run.path, "--input", "structured-synthetic/test.jsonl", "--concurrency", "1",
            "--seconds", "1", "--teacher-latency-ms", "20", "--out", "bench")
        #expect(bench.exitCode == 0, "\(bench)")
        let studentRow = try #require(bench.stdout.split(separator: "\n").first { $0.hasPrefix("| student | 1 |") })
        let cells = studentRow.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
        #expect((Int(cells[2]) ?? 0) > 0 && cells[3] == "0" && cells[7] == cells[2], "\(studentRow)")
    }

    @Test("capture export says what the answers are: exactly one of --labels, --schema and --structured")
    func captureExportOptions() async throws {
        let workspace = Workspace(folder: SyntheticTasks.temporaryFolder())
        let none = try await workspace.retort(
            "capture", "export", "--config", "gateway.yaml", "--task", "t", "--out", "out")
        #expect(
            none.exitCode != 0 && none.stderr.contains("--labels FILE (a label set), --schema FILE or --structured"))
        #expect(none.stderr.split(separator: "\n").count == 1, "\(none)")
        let two = try await workspace.retort(
            "capture", "export", "--config", "gateway.yaml", "--task", "t", "--out", "out", "--labels", "l.txt",
            "--structured")
        #expect(two.exitCode != 0 && two.stderr.contains("not --labels and --structured"), "\(two)")
        #expect(!FileManager.default.fileExists(atPath: workspace.url("out").path))
    }
}

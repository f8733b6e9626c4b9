import Foundation
import RetortTestSupport
import Testing

/// File-system and model.json problems are said in words: the path, what is wrong and how to fix it, and a non-zero
/// exit; never Foundation's `(NSCocoaErrorDomain error 512.)` or a `DecodingError` dump.
@Suite struct ErrorWordingTests {
    static func expectWorded(_ result: CommandResult, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(!result.crashed, "\(result)", sourceLocation: sourceLocation)
        #expect(result.exitCode != 0, "\(result)", sourceLocation: sourceLocation)
        for raw in ["NSCocoaErrorDomain", "DecodingError", "CodingKeys", "Error Domain"] {
            #expect(!result.stderr.contains(raw), "\(raw) in: \(result.stderr)", sourceLocation: sourceLocation)
        }
    }

    @Test("search --out under a regular file names the file that blocks it")
    func outUnderRegularFile() async throws {
        let workspace = try Workspace.numeric(name: "blobs")
        try workspace.write("a regular file", to: "blocker")
        let result = try await workspace.retort("search", "--task", "blobs", "--out", "blocker/x/runs")
        Self.expectWorded(result)
        #expect(result.exitCode == 73, "\(result)")
        #expect(result.stderr.contains("blocker is a file, not a folder"), "\(result)")
        #expect(result.stderr.contains("blocker/x/runs") && result.stderr.contains("--out"), "\(result)")
    }

    @Test("a job whose out: sits under a regular file names the file that blocks it")
    func jobOutUnderRegularFile() async throws {
        let workspace = try Workspace.numeric(name: "blobs")
        try workspace.write("a regular file", to: "blocker")
        try workspace.write(Jobs.linearOnly(name: "j", task: "blobs") + "\nout: blocker/runs\n", to: "job.yaml")
        let result = try await workspace.retort("search", "job.yaml")
        Self.expectWorded(result)
        #expect(result.exitCode == 73, "\(result)")
        #expect(result.stderr.contains("blocker is a file, not a folder"), "\(result)")
        #expect(result.stderr.contains("blocker/runs"), "\(result)")
    }

    /// A finished run of the numeric job, and its folder.
    static func finishedRun() async throws -> (Workspace, URL) {
        let workspace = try Workspace.numeric(name: "blobs")
        try workspace.write(Jobs.numeric(name: "j", task: "blobs"), to: "job.yaml")
        let search = try await workspace.retort("search", "job.yaml")
        try #require(search.exitCode == 0, "\(search)")
        return (workspace, try workspace.runFolder(job: "j"))
    }

    @Test("predict on a model.json that is not valid JSON: the file, the line, and what to do")
    func predictOnMalformedManifest() async throws {
        let (workspace, run) = try await Self.finishedRun()
        let manifest = run.appendingPathComponent("model/model.json")
        var lines = try String(contentsOf: manifest, encoding: .utf8).split(separator: "\n").map(String.init)
        lines[2] = "  oops,"
        try Data(lines.joined(separator: "\n").utf8).write(to: manifest)
        let result = try await workspace.retort(
            "predict", run.appendingPathComponent("model").path, "--input", "blobs/test.jsonl")
        Self.expectWorded(result)
        #expect(result.exitCode == 65, "\(result)")
        #expect(result.stderrLines.count == 1, "\(result)")
        #expect(result.stderr.contains("model/model.json:3: error: not valid JSON"), "\(result)")
    }

    @Test("predict and deploy on a model.json with an unknown family name the key, the value and the choices")
    func unknownFamily() async throws {
        let (workspace, run) = try await Self.finishedRun()
        let manifest = run.appendingPathComponent("model/model.json")
        let text = try String(contentsOf: manifest, encoding: .utf8)
        let broken = text.replacingOccurrences(
            of: #"("family"\s*:\s*)"[a-z-]+""#, with: #"$1"foo""#, options: .regularExpression)
        #expect(broken != text)
        try Data(broken.utf8).write(to: manifest)
        let predict = try await workspace.retort(
            "predict", run.appendingPathComponent("model").path, "--input", "blobs/test.jsonl")
        Self.expectWorded(predict)
        #expect(predict.exitCode == 65, "\(predict)")
        #expect(predict.stderr.contains("model.json: error: key `"), "\(predict)")
        #expect(predict.stderr.contains("unknown family `foo` (expected one of linear, mlp"), "\(predict)")

        try workspace.write(
            """
            listen: 127.0.0.1:0
            ledger: var/gateway.sqlite
            providers:
              nowhere: {kind: openai, base_url: "http://127.0.0.1:9/v1"}
            routes:
              teacher:
                deployments:
                  - {provider: nowhere, model: m, price: {input_per_mtok: 1, output_per_mtok: 2}}
            """, to: "gateway.yaml")
        let deploy = try await workspace.retort(
            "deploy", run.path, "--config", "gateway.yaml", "--route", "teacher", "--shadow", "0")
        Self.expectWorded(deploy)
        #expect(deploy.exitCode == 65, "\(deploy)")
        #expect(deploy.stderr.contains("model.json"), "\(deploy)")
        #expect(deploy.stderr.contains("unknown family `foo`"), "\(deploy)")
    }

    @Test("gateway check rejects the issue's timeout_s: 1e19 with its line and range, and exits 65")
    func gatewayCheckTimeout() async throws {
        let workspace = Workspace()
        try workspace.write(
            """
            providers:
              up: {kind: openai, base_url: "http://127.0.0.1:9/v1"}
            routes:
              chat:
                deployments:
                  - {provider: up, model: m, timeout_s: 1e19, price: {input_per_mtok: 1, output_per_mtok: 2}}
            """, to: "gateway.yaml")
        let result = try await workspace.retort("gateway", "check", "--config", "gateway.yaml")
        Self.expectWorded(result)
        #expect(result.exitCode == 65, "\(result)")
        #expect(
            result.stderr.contains("gateway.yaml:6: error:")
                && result.stderr.contains("timeout_s must be in (0, 86400] seconds, got 1e19"), "\(result)")
    }

    @Test(
        "numeric flags outside their range are usage errors naming the flag and the range",
        arguments: [
            (["gateway", "serve", "--config", "g.yaml", "--listen", "127.0.0.1:99999"], "--listen"),
            (["gateway", "bench", "--seconds", "1e30"], "--seconds must be in (0, 86400] seconds"),
            (["ui", "--port", "70000"], "--port must be a whole number in [0, 65535], got 70000"),
            (["search", "--task", "t", "--budget", "99999999999999999999h"], "--budget must be in (0, 315576000]"),
            (["search", "--task", "t", "--workers", "0"], "--workers must be a whole number in [1, 1024], got 0"),
            (["bench", "--seconds", "1e300"], "--seconds must be in (0, 86400] seconds, got 1e+300"),
        ])
    func flagRanges(arguments: [String], message: String) async throws {
        let workspace = Workspace()
        let result = try await RetortBinary.run(arguments, in: workspace.folder)
        Self.expectWorded(result)
        #expect(result.exitCode == 64, "\(result)")
        #expect(result.stderr.contains(message), "\(result)")
    }
}

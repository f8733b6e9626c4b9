import Foundation
import RetortTestSupport
import Synchronization
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// A `retort` server (`gateway serve`, `ui`) running in the background for one test.
final class ServerProcess: @unchecked Sendable {
    let process = Process()
    let port: Int

    /// Starts the gateway on `config` (whose listen port is 0) and waits for its "listening on" line.
    convenience init(config: String, in folder: URL) throws {
        try self.init(arguments: ["gateway", "serve", "--config", config, "--log-level", "warning"], in: folder)
    }

    /// Starts `retort arguments` (a server on port 0) and waits for the line that names its address.
    init(arguments: [String], in folder: URL) throws {
        process.executableURL = try RetortBinary.url()
        process.arguments = arguments
        process.currentDirectoryURL = folder
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Reading blocks until the server prints or exits: a server silent for 120 s (a generous bound on a loaded
        // machine) is stopped, which ends the read, so the test fails instead of hanging.
        let started = StartFlag()
        let process = self.process
        DispatchQueue.global().asyncAfter(deadline: .now() + 120) {
            if !started.isSet, process.isRunning { process.terminate() }
        }
        var text = ""
        while !text.contains("\n") {
            let data = output.fileHandleForReading.availableData
            if data.isEmpty { break }
            text += String(decoding: data, as: UTF8.self)
        }
        started.set()
        guard let range = text.range(of: #"127\.0\.0\.1:(\d+)"#, options: .regularExpression),
            let port = Int(text[range].split(separator: ":").last ?? "")
        else {
            process.terminate()
            throw GatewayDidNotStart(output: text)
        }
        self.port = port
    }

    struct GatewayDidNotStart: Error { let output: String }

    /// Starts `retort arguments` like `init(arguments:in:)`, waiting for its address on a thread of its own: the
    /// wait blocks, and a blocked thread of the test process's small async pool stalls every other test's servers.
    static func start(arguments: [String], in folder: URL) async throws -> ServerProcess {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(with: Result { try ServerProcess(arguments: arguments, in: folder) })
            }
        }
    }

    /// Starts the gateway on `config` (whose listen port is 0) without blocking the async pool.
    static func start(config: String, in folder: URL) async throws -> ServerProcess {
        try await start(arguments: ["gateway", "serve", "--config", config, "--log-level", "warning"], in: folder)
    }

    /// Whether the server has said where it listens (read by the start-up watchdog).
    final class StartFlag: Sendable {
        private let flag = Mutex(false)
        var isSet: Bool { flag.withLock { $0 } }
        func set() { flag.withLock { $0 = true } }
    }

    deinit { if process.isRunning { process.terminate() } }

    /// GETs `path`; returns the status and the body.
    func get(_ path: String) async throws -> (status: Int, body: String) {
        let url = try #require(URL(string: "http://127.0.0.1:\(port)\(path)"))
        let (data, response) = try await URLSession.shared.data(from: url)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
    }

    /// POSTs a chat request for `route`; returns the status, the served-model header and the answer's content.
    func chat(route: String, text: String, token: String) async throws -> (
        status: Int, servedModel: String?, content: String?
    ) {
        var request = URLRequest(url: try #require(URL(string: "http://127.0.0.1:\(port)/v1/chat/completions")))
        request.httpMethod = "POST"
        request.setValue("Bearer \(token)", forHTTPHeaderField: "authorization")
        request.setValue("application/json", forHTTPHeaderField: "content-type")
        request.httpBody = try JSONSerialization.data(withJSONObject: [
            "model": route, "messages": [["role": "user", "content": text]],
        ])
        let (data, response) = try await URLSession.shared.data(for: request)
        let http = try #require(response as? HTTPURLResponse)
        let body = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        let choice = (body?["choices"] as? [[String: Any]])?.first
        let content = (choice?["message"] as? [String: Any])?["content"] as? String
        return (http.statusCode, http.value(forHTTPHeaderField: "x-retort-served-model"), content)
    }

    /// Waits until `condition` holds, at most `seconds` (generous: a reload on a loaded machine can take a while; a
    /// condition that holds returns at once).
    func until(seconds: Double = 60, _ condition: () async throws -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if try await condition() { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return try await condition()
    }
}

@Suite struct DeployCommandTests {
    /// A text workspace with a finished search whose recommendation is a student, and a gateway config over it.
    static func workspace() async throws -> (Workspace, URL, String) {
        let workspace = try Workspace.intents()
        workspace.removeAtExit()
        try workspace.write(Jobs.text(name: "intents", task: "intents"), to: "job.yaml")
        let search = try await workspace.retort("search", "job.yaml")
        #expect(search.exitCode == 0, "\(search)")
        let token = try await workspace.gatewayWithoutTeacher(route: "teacher")
        return (workspace, try workspace.runFolder(job: "intents"), token)
    }

    @Test("deploy reaches a running gateway by SIGHUP; status, history and rollback read and write the ledger")
    func deployToRunningGateway() async throws {
        let (workspace, runFolder, token) = try await Self.workspace()
        let gateway = try await ServerProcess.start(config: "gateway.yaml", in: workspace.folder)
        let input = "please word1x2 the order word1x0 help"
        #expect(try await gateway.chat(route: "teacher", text: input, token: token).status == 503)

        let deploy = try await workspace.retort(
            "deploy", runFolder.path, "--config", "gateway.yaml", "--route", "teacher", "--shadow", "0")
        #expect(deploy.exitCode == 0, "\(deploy)")
        #expect(deploy.stdout.contains("deployed student/linear-b10-fp32.1 on route teacher: threshold 0.0000"))
        #expect(deploy.stdout.contains("is reloading"), "the running gateway was signalled: \(deploy)")
        let served = try await gateway.until {
            let answer = try await gateway.chat(route: "teacher", text: input, token: token)
            return answer.status == 200 && answer.servedModel == "student/linear-b10-fp32.1"
        }
        #expect(served, "the gateway serves the student without a restart")

        let status = try await workspace.retort(
            "deploy", "status", "--config", "gateway.yaml", "--route", "teacher", "--json")
        #expect(status.exitCode == 0, "\(status)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])
        for key in [
            "route", "student", "candidate", "threshold", "shadow", "min_agreement", "state", "agreement",
            "rolled_back_at", "reason",
        ] {
            #expect(object.keys.contains(key), "status has \(key)")
        }
        #expect(object["state"] as? String == "serving")
        #expect(object["student"] as? String == "student/linear-b10-fp32.1")
        #expect((object["agreement"] as? [String: Any])?["n"] as? Int == 0)

        let rollback = try await workspace.retort(
            "deploy", "rollback", "--config", "gateway.yaml", "--route", "teacher", "--reason", "test")
        #expect(rollback.exitCode == 0, "\(rollback)")
        let onTeacher = try await gateway.until {
            try await gateway.chat(route: "teacher", text: input, token: token).servedModel == nil
        }
        #expect(onTeacher, "after the rollback the teacher deployments answer (here: none can)")
        let history = try await workspace.retort("deploy", "history", "--config", "gateway.yaml", "--json")
        let records = try #require(
            try JSONSerialization.jsonObject(with: Data(history.stdout.utf8)) as? [[String: Any]])
        #expect(records.count == 1)
        #expect(records.first?["state"] as? String == "rolled_back")
        #expect(records.first?["reason"] as? String == "test")
        let again = try await workspace.retort("deploy", "rollback", "--config", "gateway.yaml", "--route", "teacher")
        #expect(again.exitCode != 0 && again.stderr.contains("no student is serving route"), "\(again)")
        // The model was copied beside the ledger, so the run folder may go.
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: workspace.url("var/deployments").path).count == 1)
        gateway.process.terminate()
    }

    @Test(
        "deploy refuses a run that keeps the teacher, a student below --min-agreement (naming a threshold) and bad options"
    )
    func refusals() async throws {
        let (workspace, runFolder, _) = try await Self.workspace()
        let reportURL = runFolder.appendingPathComponent("report.json")
        let original = try Data(contentsOf: reportURL)
        var report = try #require(try JSONSerialization.jsonObject(with: original) as? [String: Any])
        let candidate = try #require((report["recommendation"] as? [String: Any])?["candidate"] as? String)

        // The run's own figures, made worse in a copy: validation agreement 0.90 [0.85, 0.94] at threshold 0, and a
        // curve point at threshold 0.8 that agrees 0.99.
        var candidates = try #require(report["candidates"] as? [[String: Any]])
        let index = try #require(candidates.firstIndex { $0["id"] as? String == candidate })
        var metrics = try #require(candidates[index]["metrics"] as? [String: Any])
        metrics["agreement"] = ["value": 0.90, "ci95": [0.85, 0.94]]
        candidates[index]["metrics"] = metrics
        report["candidates"] = candidates
        let point: (Double, Double, Double) -> [String: Any] = { threshold, coverage, agreement in
            [
                "threshold": threshold, "coverage": coverage, "metrics": [String: Any](),
                "agreement": ["value": agreement, "ci95": [agreement - 0.01, min(1, agreement + 0.005)]],
            ]
        }
        report["cascades"] = [
            ["candidate": candidate, "validation": [point(0.8, 0.7, 0.99), point(0.0, 1.0, 0.90)], "test": []]
        ]
        try JSONSerialization.data(withJSONObject: report).write(to: reportURL)
        let refused = try await workspace.retort(
            "deploy", runFolder.path, "--config", "gateway.yaml", "--route", "teacher", "--min-agreement", "0.97")
        #expect(refused.exitCode != 0)
        #expect(refused.stderr.contains("below --min-agreement 0.970"), "\(refused)")
        #expect(refused.stderr.contains("--threshold 0.8000"), "names the cascade threshold that would meet the bar")
        #expect(!workspace.exists("var/gateway.sqlite"), "nothing deployed")
        let atThreshold = try await workspace.retort(
            "deploy", runFolder.path, "--config", "gateway.yaml", "--route", "teacher", "--threshold", "0.8", "--json")
        #expect(atThreshold.exitCode == 0, "\(atThreshold)")
        #expect(atThreshold.stdout.contains("\"threshold\":0.8"))

        var keeps = report
        keeps["recommendation"] = [
            "kind": "no-distillation", "candidate": NSNull(), "reason": "no student fits in 1 KB",
        ]
        try JSONSerialization.data(withJSONObject: keeps).write(to: reportURL)
        let keep = try await workspace.retort(
            "deploy", runFolder.path, "--config", "gateway.yaml", "--route", "teacher")
        #expect(keep.exitCode != 0)
        #expect(
            keep.stderr.contains("keeping the teacher") && keep.stderr.contains("no student fits in 1 KB"), "\(keep)")

        try original.write(to: reportURL)
        for (arguments, message) in [
            (["--route", "nope"], "no route \"nope\""),
            (["--route", "teacher", "--shadow", "2"], "--shadow is a share"),
            (["--route", "teacher", "--threshold", "1.5"], "--threshold is a probability"),
        ] {
            let result = try await RetortBinary.run(
                ["deploy", runFolder.path, "--config", "gateway.yaml"] + arguments, in: workspace.folder)
            #expect(result.exitCode == 64 && result.stderr.contains(message), "\(result)")
        }
        let noRun = try await workspace.retort("deploy", "nowhere", "--config", "gateway.yaml", "--route", "teacher")
        #expect(noRun.exitCode != 0 && noRun.stderr.contains("no report.json"), "\(noRun)")
    }
}

extension Workspace {
    /// Makes a key for ana (team search) and writes `gateway.yaml` with one route, `route`, whose teacher deployment
    /// points at a closed port, so only a deployed student can answer; returns the key.
    func gatewayWithoutTeacher(route: String) async throws -> String {
        let key = try await retort("gateway", "key", "--user", "ana", "--team", "search")
        let lines = key.stdout.split(separator: "\n")
        let token = String(try #require(lines.first { $0.hasPrefix("key ") }?.split(separator: " ").last))
        let hash = try #require(lines.first { $0.contains("sha256:") }?.split(separator: " ").last)
        try write(
            """
            listen: 127.0.0.1:0
            ledger: var/gateway.sqlite
            keys:
              - {sha256: \(hash), user: ana, team: search}
            providers:
              nowhere: {kind: openai, base_url: "http://127.0.0.1:9/v1"}
            routes:
              \(route):
                capture_input: "{{last_user}}"
                deployments:
                  - {provider: nowhere, model: gone-teacher, timeout_s: 2, price: {input_per_mtok: 10, output_per_mtok: 40}}
            retry: {attempts: 1, backoff_ms: 10, max_backoff_ms: 20}
            """, to: "gateway.yaml")
        return token
    }
}

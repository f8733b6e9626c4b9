import Foundation
import RetortTestSupport
import Testing

@Suite struct GatewayCommandTests {
    static let config = """
        ledger: var/gateway.sqlite
        keys:
          - {sha256: 0000000000000000000000000000000000000000000000000000000000000000, user: ana, team: search}
        providers:
          p: {kind: openai, base_url: "http://127.0.0.1:9/v1", api_key_env: P_KEY}
        routes:
          teacher:
            fallback: same-model
            deployments:
              - {provider: p, model: m, price: {input_per_mtok: 1, output_per_mtok: 2}}
        """

    @Test("gateway key prints a key once with the entry that holds only its SHA-256")
    func key() async throws {
        let workspace = Workspace()
        let result = try await workspace.retort("gateway", "key", "--user", "ana", "--team", "search")
        #expect(result.exitCode == 0, "\(result)")
        let token = try #require(result.stdout.split(separator: "\n").first?.split(separator: " ").last)
        #expect(token.hasPrefix("rk-") && token.count == 67)
        let hash = try #require(
            result.stdout.split(separator: "\n").first { $0.contains("sha256:") }?.split(separator: " ").last
        )
        #expect(hash.count == 64 && !result.stdout.contains("sha256: \(token)"))
        try workspace.write(
            GatewayCommandTests.config.replacingOccurrences(of: String(repeating: "0", count: 64), with: String(hash)),
            to: "gateway.yaml"
        )
        let check = try await workspace.retort("gateway", "check", "--config", "gateway.yaml")
        #expect(check.exitCode == 0 && check.stdout.contains("teacher (fallback same-model): p/m"), "\(check)")
    }

    @Test("a bad config, a missing ledger and an unknown session are one-line errors with a non-zero exit")
    func errors() async throws {
        let workspace = Workspace()
        try workspace.write(GatewayCommandTests.config + "\nretires: 3\n", to: "gateway.yaml")
        let bad = try await workspace.retort("gateway", "serve", "--config", "gateway.yaml")
        #expect(bad.exitCode == 65 && !bad.crashed, "\(bad)")
        #expect(bad.stderrLines.count == 1 && bad.stderr.hasPrefix("gateway.yaml:11: error:"), "\(bad)")
        #expect(bad.stderr.contains("retires"), "\(bad)")
        try workspace.write(GatewayCommandTests.config, to: "gateway.yaml")
        let usage = try await workspace.retort("usage", "--config", "gateway.yaml")
        #expect(usage.exitCode == 66 && usage.stderr.contains("no ledger yet"), "\(usage)")
        let by = try await workspace.retort("usage", "--config", "gateway.yaml", "--by", "planet")
        #expect(by.exitCode == 64, "\(by)")
        let confirm = try await workspace.retort("gateway", "confirm", "nope", "--config", "gateway.yaml")
        #expect(confirm.exitCode == 64 && confirm.stderr.contains("no session nope has tripped"), "\(confirm)")
    }

    @Test("gateway bench measures a rate through a gateway process and says what the processes and the machine used")
    func bench() async throws {
        let workspace = Workspace()
        let result = try await workspace.retort(
            "gateway", "bench", "--rates", "40", "--seconds", "1", "--ledger", "sqlite", "--out", "bench")
        #expect(result.exitCode == 0, "\(result)")
        let header = try #require(result.stdout.split(separator: "\n").first { $0.hasPrefix("| ledger |") })
        let cores = ProcessInfo.processInfo.activeProcessorCount
        #expect(
            header.hasSuffix("| gateway cores | generator + provider cores | machine busy (\(cores) cores) |"),
            "\(result)")
        let row = try #require(
            result.stdout.split(separator: "\n").first { $0.hasPrefix("| SQLite, 1 replica | 40 |") })
        let cells = row.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
        try #require(cells.count == 14, "\(row)")
        #expect(cells[2] == "40" && cells[9] == "0" && cells[10] == "40", "\(row)")
        let gateway = try #require(Double(cells[11]), "\(row)")
        let generator = try #require(Double(cells[12]), "\(row)")
        let busy = try #require(Double(cells[13].dropLast()), "\(row)")
        #expect(gateway >= 0 && generator >= 0 && busy > 0 && busy <= 100, "\(row)")
    }
}

@Suite struct TeacherDataCommandTests {
    @Test("a task whose rows come from two teacher models says so in frontier.md and report.json")
    func mixedTeachers() async throws {
        var train = SyntheticTasks.numericRows(count: 300, seed: 11, idPrefix: "tr")
        for index in train.indices {
            var teacher = train[index]["teacher"] as? [String: Any] ?? [:]
            teacher["model"] = index % 3 == 0 ? "model-b" : "model-a"
            train[index]["teacher"] = teacher
        }
        let workspace = try Workspace(
            taskName: "mixed", kind: .numeric, train: train,
            validation: SyntheticTasks.numericRows(count: 150, seed: 12, idPrefix: "va"),
            test: SyntheticTasks.numericRows(count: 150, seed: 13, idPrefix: "te"))
        let result = try await workspace.retort("search", "--task", "mixed", "--no-history")
        #expect(result.exitCode == 0, "\(result)")
        let run = try workspace.runFolder(job: "mixed")
        let frontier = try String(contentsOf: run.appendingPathComponent("frontier.md"), encoding: .utf8)
        #expect(frontier.contains("**The teacher rows come from 2 models**: model-a (200 rows), model-b (100 rows)"))
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: run.appendingPathComponent("report.json")))
        let teacher = (report as? [String: Any])?["teacher"] as? [String: Any]
        #expect((teacher?["models"] as? [String: Int]) == ["model-a": 200, "model-b": 100])
    }

    @Test("retort ingest openai-log turns request/response pairs and batch output into teacher rows")
    func ingestLogs() async throws {
        let workspace = Workspace()
        try workspace.write("refund_request\norder_status\n", to: "labels.txt")
        func completion(_ answer: String, model: String, logprobs: Bool) -> String {
            let top =
                logprobs
                ? #","logprobs":{"content":[{"token":"refund","logprob":-0.2,"top_logprobs":[{"token":"refund","logprob":-0.2},{"token":"order","logprob":-1.8}]}]}"#
                : ""
            return
                #"{"model":"\#(model)","choices":[{"index":0,"message":{"role":"assistant","content":"\#(answer)"}\#(top)}],"usage":{"prompt_tokens":40,"completion_tokens":2}}"#
        }
        let request =
            #"{"model":"gpt-x","messages":[{"role":"system","content":"Classify"},{"role":"user","content":"where is my money back"}]}"#
        try [
            #"{"request":\#(request),"response":\#(completion("refund_request", model: "gpt-x-1", logprobs: true))}"#,
            #"{"request":\#(request),"response":\#(completion("I cannot tell", model: "gpt-x-1", logprobs: false))}"#,
        ].joined(separator: "\n").write(to: workspace.url("log.jsonl"), atomically: true, encoding: .utf8)
        let pairs = try await workspace.retort(
            "ingest", "openai-log", "log.jsonl", "--labels", "labels.txt", "--out", "rows.jsonl")
        #expect(
            pairs.exitCode == 0 && pairs.stdout.contains("wrote 1 rows")
                && pairs.stdout.contains("1 answers not in the label set"), "\(pairs)")
        let row = try workspace.text("rows.jsonl")
        #expect(row.contains(#""input":"where is my money back""#) && row.contains(#""model":"gpt-x-1""#))
        #expect(row.contains(#""logprobs":{"order_status":-1.8,"refund_request":-0.2}"#), "\(row)")
        #expect(workspace.exists("rows.rejected.jsonl"))
        try #"{"custom_id":"q-1","method":"POST","url":"/v1/chat/completions","body":\#(request)}"#
            .write(to: workspace.url("batch-in.jsonl"), atomically: true, encoding: .utf8)
        try [
            #"{"id":"b1","custom_id":"q-1","response":{"status_code":200,"body":\#(completion("order_status", model: "gpt-x-2", logprobs: false))},"error":null}"#
        ].joined(separator: "\n").write(to: workspace.url("batch-out.jsonl"), atomically: true, encoding: .utf8)
        let noRequests = try await workspace.retort(
            "ingest", "openai-log", "batch-out.jsonl", "--labels", "labels.txt", "--out", "b.jsonl")
        #expect(noRequests.exitCode == 65 && noRequests.stderr.hasPrefix("batch-out.jsonl:1: error:"), "\(noRequests)")
        let batch = try await workspace.retort(
            "ingest", "openai-log", "batch-out.jsonl", "--requests", "batch-in.jsonl", "--labels", "labels.txt",
            "--out", "b.jsonl")
        #expect(batch.exitCode == 0, "\(batch)")
        #expect(try workspace.text("b.jsonl").contains(#""id":"q-1""#))
    }

    @Test("retort ingest openai-log --schema keeps JSON answers the schema admits, with their tokens' logprobs")
    func ingestStructuredLogs() async throws {
        let workspace = Workspace()
        try
            #"{"type": "object", "properties": {"intent": {"enum": ["HassTurnOn", "HassTurnOff"]}, "name": {"type": "string"}}, "required": ["intent"]}"#
            .write(to: workspace.url("schema.json"), atomically: true, encoding: .utf8)
        let tokens =
            #","logprobs":{"content":[{"token":"{\"","logprob":-0.01,"top_logprobs":[{"token":"{\"","logprob":-0.01}]},"#
            + #"{"token":"intent","logprob":-0.3,"top_logprobs":[{"token":"intent","logprob":-0.3},{"token":"name","logprob":-1.4}]}]}"#
        func line(_ answer: String, logprobs: String = "") -> String {
            let request = #"{"model":"gpt-x","messages":[{"role":"user","content":"turn on the lamp"}]}"#
            return #"{"request":\#(request),"response":{"model":"gpt-x-1","choices":[{"index":0,"message":{"#
                + #""role":"assistant","content":"\#(answer)"}\#(logprobs)}],"usage":{"prompt_tokens":12,"completion_tokens":9}}}"#
        }
        try [
            line(#"{\"intent\":\"HassTurnOn\",\"name\":\"lamp\"}"#, logprobs: tokens),
            line(#"{\"intent\":\"HassDance\"}"#),
            line("Sure! Turning it on."),
        ].joined(separator: "\n").write(to: workspace.url("log.jsonl"), atomically: true, encoding: .utf8)
        let result = try await workspace.retort(
            "ingest", "openai-log", "log.jsonl", "--schema", "schema.json", "--out", "rows.jsonl")
        #expect(result.exitCode == 0, "\(result)")
        #expect(
            result.stdout.contains("wrote 1 rows")
                && result.stdout.contains("2 answers not a JSON object the schema admits"),
            "\(result)")
        let row = try #require(
            try JSONSerialization.jsonObject(with: Data(workspace.text("rows.jsonl").utf8)) as? [String: Any])
        let teacher = try #require(row["teacher"] as? [String: Any])
        #expect(teacher["text"] as? String == #"{"intent":"HassTurnOn","name":"lamp"}"#, "\(teacher)")
        #expect(teacher["label"] == nil && teacher["model"] as? String == "gpt-x-1")
        let kept = try #require(teacher["tokens"] as? [[String: Any]])
        #expect(kept.count == 2 && kept[1]["token"] as? String == "intent", "\(kept)")
        #expect((kept[1]["top_logprobs"] as? [[String: Any]])?.count == 2)
        #expect(try workspace.text("rows.rejected.jsonl").split(separator: "\n").count == 2)
        let inferred = try await workspace.retort(
            "ingest", "openai-log", "log.jsonl", "--structured", "--out", "any.jsonl")
        #expect(inferred.exitCode == 0 && inferred.stdout.contains("wrote 2 rows"), "any flat object: \(inferred)")
        let both = try await workspace.retort(
            "ingest", "openai-log", "log.jsonl", "--structured", "--labels", "labels.txt", "--out", "x.jsonl")
        #expect(
            both.exitCode == 64 && both.stderr.contains("give one of --labels, --schema and --structured"), "\(both)")
    }
}

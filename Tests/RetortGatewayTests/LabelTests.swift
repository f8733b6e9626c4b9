import Foundation
import NIOCore
import RetortData
import RetortTestSupport
import Testing

@testable import RetortGateway
@testable import RetortGatewayTesting
@testable import RetortLabeling
@testable import RetortTeacher

/// A folder with a gateway config over the loopback provider on `port`, a prompt and an inputs file.
struct LabelWorkspace {
    let folder: URL
    let labels = ["order_status", "refund_request", "cancel_order", "shipping_address"]

    init(port: Int, keyBudget: String = "") throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("retort-label-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        // A generous timeout: the loopback provider runs in this (possibly starved) test process.
        let price = "timeout_s: 600, price: {input_per_mtok: 10, output_per_mtok: 40}"
        try """
        ledger: var/gateway.sqlite
        keys:
          - {sha256: \(Gateway.hash(token: "rk-label")), user: labeller, team: data\(keyBudget)}
        providers:
          o: {kind: openai, base_url: "http://127.0.0.1:\(port)/v1"}
          a: {kind: anthropic, base_url: "http://127.0.0.1:\(port)"}
        routes:
          teacher:
            deployments:
              - {provider: o, model: intent-v1, \(price)}
              - {provider: o, model: ok, \(price)}
          claude:
            deployments:
              - {provider: a, model: intent-claude, \(price)}
          limited:
            deployments:
              - {provider: o, model: intent-r429, \(price)}
        retry: {attempts: 2, backoff_ms: 5, max_backoff_ms: 50}
        """.write(to: folder.appendingPathComponent("gateway.yaml"), atomically: true, encoding: .utf8)
        try """
        system: "You route messages from a shop's support inbox. Answer with exactly one label from the list."
        user: "Labels: {{labels}}\\nMessage: {{input}}\\nLabel:"
        labels: [\(labels.joined(separator: ", "))]
        max_tokens: 8
        temperature: 0
        top_logprobs: 3
        """.write(to: folder.appendingPathComponent("prompt.yaml"), atomically: true, encoding: .utf8)
    }

    func path(_ name: String) -> String { folder.appendingPathComponent(name).path }

    /// `count` generated inputs (ids i-0…), each naming one intent's words.
    func writeInputs(_ count: Int, name: String = "inputs.jsonl") throws {
        let templates = [
            "where is my order, what is its status", "I want a refund for this request", "please cancel my order now",
            "change the shipping address of my parcel",
        ]
        let lines = (0..<count).map { index in
            JSON(
                dictionaryLiteral: ("id", .string("i-\(index)")),
                ("input", .string("\(templates[index % 4]) #\(index)"))
            )
            .text
        }
        try (lines.joined(separator: "\n") + "\n").write(toFile: path(name), atomically: true, encoding: .utf8)
    }

    func config() throws -> GatewayConfig { try GatewayConfig.load(path("gateway.yaml")) }

    func run(
        route: String = "teacher", samples: Int? = nil, quote: Bool = false, keyUser: String? = nil,
        inputs: String = "inputs.jsonl", batch: Bool = false, batchTimeout: Double = 60
    ) async throws -> Labeler.Summary {
        var options = Labeler.Options(
            route: route, promptPath: path("prompt.yaml"), inputsPath: path(inputs), outPath: path("train.jsonl"))
        options.samples = samples
        options.quote = quote
        options.keyUser = keyUser
        options.batch = batch
        options.batchPollSeconds = 0.05
        options.batchTimeoutSeconds = batchTimeout
        return try await Labeler(config: try config(), configPath: path("gateway.yaml"), options: options).run()
    }

    func rows() throws -> [JSON] {
        try String(contentsOfFile: path("train.jsonl"), encoding: .utf8).split(separator: "\n").map {
            try JSON.parse(String($0))
        }
    }
}

@Suite struct LabelTests {
    @Test func logprobTokensBecomeLabelLogprobs() throws {
        let labels = ["order_status", "refund_request", "cancel_order"]
        let exact = LabelMatcher.logprobs(
            [("Refund_request", -0.2), (" order_status", -1.9), ("hello", -3)], labels: labels)
        #expect(exact == ["refund_request": -0.2, "order_status": -1.9])
        // A token that starts one label counts for it; two tokens for one label are summed.
        let prefix = try #require(
            LabelMatcher.logprobs([("ref", -0.5), ("refund", -1.0), ("can", -2)], labels: labels))
        #expect(
            approximatelyEqual(
                (prefix["refund_request"] ?? 0), Foundation.log(Foundation.exp(-0.5) + Foundation.exp(-1.0)),
                within: 1e-12))
        #expect(prefix["cancel_order"] == -2)
        // "order" starts order_status only… but "o" would start two labels' normalised forms? No: only order_status.
        #expect(LabelMatcher.logprobs([("c", -0.1)], labels: ["cancel_order", "change_address"]) == nil)
        #expect(LabelMatcher.label(for: "  Refund_Request.\n", in: labels) == "refund_request")
        #expect(LabelMatcher.label(for: "refund please", in: labels) == nil)
    }

    @Test func badPromptsAreLocated() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("retort-prompt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        func message(_ yaml: String) -> String {
            let file = folder.appendingPathComponent("p.yaml").path
            try? yaml.write(toFile: file, atomically: true, encoding: .utf8)
            do {
                _ = try LabelPrompt.load(file)
                return "no error"
            } catch {
                return error.description
            }
        }
        #expect(message("user: \"{{input}} {{labels}}\"\nlabels: [a, b]") == "no error")
        #expect(message("user: \"{{input}} {{label}}\"\nlabels: [a, b]").contains("p.yaml:1"))
        #expect(message("user: \"{{input}} {{label}}\"\nlabels: [a, b]").contains("unknown placeholder {{label}}"))
        #expect(message("user: \"{{labels}}\"\nlabels: [a, b]").contains("never uses {{input}}"))
        #expect(message("user: \"{{input}}\"\nlabels: [Refund, refund.]").contains("the same after normalising"))
        #expect(message("user: \"{{input}}\"\nlabels: [a, b]\nmax_token: 3").contains("p.yaml:3"))
        #expect(message("user: \"{{input}}\"").contains("labels: [...] or labels_file"))
    }

    @Test func labelsWithLogprobsAndPaysEachAnswerOnce() async throws {
        try await withFakeProvider { port, calls, _ in
            let workspace = try LabelWorkspace(port: port)
            try workspace.writeInputs(12)
            let first = try await workspace.run()
            #expect(first.labelled == 12 && first.paidCalls == 12 && first.cacheHits == 0 && first.logprobRows == 12)
            let rows = try workspace.rows()
            #expect(rows.count == 12)
            let row = rows[1]
            #expect(row["id"]?.string == "i-1" && row["teacher"]?["label"]?.string == "refund_request")
            #expect(row["teacher"]?["model"]?.string == "intent-v1")
            // The logprobs are the classifier's own distribution over the top three labels.
            let expected = IntentClassifier.distribution(
                message: "I want a refund for this request #1", labels: workspace.labels)
            for entry in expected.prefix(3) {
                let logprob = try #require(row["teacher"]?["logprobs"]?[entry.label]?.double)
                #expect(approximatelyEqual(Foundation.exp(logprob), entry.probability, within: 1e-9))
            }
            // A second run, and a longer file, pay only for what is new.
            let second = try await workspace.run()
            #expect(second.paidCalls == 0 && second.cacheHits == 12)
            try workspace.writeInputs(20)
            let third = try await workspace.run()
            #expect(third.paidCalls == 8 && third.cacheHits == 12)
            #expect(await calls.count("intent-v1") == 20)
            // Every paid call is in the ledger, once.
            let ledger = try Ledger(path: workspace.path("var/gateway.sqlite"))
            #expect(try ledger.rows().filter { $0.route == "teacher" }.count == 20)
        }
    }

    @Test func withoutLogprobsSamplesOrSaysItIsHard() async throws {
        try await withFakeProvider { port, calls, _ in
            let workspace = try LabelWorkspace(port: port)
            try workspace.writeInputs(6)
            let hard = try await workspace.run(route: "claude")
            #expect(hard.hardRows == 6 && hard.logprobRows == 0)
            #expect(
                try workspace.rows().allSatisfy { $0["teacher"]?["logprobs"] == nil && $0["teacher"]?["probs"] == nil })
            let soft = try await workspace.run(route: "claude", samples: 5)
            #expect(soft.labelled == 6 && soft.paidCalls == 30)
            for row in try workspace.rows() {
                let probs = try #require(row["teacher"]?["probs"]?.object)
                let total = probs.values.compactMap(\.double).reduce(0, +)
                #expect(approximatelyEqual(total, 1, within: 1e-12))
                #expect(probs.values.allSatisfy { (($0.double ?? 0) * 5).rounded() == ($0.double ?? 0) * 5 })
            }
            #expect(await calls.count("intent-claude") == 36)
            // Sampled answers are cached per sample index too.
            let again = try await workspace.run(route: "claude", samples: 5)
            #expect(again.paidCalls == 0 && again.cacheHits == 30)
        }
    }

    @Test(arguments: ["teacher", "claude"])
    func batchRoundTripResumesAfterAStop(route: String) async throws {
        try await withFakeProvider { port, calls, _ in
            let workspace = try LabelWorkspace(port: port)
            try workspace.writeInputs(30)
            // Stop before the batch completes (the provider completes it on the second poll)…
            await #expect {
                _ = try await workspace.run(route: route, batch: true, batchTimeout: 0)
            } throws: { error in "\(error)".contains("run the same command again to resume it") }
            #expect(!FileManager.default.fileExists(atPath: workspace.path("train.jsonl")))
            // …and resume: the same batch is polled, nothing is submitted or paid twice.
            let resumed = try await workspace.run(route: route, batch: true)
            #expect(resumed.labelled == 30 && resumed.paidCalls == 0 && resumed.cacheHits == 30)
            let model = route == "teacher" ? "intent-v1" : "intent-claude"
            #expect(await calls.count(model) == 30)
            let rows = try workspace.rows()
            #expect(rows.count == 30 && rows[2]["teacher"]?["label"]?.string == "cancel_order")
            #expect((rows[0]["teacher"]?["logprobs"] != nil) == (route == "teacher"))
            // Paid at the batch discount, in the ledger once per request.
            let ledger = try Ledger(path: workspace.path("var/gateway.sqlite"))
            let batchRows = try ledger.rows().filter { $0.session.hasPrefix("batch-") }
            #expect(batchRows.count == 30)
            let full = try #require(batchRows.first)
            #expect(
                approximatelyEqual(full.costUSD, Price(input: 10, output: 40).cost(of: full.usage) * 0.5, within: 1e-12)
            )
        }
    }

    @Test func rateLimitsSlowTheRunDownInsteadOfFailingIt() async throws {
        try await withFakeProvider { port, calls, _ in
            let workspace = try LabelWorkspace(port: port)
            try workspace.writeInputs(10)
            // The provider answers 429 three times; retry.attempts is 2, yet the run finishes with fewer workers.
            let summary = try await workspace.run(route: "limited")
            #expect(summary.labelled == 10 && summary.rateLimited == 3 && summary.finalConcurrency == 1)
            #expect(await calls.count("intent-r429") == 13)
        }
    }

    @Test func quoteIsWithinTenPercentOfTheBill() async throws {
        try await withFakeProvider { port, _, _ in
            let workspace = try LabelWorkspace(port: port)
            try workspace.writeInputs(200)
            let quote = try await workspace.run(quote: true)
            let line = try #require(quote.quote)
            #expect(line.hasPrefix("projected: $") && line.contains("for 200 rows (batch: $"))
            let projected = try #require(Double(line.dropFirst("projected: $".count).prefix { $0 != " " }))
            let full = try await workspace.run()
            #expect(full.paidCalls == 180 && full.cacheHits == 20)
            #expect(abs(projected - full.answersUSD) / full.answersUSD < 0.10, "\(projected) vs \(full.answersUSD)")
        }
    }

    @Test func budgetStopsTheRunWithFiguresAndWhatWasDone() async throws {
        try await withFakeProvider { port, _, _ in
            let workspace = try LabelWorkspace(port: port, keyBudget: ", budgets: {usd_per_day: 0.01}")
            try workspace.writeInputs(40)
            await #expect {
                _ = try await workspace.run(keyUser: "labeller")
            } throws: { error in
                let text = "\(error)"
                return text.contains("key of labeller usd_per_day: limit $0.01")
                    && text.contains("of 40 rows are answered and cached")
            }
            #expect(!FileManager.default.fileExists(atPath: workspace.path("train.jsonl")))
        }
    }
}

@Suite struct CaptureTests {
    @Test func capturedTrafficBecomesATaskFolderThatLoads() async throws {
        let price = "price: {input_per_mtok: 10, output_per_mtok: 40}"
        let routes = """
              teacher:
                capture: support-intents
                deployments:
                  - {provider: fake-openai, model: intent-v1, \(price)}
              teacher-b:
                capture: support-intents
                deployments:
                  - {provider: fake-openai, model: intent-v2, \(price)}
            """
        try await withGateway(routes: routes) { client, gateway, _, _ in
            let templates = [
                "where is my order status", "I want a refund request", "cancel my order please", "other question",
            ]
            for index in 0..<80 {
                let message = "\(templates[index % 4]) \(index)"
                var body: JSON = [
                    "model": index % 20 == 19 ? "teacher-b" : "teacher",
                    "messages": [
                        ["role": "system", "content": "Classify."],
                        [
                            "role": "user",
                            "content": .string(
                                "Labels: order_status, refund_request, cancel_order, other\nMessage: \(message)"),
                        ],
                    ],
                    "logprobs": true, "top_logprobs": 3,
                ]
                if index % 10 == 5 { body["stream"] = true }
                let response = try await client.chat(ByteBuffer(data: body.data))
                #expect(response.status == .ok)
            }
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
                "retort-capture-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let labelsPath = folder.appendingPathComponent("labels.txt").path
            try "order_status\nrefund_request\ncancel_order\n".write(
                toFile: labelsPath, atomically: true, encoding: .utf8)
            let out = folder.appendingPathComponent("task").path
            let summary = try CaptureExport(config: gateway.config, task: "support-intents", labelsPath: labelsPath)
                .write(to: out)
            #expect(summary.captured == 80 && summary.otherModel == 4 && summary.model == "intent-v1")
            // "other question" rows answer "other", which is not in labels.txt: 20 of them, 4 of which teacher-b served
            // (counted as another model's, not as rejected).
            #expect(summary.rejected == 16)
            #expect(summary.train + summary.validation + summary.test == 60)
            #expect(summary.withLogprobs == 60)
            let task = try TaskData.load(Job(task: URL(fileURLWithPath: out)))
            #expect(task.train.count == summary.train && task.test.count == summary.test)
            let taskJSON = try JSON.parse(Data(contentsOf: URL(fileURLWithPath: out + "/task.json")))
            #expect(taskJSON["teacher"]?["name"]?.string == "intent-v1")
            #expect((taskJSON["teacher"]?["cost_per_1k_requests_usd"]?.double ?? 0) > 0)
            let rejected = try String(contentsOfFile: out + "/rejected.jsonl", encoding: .utf8)
            #expect(rejected.split(separator: "\n").count == 16 && rejected.contains("\"answer\":\"other\""))
            // The split is a function of the id alone.
            #expect(CaptureExport.split(of: "cap-1") == CaptureExport.split(of: "cap-1"))
        }
    }
}

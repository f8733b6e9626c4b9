import Foundation
import NIOCore
import RetortData
import RetortTestSupport
import Testing

@testable import RetortGateway
@testable import RetortGatewayTesting
@testable import RetortLabeling
@testable import RetortTeacher

/// Scripted structured answers: home-automation commands and the text the teacher answers each with (a `replay`
/// model of the loopback provider answers a user message with its recorded text).
enum HomeAnswers {
    static let schema = """
        {"type": "object", "properties": {"intent": {"type": "string", "enum": ["TurnOn", "TurnOff", "SetBrightness"]},
        "area": {"type": "string"}, "brightness": {"type": "integer"}}, "required": ["intent"]}
        """

    /// What one input is answered with, and whether that answer is a valid row under ``schema``.
    struct Item {
        var input: String
        var answer: String
        var valid: Bool
        /// A flat JSON object (valid or not under the schema).
        var flat: Bool
    }

    /// `count` items: every 7th answer is a sentence (no JSON), every 11th names an intent outside the enum (a flat
    /// object the schema does not admit); the rest are valid, spelled in varying ways.
    static func items(_ count: Int) -> [Item] {
        let areas = ["kitchen", "bedroom", "office", "garage"]
        return (0..<count).map { index in
            let area = areas[index % areas.count]
            if index % 7 == 3 {
                return Item(
                    input: "lights in the \(area) please #\(index)", answer: "Sure! I will turn them on.", valid: false,
                    flat: false)
            }
            if index % 11 == 5 {
                return Item(
                    input: "open the \(area) blinds #\(index)", answer: #"{"intent": "OpenCover", "area": "\#(area)"}"#,
                    valid: false, flat: true)
            }
            switch index % 3 {
            case 0:
                return Item(
                    input: "turn on the \(area) light #\(index)", answer: #"{"intent":"TurnOn","area":"\#(area)"}"#,
                    valid: true, flat: true)
            case 1:
                return Item(
                    input: "turn off the \(area) lights #\(index)",
                    answer: #"{ "area": "\#(area)", "intent": "TurnOff", "brightness": null }"#, valid: true, flat: true
                )
            default:
                let level = (index % 10 + 1) * 10
                return Item(
                    input: "set the \(area) light to \(level) percent #\(index)",
                    answer: #"{"intent": "SetBrightness", "area": "\#(area)", "brightness": \#(level).0}"#, valid: true,
                    flat: true)
            }
        }
    }

    /// The replay table: input → answer.
    static func replay(_ items: [Item]) -> [String: String] {
        Dictionary(uniqueKeysWithValues: items.map { ($0.input, $0.answer) })
    }
}

/// A folder with a gateway config over the loopback provider (OpenAI `replay-json`, Anthropic `replay-claude`), a
/// structured prompt, a schema file and inputs.
struct StructuredLabelWorkspace {
    let folder: URL
    let items: [HomeAnswers.Item]

    init(port: Int, count: Int = 24) throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("retort-slabel-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        items = HomeAnswers.items(count)
        let price = "timeout_s: 600, price: {input_per_mtok: 10, output_per_mtok: 40}"
        try write(
            "gateway.yaml",
            """
            ledger: var/gateway.sqlite
            keys:
              - {sha256: \(Gateway.hash(token: "rk-label")), user: labeller, team: data}
            providers:
              o: {kind: openai, base_url: "http://127.0.0.1:\(port)/v1"}
              a: {kind: anthropic, base_url: "http://127.0.0.1:\(port)"}
            routes:
              json:
                deployments:
                  - {provider: o, model: replay-json, \(price)}
              claude:
                deployments:
                  - {provider: a, model: replay-claude, \(price)}
            retry: {attempts: 2, backoff_ms: 5, max_backoff_ms: 50}
            """)
        try write("schema.json", HomeAnswers.schema)
        try write(
            "prompt.yaml",
            """
            system: "Answer with one JSON object under this schema: {{schema}}"
            user: "{{input}}"
            schema_file: schema.json
            max_tokens: 64
            temperature: 0
            top_logprobs: 2
            """)
        // Every third row has a gold object.
        let lines = items.enumerated().map { index, item in
            var row: JSON = ["id": .string("h-\(index)"), "input": .string(item.input)]
            if index % 3 == 0, item.valid, let gold = try? JSON.parse(item.answer) { row["gold"] = gold }
            return row.text
        }
        try write("inputs.jsonl", lines.joined(separator: "\n") + "\n")
    }

    func path(_ name: String) -> String { folder.appendingPathComponent(name).path }

    func write(_ name: String, _ text: String) throws {
        try text.write(toFile: path(name), atomically: true, encoding: .utf8)
    }

    func run(route: String = "json", prompt: String = "prompt.yaml", out: String = "train.jsonl", samples: Int? = nil)
        async throws -> Labeler.Summary
    {
        var options = Labeler.Options(
            route: route, promptPath: path(prompt), inputsPath: path("inputs.jsonl"), outPath: path(out))
        options.samples = samples
        let config = try GatewayConfig.load(path("gateway.yaml"))
        return try await Labeler(config: config, configPath: path("gateway.yaml"), options: options).run()
    }

    func lines(_ name: String) throws -> [JSON] {
        try String(contentsOfFile: path(name), encoding: .utf8).split(separator: "\n").map {
            try JSON.parse(String($0))
        }
    }
}

@Suite struct StructuredLabelTests {
    @Test("a structured prompt: response_format sent, valid objects become rows that load, the rest are rejected")
    func labelsJSONAnswers() async throws {
        let items = HomeAnswers.items(24)
        let calls = CallCounter()
        let bodies = BodyLog()
        let router = LoopbackProvider.router(calls: calls, bodies: bodies, replay: HomeAnswers.replay(items))
        try await withLoopbackServer(router) { port in
            let workspace = try StructuredLabelWorkspace(port: port)
            let summary = try await workspace.run()
            let valid = items.filter(\.valid).count
            #expect(summary.structured)
            #expect(summary.labelled == valid && summary.rejected == items.count - valid)
            #expect(summary.rejected == 5, "3 sentences and 2 objects outside the schema")
            #expect(summary.paidCalls == items.count && summary.logprobRows == valid)
            #expect(summary.schemaInPromptOnly.isEmpty)
            let printed = summary.lines(out: "train.jsonl", samples: nil)
            #expect(printed[0].contains("JSON answers valid under the schema, teacher.tokens on every row"))
            #expect(printed.contains { $0.hasPrefix("5 rows answered with no valid JSON object under the schema") })

            // The request: the schema in response_format and, compact, in the system message.
            let body = try #require(await bodies.last)
            let format = try #require(body["response_format"])
            #expect(format["type"]?.string == "json_schema")
            #expect(format["json_schema"]?["name"]?.string == "answer")
            #expect(format["json_schema"]?["strict"]?.bool == false, "not every property is required: not strict")
            let sent = try #require(format["json_schema"]?["schema"])
            #expect(sent["properties"]?["intent"]?["enum"]?.array?.count == 3)
            #expect(sent["required"] == ["intent"])
            let system = try #require(body["messages"]?[0]?["content"]?.string)
            #expect(system.contains(#"{"properties":{"area":{"type":"string"}"#), "the compact schema: \(system)")
            #expect(!system.contains("{{schema}}"))

            // The rows: teacher.text as answered, tokens, gold objects; the rejected answers beside them.
            let rows = try workspace.lines("train.jsonl")
            #expect(rows.count == valid)
            let byID = Dictionary(uniqueKeysWithValues: rows.compactMap { row in row["id"]?.string.map { ($0, row) } })
            for (index, item) in items.enumerated() where item.valid {
                let row = try #require(byID["h-\(index)"])
                #expect(row["teacher"]?["text"]?.string == item.answer)
                #expect(row["teacher"]?["model"]?.string == "replay-json")
                #expect(row["teacher"]?["tokens"]?[0]?["token"]?.string == item.answer)
                #expect(row["teacher"]?["tokens"]?[0]?["top_logprobs"]?.array?.isEmpty == false)
                #expect(row["teacher"]?["label"] == nil)
                #expect((row["gold"] != nil) == (index % 3 == 0))
            }
            let rejected = try workspace.lines("train.rejected.jsonl")
            #expect(
                Set(rejected.compactMap { $0["id"]?.string })
                    == Set(
                        items.indices.filter { !items[$0].valid }.map {
                            "h-\($0)"
                        }))
            #expect(rejected.contains { $0["answer"]?.string == "Sure! I will turn them on." })

            // The rows make a structured task that loads (so `retort search` runs on them).
            let task = workspace.folder.appendingPathComponent("task")
            try FileManager.default.createDirectory(at: task, withIntermediateDirectories: true)
            for split in ["train", "validation", "test"] {
                try FileManager.default.copyItem(
                    atPath: workspace.path("train.jsonl"), toPath: task.appendingPathComponent("\(split).jsonl").path)
            }
            try #"{"name": "home", "kind": "structured", "schema": \#(HomeAnswers.schema)}"#.write(
                to: task.appendingPathComponent("task.json"), atomically: true, encoding: .utf8)
            let loaded = try StructuredTaskData.load(folder: task)
            #expect(loaded.train.count == valid && loaded.train.invalidTeacherRows == 0)
            #expect(
                loaded.train.gold.compactMap { $0 }.count
                    == items.indices.filter { $0 % 3 == 0 && items[$0].valid }
                    .count)
            #expect(loaded.train.teacher.allSatisfy { $0.map(loaded.schema.isValid) == true })

            // A second run pays for nothing.
            let again = try await workspace.run()
            #expect(again.paidCalls == 0 && again.cacheHits == items.count)
            #expect(await calls.count("replay-json") == items.count)
        }
    }

    @Test("an Anthropic deployment gets the schema in the prompt only, and the summary says so once")
    func anthropicGetsThePromptOnly() async throws {
        let items = HomeAnswers.items(8)
        let bodies = BodyLog()
        let router = LoopbackProvider.router(calls: CallCounter(), bodies: bodies, replay: HomeAnswers.replay(items))
        try await withLoopbackServer(router) { port in
            let workspace = try StructuredLabelWorkspace(port: port, count: 8)
            let summary = try await workspace.run(route: "claude")
            #expect(summary.labelled == items.filter(\.valid).count)
            #expect(summary.schemaInPromptOnly == ["a/replay-claude"])
            #expect(summary.logprobRows == 0)
            let printed = summary.lines(out: "train.jsonl", samples: nil)
            #expect(printed.filter { $0.contains("take no response_format") }.count == 1)
            #expect(
                printed.contains {
                    $0.hasPrefix("a/replay-claude take no response_format") && $0.hasSuffix("({{schema}})")
                })
            let body = try #require(await bodies.last)
            #expect(body["response_format"] == nil, "the Anthropic body carries no response_format")
            #expect(body["system"]?.string?.contains(#""enum":["TurnOn","TurnOff","SetBrightness"]"#) == true)
            // Without {{schema}} in the prompt, the summary says to add it.
            try workspace.write("bare.yaml", "user: \"{{input}}\"\nschema_file: schema.json\n")
            let bare = try await workspace.run(route: "claude", prompt: "bare.yaml", out: "bare.jsonl")
            #expect(bare.lines(out: "bare.jsonl", samples: nil).contains { $0.hasSuffix("add it to the prompt") })
        }
    }

    @Test("structured prompt errors are located: both kinds, {{labels}}, a bad schema inline or in its file")
    func structuredPromptErrors() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
            "retort-sprompt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let file = folder.appendingPathComponent("p.yaml").path
        func message(_ yaml: String) -> String {
            try? yaml.write(toFile: file, atomically: true, encoding: .utf8)
            do {
                _ = try LabelPrompt.load(file)
                return "no error"
            } catch {
                return error.description
            }
        }
        let inline =
            "schema:\n  type: object\n  properties:\n    intent: {type: string, enum: [a, b]}\n    n: {type: integer, description: a/b}\n"
        #expect(message("user: \"{{input}} {{schema}}\"\n" + inline) == "no error")
        let prompt = try LabelPrompt.load(file)
        let schema = try #require(prompt.schema)
        #expect(
            schema.text
                == #"{"properties":{"intent":{"enum":["a","b"],"type":"string"},"n":{"description":"a/b","type":"integer"}},"type":"object"}"#
        )
        #expect(prompt.maxTokens == 256 && prompt.labels.isEmpty)
        #expect(schema.checked.isValid(try #require(StructuredAnswer.parse(text: #"{"intent": "a", "n": 3}"#))))
        #expect(!schema.checked.isValid(try #require(StructuredAnswer.parse(text: #"{"intent": "c"}"#))))
        let request = prompt.request(route: "r", input: "hi", id: "1", sampling: false)
        #expect(request["messages"]?[0]?["content"]?.string == "hi " + schema.text)

        // Both kinds: at the second key's line.
        let both = message("user: \"{{input}}\"\nlabels: [a, b]\nschema: {type: object, properties: {x: {}}}\n")
        #expect(both.contains("p.yaml:3") && both.contains("exactly one of labels, labels_file"), "\(both)")
        #expect(message("user: \"{{input}}\"\nschema_file: s.json\nschema: {}\n").contains("exactly one of"))
        // {{labels}} in a structured prompt, {{schema}} in a label prompt.
        let labels = message("user: \"{{input}} {{labels}}\"\n" + inline)
        #expect(labels.contains("p.yaml:1") && labels.contains("a structured prompt has a schema, not labels"))
        #expect(message("user: \"{{input}} {{schema}}\"\nlabels: [a, b]").contains("give schema: or schema_file:"))
        // A schema the §9 subset refuses: at the schema: line, naming the key.
        let badType = message("user: \"{{input}}\"\nmax_tokens: 9\nschema:\n  properties:\n    n: {type: date}\n")
        #expect(badType.contains("p.yaml:4") && badType.contains("schema.properties.n.type"), "\(badType)")
        #expect(message("user: \"{{input}}\"\nschema: [a, b]\n").contains("must be a JSON object"))
        #expect(
            message("user: \"{{input}}\"\nschema: {properties: {n: {type: number, enum: [.nan]}}}\n").contains(
                "p.yaml:2"))
        // A schema file: missing (at the key's line), not JSON or refused (at the file).
        let missing = message("user: \"{{input}}\"\nschema_file: nowhere.json\n")
        #expect(missing.contains("p.yaml:2") && missing.contains("cannot read the schema file"))
        let schemaFile = folder.appendingPathComponent("s.json").path
        try "{\"type\": \"object\",".write(toFile: schemaFile, atomically: true, encoding: .utf8)
        let notJSON = message("user: \"{{input}}\"\nschema_file: s.json\n")
        #expect(notJSON.contains("s.json") && notJSON.contains("not valid JSON"), "\(notJSON)")
        try #"{"type": "object", "properties": {"x": {"type": "string"}}, "required": ["y"]}"#.write(
            toFile: schemaFile, atomically: true, encoding: .utf8)
        let required = message("user: \"{{input}}\"\nschema_file: s.json\n")
        #expect(required.contains("s.json") && required.contains("\"schema.required\" names \"y\""), "\(required)")
        #expect(message("user: \"{{input}}\"").contains("schema: {...} or schema_file: schema.json"))
    }

    @Test("strict structured outputs only when every property is required and no others are allowed")
    func strictWhenTheSchemaAllows() throws {
        let strict = try LabelPrompt.Schema.make(
            try JSONSerialization.jsonObject(
                with: Data(
                    #"{"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"], "additionalProperties": false}"#
                        .utf8)), file: "s.json")
        #expect(strict.isStrict && strict.responseFormat["json_schema"]?["strict"]?.bool == true)
        let loose = try LabelPrompt.Schema.make(
            try JSONSerialization.jsonObject(
                with: Data(#"{"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}"#.utf8)),
            file: "s.json")
        #expect(!loose.isStrict)
    }

    @Test("--soft and a gold that is no object are refused for a structured prompt, located")
    func structuredRunErrors() async throws {
        let workspace = try StructuredLabelWorkspace(port: 9, count: 4)
        await #expect {
            _ = try await workspace.run(samples: 3)
        } throws: { error in
            "\(error)".contains("--soft sample:3 is for a label set") && "\(error)".contains("prompt.yaml")
        }
        try workspace.write("inputs.jsonl", "{\"input\": \"a\"}\n{\"input\": \"b\", \"gold\": \"TurnOn\"}\n")
        await #expect {
            _ = try await workspace.run()
        } throws: { error in
            let text = "\(error)"
            return text.contains("inputs.jsonl:2") && text.contains("\"gold\" must be a JSON object")
        }
        try workspace.write("inputs.jsonl", "{\"input\": \"a\", \"gold\": {\"intent\": {\"x\": 1}}}\n")
        await #expect {
            _ = try await workspace.run()
        } throws: { error in "\(error)".contains("inputs.jsonl:1") && "\(error)".contains("an answer is flat") }
        #expect(!FileManager.default.fileExists(atPath: workspace.path("train.jsonl")), "nothing half-written")
    }
}

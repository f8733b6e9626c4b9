import Foundation
import NIOCore
import RetortData
import RetortTestSupport
import Testing

@testable import RetortGateway
@testable import RetortGatewayTesting
@testable import RetortLabeling
@testable import RetortTeacher

@Suite struct StructuredCaptureTests {
    @Test("captured JSON answers become a structured task folder: with a schema, or inferred with --structured")
    func capturedJSONBecomesAStructuredTask() async throws {
        let items = HomeAnswers.items(120)
        let router = LoopbackProvider.router(
            calls: CallCounter(), bodies: BodyLog(), replay: HomeAnswers.replay(items))
        try await withLoopbackServer(router) { port in
            let config = try gatewayConfig(
                port: port, ledger: temporaryLedger(),
                routes: """
                      home:
                        capture: home-json
                        deployments:
                          - {provider: fake-openai, model: replay-json, price: {input_per_mtok: 10, output_per_mtok: 40}}
                    """)
            let gateway = try Gateway(config: config)
            try await withLiveGateway(gateway) { client in
                for item in items {
                    let body: JSON = [
                        "model": "home",
                        "messages": [
                            ["role": "system", "content": "Answer with one JSON object."],
                            ["role": "user", "content": .string(item.input)],
                        ],
                    ]
                    let response = try await client.chat(ByteBuffer(data: body.data))
                    #expect(response.status == .ok)
                }
            }
            #expect(try await until { try gateway.ledger.captures(task: "home-json").count == items.count })
            await gateway.shutdown()

            let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
                "retort-scapture-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let schemaPath = folder.appendingPathComponent("schema.json").path
            try HomeAnswers.schema.write(toFile: schemaPath, atomically: true, encoding: .utf8)

            // With the schema: objects it admits are rows; sentences and other intents are rejected.
            let out = folder.appendingPathComponent("task").path
            let export = try CaptureExport(config: config, task: "home-json", schemaPath: schemaPath)
            let summary = try export.write(to: out)
            let valid = items.filter(\.valid).count
            #expect(summary.captured == items.count && summary.otherModel == 0)
            #expect(summary.train + summary.validation + summary.test == valid)
            #expect(summary.rejected == items.count - valid)
            let taskJSON = try JSON.parse(Data(contentsOf: URL(fileURLWithPath: out + "/task.json")))
            #expect(taskJSON["kind"]?.string == "structured")
            #expect(taskJSON["schema"]?["properties"]?["brightness"]?["type"]?.string == "integer")
            let task = try StructuredTaskData.load(folder: URL(fileURLWithPath: out))
            #expect(task.schemaIsGiven)
            #expect(task.train.count == summary.train && task.test.count == summary.test)
            #expect(task.splits.allSatisfy { $0.invalidTeacherRows == 0 })
            let texts = Set(task.splits.flatMap { $0.teacherTexts.compactMap { $0 } })
            #expect(texts == Set(items.filter(\.valid).map(\.answer)), "teacher.text is the answer as captured")
            let rejected = try String(contentsOfFile: out + "/rejected.jsonl", encoding: .utf8)
            #expect(rejected.split(separator: "\n").count == summary.rejected)
            #expect(rejected.contains("OpenCover") && rejected.contains("Sure! I will turn them on."))

            // Inferred (--structured): every flat object is kept; the schema comes from the train answers.
            let inferredOut = folder.appendingPathComponent("inferred").path
            let inferred = try CaptureExport(config: config, task: "home-json", schemaPath: nil).write(to: inferredOut)
            let flat = items.filter(\.flat).count
            #expect(inferred.train + inferred.validation + inferred.test == flat)
            #expect(inferred.rejected == items.count - flat)
            let inferredJSON = try JSON.parse(Data(contentsOf: URL(fileURLWithPath: inferredOut + "/task.json")))
            #expect(inferredJSON["kind"]?.string == "structured" && inferredJSON["schema"] == nil)
            let inferredTask = try StructuredTaskData.load(folder: URL(fileURLWithPath: inferredOut))
            #expect(!inferredTask.schemaIsGiven)
            #expect(Set(inferredTask.schema.keys) == ["area", "brightness", "intent"])

            // A schema file that is not a schema: located at the file.
            try "{\"type\": \"array\"}".write(toFile: schemaPath, atomically: true, encoding: .utf8)
            #expect {
                _ = try CaptureExport(config: config, task: "home-json", schemaPath: schemaPath)
            } throws: { error in
                (error as? DataError)?.file == schemaPath && "\(error)".contains("\"schema.type\" must be \"object\"")
            }
        }
    }
}

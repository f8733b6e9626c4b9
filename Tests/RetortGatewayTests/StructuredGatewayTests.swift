import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import RetortData
import RetortSearch
import RetortTestSupport
import Synchronization
import Testing

@testable import RetortDeployments
@testable import RetortGateway
@testable import RetortTeacher
@testable import RetortUsage

/// A structured run made here: a nearest-answer search on the synthetic home-automation task, written as a run folder
/// (report.json's figures in memory, `model/` on disk).
struct StructuredRun: Sendable {
    let report: RunReport
    let folder: URL
    /// The gold answer of every input of the task (an input decides its answer in the synthetic task).
    let gold: [String: StructuredAnswer]
    /// Test inputs, in order.
    let testInputs: [String]

    static func make() throws -> StructuredRun {
        let taskFolder = try SyntheticStructured.writeTask(name: "home", sizes: (400, 200, 200))
        let task = try StructuredTaskData.load(folder: taskFolder)
        var job = Job(task: taskFolder)
        job.candidates = try YAMLValue.parse(
            "structured:\n  - family: nearest\n    buckets_log2: [12]\n", file: "catalog.yaml")
        job.maxDrop = 0.5
        let result = try StructuredSearch.run(
            task: task, settings: try SearchSettings(job: job, strategy: .exhaustive, workers: 1))
        let report = RunReport(job: "home", runId: "r1", createdAt: Date(), outcome: result.outcome)
        let folder = SyntheticTasks.temporaryFolder().appendingPathComponent("run")
        let student = try #require(result.recommended)
        try student.write(to: folder.appendingPathComponent("model"), candidate: report.recommendation.candidate)
        var gold: [String: StructuredAnswer] = [:]
        var testInputs: [String] = []
        for (index, seed) in [UInt64(7), 8, 9].enumerated() {
            for row in SyntheticStructured.rows(count: [400, 200, 200][index], seed: seed) {
                guard let input = row["input"] as? String, let answer = row["gold"] else { continue }
                gold[input] = try StructuredAnswer(jsonObject: answer, named: "gold")
                if index == 2 { testInputs.append(input) }
            }
        }
        return StructuredRun(report: report, folder: folder, gold: gold, testInputs: testInputs)
    }

    /// Made once for every test.
    static let shared: Result<StructuredRun, any Error> = Result { try make() }
}

/// A scripted structured teacher: answers the gold object of the last user message's input, keys in reverse order,
/// spaced, numbers written as `40.0` (equal as answers, different as text); after `drift()`, a sentence that is no
/// JSON object.
final class StructuredTeacher: Sendable {
    let calls = Atomic<Int>(0)
    let drifted = Atomic<Bool>(false)
    let gold: [String: StructuredAnswer]

    init(gold: [String: StructuredAnswer]) { self.gold = gold }

    func drift() { drifted.store(true, ordering: .relaxed) }

    /// The teacher's text for `input`.
    func answer(_ input: String) -> String {
        if drifted.load(ordering: .relaxed) { return "Sure! I would turn that on." }
        let fields = (gold[input]?.fields ?? ["intent": .string("Unknown")]).sorted { $0.key > $1.key }.map {
            key, value in
            let text: String
            switch value {
            case .number(let number): text = String(format: "%.1f", number)
            case .string(let string): text = JSON.string(string).text
            case .bool(let flag): text = flag ? "true" : "false"
            }
            return JSON.string(key).text + ": " + text
        }
        return "{ " + fields.joined(separator: ", ") + " }"
    }

    func router() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.post("/v1/chat/completions") { request, _ in
            self.calls.add(1, ordering: .relaxed)
            let body = try JSON.parse(Data(try await request.body.collect(upTo: 1 << 20).readableBytesView))
            let message = body["messages"]?.array?.last { $0["role"]?.string == "user" }?["content"]?.string ?? ""
            let answer: JSON = [
                "id": "chatcmpl-teacher", "object": "chat.completion", "created": 1, "model": "teacher-model",
                "choices": [
                    [
                        "index": 0, "message": ["role": "assistant", "content": .string(self.answer(message))],
                        "finish_reason": "stop",
                    ]
                ],
                "usage": ["prompt_tokens": 60, "completion_tokens": 12, "total_tokens": 72],
            ]
            return Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(data: answer.data)))
        }
        return router
    }
}

/// A chat request for the `home` route whose last user message is `text`.
func homeBody(_ text: String, stream: Bool = false) -> ByteBuffer {
    var body: JSON = [
        "model": "home",
        "messages": [
            ["role": "system", "content": "Answer with one JSON object: intent, area, brightness, item."],
            ["role": "user", "content": .string(text)],
        ],
        "max_tokens": 40, "logprobs": true, "top_logprobs": 3,
    ]
    if stream { body["stream"] = true }
    return ByteBuffer(data: body.data)
}

@Suite struct StructuredGatewayTests {
    static func config(teacherPort: Int, ledger: String) throws -> GatewayConfig {
        try gatewayConfig(
            port: teacherPort, ledger: ledger,
            routes: """
                  home:
                    capture_input: "{{last_user}}"
                    deployments:
                      - {provider: fake-openai, model: teacher-model, timeout_s: 600, price: {input_per_mtok: 10, output_per_mtok: 40}}
                """)
    }

    @Test(
        "deploy puts a structured run's student on a route: JSON answers in-process, the unsure to the teacher, shadow checks by answer equality, rollback on drift"
    )
    func structuredStudentServes() async throws {
        let run = try StructuredRun.shared.get()
        #expect(run.report.taskKind == "structured")
        let student = try StructuredStudent.load(from: run.folder.appendingPathComponent("model"))
        let teacher = StructuredTeacher(gold: run.gold)
        try await withLoopbackServer(teacher.router()) { teacherPort in
            let config = try Self.config(teacherPort: teacherPort, ledger: temporaryLedger())
            // The cascade at its widest validation point; every answer shadowed; a floor the run's agreement clears.
            let candidate = try #require(run.report.recommendation.candidate)
            let curve = try #require(run.report.cascades?.first { $0.candidate == candidate })
            let threshold = try #require(curve.validation.map(\.threshold).min())
            #expect(threshold > 0.3, "a template input is close to a train input")
            let placed = try Deployer.put(
                report: run.report, runDirectory: run.folder.path, config: config, route: "home",
                threshold: threshold, shadow: 1, minAgreement: 0.6)
            #expect(placed.threshold == threshold)
            #expect(placed.validation != nil, "the structured run's cascade curve gives the validation agreement")
            #expect(StructuredStudent.isStructured(folder: URL(fileURLWithPath: placed.record.modelDirectory)))
            let gateway = try Gateway(config: config, shadowSeed: 5)
            try await withLiveGateway(gateway) { client in
                let served = try #require(gateway.students["home"])
                guard case .structured = served.model else {
                    Issue.record("the deployment loaded as a label student")
                    return
                }
                #expect(served.bundle == nil)
                let ledger = gateway.ledger
                var expectedAgreement: [Bool] = []
                let sure = try run.testInputs.filter { try student.predict([$0])[0].confidence >= threshold }
                #expect(sure.count > 150, "most test inputs repeat a train template: the student is sure of them")
                for input in sure.prefix(30) {
                    let answer = try student.predict([input])[0].answer
                    let before = try ledger.shadows().count
                    let response = try await client.chat(homeBody(input))
                    #expect(response.status == .ok)
                    #expect(header(response, "x-retort-served-model") == placed.record.student)
                    #expect(header(response, "x-retort-attempts") == "0")
                    let reply = try body(response)
                    let content = try #require(reply["choices"]?[0]?["message"]?["content"]?.string)
                    #expect(content == answer.canonicalJSON, "the content is the answer's compact canonical JSON")
                    #expect(StructuredAnswer.parse(text: content) == answer)
                    #expect(reply["choices"]?[0]?["logprobs"] == .null, "a structured student gives no token logprobs")
                    let gold = StructuredAnswer.parse(text: teacher.answer(input))
                    expectedAgreement.append(gold == answer)
                    #expect(try await eventually { try ledger.shadows().count > before })
                }
                #expect(expectedAgreement.contains(true), "the student agrees with the gold-answering teacher mostly")
                let shadows = try ledger.shadows().sorted { $0.time < $1.time }
                #expect(shadows.count == 30)
                #expect(shadows.map(\.agree) == expectedAgreement, "agreement is answer equality, not text equality")
                for shadow in shadows where shadow.agree {
                    #expect(shadow.teacherLabel == shadow.studentLabel)
                    #expect(shadow.teacherAnswer != shadow.studentLabel, "the teacher's text is spelled differently")
                }
                let agreement = try ledger.shadowAgreement(deployment: placed.record.id)
                #expect(agreement.count == 30)
                #expect(agreement.agreeing == expectedAgreement.filter { $0 }.count)

                // An input unlike any train input leaves the student unsure: the teacher answers it.
                let callsBefore = teacher.calls.load(ordering: .relaxed)
                let unsure = "zqxv wpklm"
                #expect(try student.predict([unsure])[0].confidence < threshold)
                let handed = try await client.chat(homeBody(unsure))
                #expect(header(handed, "x-retort-served-model") == "teacher-model")
                #expect(teacher.calls.load(ordering: .relaxed) == callsBefore + 1)

                // A stream from the student carries the same JSON text.
                let input = sure[40]
                let streamed = try await client.chat(homeBody(input, stream: true))
                let events = String(buffer: streamed.body)
                let expected = try student.predict([input])[0].answer.canonicalJSON
                #expect(events.contains(JSON.string(expected).text), "the stream's content is the JSON text")
                #expect(events.hasSuffix("data: [DONE]\n\n"))
                #expect(try await eventually { try ledger.shadows().count == 31 })

                // Usage figures count the student's answers.
                let usage = UsageReport(rows: try ledger.rows(), by: .route, shadows: try ledger.shadows())
                let figures = try #require(usage.groups.first?.student)
                #expect(figures.studentRequests == 31)
                #expect(figures.shadowRequests == 31)

                // The teacher drifts to answers that are no JSON object: they disagree, and the route rolls back.
                teacher.drift()
                var afterDrift = 0
                for input in sure.dropFirst(50).prefix(60) {
                    let before = try ledger.shadows().count
                    let response = try await client.chat(homeBody(input))
                    guard header(response, "x-retort-served-model") == placed.record.student else { break }
                    #expect(try await eventually { try ledger.shadows().count > before })
                    afterDrift += 1
                }
                #expect(afterDrift > 0 && afterDrift < 60, "rolled back after \(afterDrift) drifted answers")
                let stored = try #require(try ledger.deployments(route: "home").first)
                #expect(stored.state == .rolledBack)
                let newest = try #require(try ledger.shadows().max { $0.time < $1.time })
                #expect(!newest.agree && newest.teacherLabel == nil, "an answer that is not JSON disagrees")
                let status = stored.statusJSON(agreement: try ledger.shadowAgreement(deployment: stored.id))
                #expect(status["state"]?.string == "rolled_back")
                let listed = try Deployer.listing([stored], ledger: ledger, json: false, single: true, empty: "")
                #expect(listed.contains("rolled_back"))
            }
            await gateway.shutdown()
        }
    }

    @Test("deploy refuses a structured run whose model/ holds no structured student, and the reverse, at model.json")
    func mismatchedModelFolder() throws {
        let run = try StructuredRun.shared.get()
        let ledger = temporaryLedger()
        let config = try Self.config(teacherPort: 9, ledger: ledger)
        // A structured report over a label student's folder.
        let labelRun = SyntheticTasks.temporaryFolder().appendingPathComponent("run")
        try FileManager.default.createDirectory(at: labelRun, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: KeywordStudent.folder, to: labelRun.appendingPathComponent("model"))
        let error = #expect(throws: DataError.self) {
            try Deployer.put(
                report: run.report, runDirectory: labelRun.path, config: config, route: "home", threshold: nil,
                shadow: 0, minAgreement: 0)
        }
        #expect(error?.file?.hasSuffix("model/model.json") == true)
        #expect(error?.message.contains("structured") == true)
        // A label report over a structured student's folder.
        var labels = run.report
        labels.taskKind = nil
        let reverse = #expect(throws: DataError.self) {
            try Deployer.put(
                report: labels, runDirectory: run.folder.path, config: config, route: "home", threshold: nil,
                shadow: 0, minAgreement: 0)
        }
        #expect(reverse?.message.contains("holds a structured student") == true)
        #expect(reverse?.file?.hasSuffix("model/model.json") == true)
        #expect(!FileManager.default.fileExists(atPath: ledger), "nothing was stored")
    }
}

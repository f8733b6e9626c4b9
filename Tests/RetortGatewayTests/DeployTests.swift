import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import RetortData
import RetortNumerics
import RetortStudents
import RetortTestSupport
import Synchronization
import Testing

@testable import RetortDeployments
@testable import RetortGateway
@testable import RetortTeacher
@testable import RetortUsage

/// A student trained here on keyword texts: each label has its own words; filler-only texts leave it unsure.
enum KeywordStudent {
    static let labels = ["alpha", "bravo", "charlie", "delta"]
    static let filler = ["please", "the", "my", "order", "help", "thanks", "today", "now", "again", "about"]

    /// A text with `label`'s keyword (nil: filler only).
    static func text(label: Int?, generator: inout SeededGenerator) -> String {
        var words = (0..<5).map { _ in filler[Int(generator.next() % UInt64(filler.count))] }
        if let label { words.insert(labels[label], at: Int(generator.next() % 5)) }
        return words.joined(separator: " ")
    }

    /// Trains a linear student on 400 keyword texts and writes it to a new folder; returns the folder.
    static func train() throws -> URL {
        var generator = SeededGenerator(seed: 11)
        let featurizer = Featurizer.text(HashedTextFeaturizer(bucketsLog2: 10))
        var texts: [ExampleInput] = []
        var classes: [Int] = []
        for _ in 0..<400 {
            let label = Int(generator.next() % 4)
            texts.append(.text(text(label: label, generator: &generator)))
            classes.append(label)
        }
        var probabilities = Matrix(rows: texts.count, columns: 4)
        for (row, label) in classes.enumerated() { probabilities[row, label] = 1 }
        let split = TrainingSplit(
            features: featurizer.features(for: texts), teacherProbabilities: probabilities, hardLabels: classes)
        let architecture = Architecture(
            family: .linear, hidden: [], inputDimension: 1 << 10, outputDimension: 4, sparseInput: true)
        var session = TrainingSession(
            architecture: architecture, train: split,
            options: TrainingOptions(epochs: 20, batchSize: 32, learningRate: 0.05, patience: 20), seed: 3)
        try session.runEpochs(20, train: split, validation: split)
        let bundle = ModelBundle(
            candidate: "linear-b10-fp32", model: session.bestModel, featurizer: featurizer, labels: labels)
        let folder = SyntheticTasks.temporaryFolder().appendingPathComponent("model")
        try bundle.write(to: folder)
        return folder
    }

    /// The model, trained once for every test.
    static let folder: URL = {
        do { return try train() } catch { fatalError("training the test student failed: \(error)") }
    }()
}

/// A scripted teacher: answers the label whose word is in the last user message (or `alpha`), or, after `drift()`,
/// the next label; counts calls and keeps webhook posts.
final class ScriptedTeacher: Sendable {
    let calls = Atomic<Int>(0)
    let drifted = Atomic<Bool>(false)
    let hooks = Mutex<[JSON]>([])

    func drift() { drifted.store(true, ordering: .relaxed) }

    func router() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.post("/v1/chat/completions") { request, _ in
            self.calls.add(1, ordering: .relaxed)
            let body = try JSON.parse(Data(try await request.body.collect(upTo: 1 << 20).readableBytesView))
            let message = body["messages"]?.array?.last { $0["role"]?.string == "user" }?["content"]?.string ?? ""
            let words = Set(message.split(separator: " ").map(String.init))
            var index = KeywordStudent.labels.firstIndex { words.contains($0) } ?? 0
            if self.drifted.load(ordering: .relaxed) { index = (index + 1) % KeywordStudent.labels.count }
            let answer: JSON = [
                "id": "chatcmpl-teacher", "object": "chat.completion", "created": 1, "model": "teacher-model",
                "choices": [
                    [
                        "index": 0, "message": ["role": "assistant", "content": .string(KeywordStudent.labels[index])],
                        "finish_reason": "stop",
                    ]
                ],
                "usage": ["prompt_tokens": 40, "completion_tokens": 2, "total_tokens": 42],
            ]
            return Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(data: answer.data)))
        }
        router.post("/hook") { request, _ in
            let body = try JSON.parse(Data(try await request.body.collect(upTo: 1 << 20).readableBytesView))
            self.hooks.withLock { $0.append(body) }
            return Response(status: .ok)
        }
        return router
    }
}

/// A gateway whose `support` route goes to a scripted teacher, with a student deployed on it.
struct DeployedGateway {
    let gateway: Gateway
    let teacher: ScriptedTeacher
    let record: DeploymentRecord
    let config: GatewayConfig

    static func config(teacherPort: Int, ledger: String) throws -> GatewayConfig {
        try gatewayConfig(
            port: teacherPort, ledger: ledger,
            routes: """
                  support:
                    capture_input: "{{last_user}}"
                    deployments:
                      - {provider: fake-openai, model: teacher-model, timeout_s: 600, price: {input_per_mtok: 10, output_per_mtok: 40}}
                """,
            extra: "notify: {webhook: \"http://127.0.0.1:\(teacherPort)/hook\"}")
    }

    /// Stores a deployment of the keyword student in `ledger`.
    static func deploy(
        ledger: Ledger, threshold: Double, shadow: Double, minAgreement: Double
    ) throws -> DeploymentRecord {
        try ledger.deploy(
            DeploymentRecord(
                time: Date().timeIntervalSince1970, route: "support", candidate: "linear-b10-fp32", kind: "cascade",
                runDirectory: "/runs/keywords", modelDirectory: KeywordStudent.folder.path, task: "keywords",
                threshold: threshold, shadow: shadow, minAgreement: minAgreement, usdPerVCPUSecond: 0.05 / 3600))
    }
}

/// Runs `body` with a live gateway over a live scripted teacher and the keyword student deployed on `support`.
func withDeployedStudent(
    threshold: Double = 0.7, shadow: Double = 0, minAgreement: Double = 0.9,
    _ body: @Sendable (_ client: LiveClient, _ deployed: DeployedGateway) async throws -> Void
) async throws {
    let teacher = ScriptedTeacher()
    try await withLoopbackServer(teacher.router()) { teacherPort in
        let config = try DeployedGateway.config(teacherPort: teacherPort, ledger: temporaryLedger())
        let ledger = try Ledger(path: config.ledgerPath)
        let record = try DeployedGateway.deploy(
            ledger: ledger, threshold: threshold, shadow: shadow, minAgreement: minAgreement)
        let gateway = try Gateway(config: config, shadowSeed: 5)
        try await withLiveGateway(gateway) { client in
            try await body(client, DeployedGateway(gateway: gateway, teacher: teacher, record: record, config: config))
        }
        await gateway.shutdown()
    }
}

/// A chat request for the `support` route whose last user message is `text`.
func supportBody(_ text: String, stream: Bool = false, logprobs: Bool = true) -> ByteBuffer {
    var body: JSON = [
        "model": "support",
        "messages": [
            ["role": "system", "content": "Labels: alpha, bravo, charlie, delta"],
            ["role": "user", "content": .string(text)],
        ],
        "max_tokens": 4,
    ]
    if logprobs {
        body["logprobs"] = true
        body["top_logprobs"] = 3
    }
    if stream { body["stream"] = true }
    return ByteBuffer(data: body.data)
}

/// Counts of a load test's answers.
final class LoadTally: Sendable {
    let failures = Atomic<Int>(0)
    let answered = Atomic<Int>(0)
    /// Clients that have stopped, however they ended.
    let workersDone = Atomic<Int>(0)
}

/// Waits until `condition` holds (shadow checks run in the background), at most `seconds` (generous: on a loaded
/// machine a background check can take a while; a condition that holds returns at once).
func eventually(seconds: Double = 60, _ condition: () throws -> Bool) async throws -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try condition() { return true }
        try await Task.sleep(for: .milliseconds(20))
    }
    return try condition()
}

@Suite struct DeployTests {
    @Test(
        "the student answers sure inputs in-process (the teacher sees none) and hands every unsure one to the teacher")
    func studentAnswersInProcess() async throws {
        try await withDeployedStudent { client, deployed in
            let bundle = try ModelBundle.load(from: KeywordStudent.folder)
            var generator = SeededGenerator(seed: 21)
            var sure = 0
            for index in 0..<24 {
                let text = KeywordStudent.text(label: index % 4, generator: &generator)
                let probabilities = try bundle.probabilities(for: [.text(text)])
                let top = (0..<4).map { probabilities[0, $0] }
                let best = top.indices.max { top[$0] < top[$1] } ?? 0
                #expect(Double(top[best]) >= 0.7, "a keyword text is one the student is sure of (\(top))")
                let response = try await client.chat(supportBody(text))
                #expect(response.status == .ok)
                #expect(header(response, "x-retort-served-model") == deployed.record.student)
                #expect(header(response, "x-retort-deployment") == deployed.record.student)
                #expect(header(response, "x-retort-attempts") == "0")
                let answer = try body(response)
                #expect(answer["choices"]?[0]?["message"]?["content"]?.string == KeywordStudent.labels[best])
                let logprob = try #require(answer["choices"]?[0]?["logprobs"]?["content"]?[0])
                #expect(
                    approximatelyEqual(
                        (logprob["logprob"]?.double ?? 0), Foundation.log(Double(top[best])), within: 1e-5))
                #expect(logprob["top_logprobs"]?.array?.count == 3)
                sure += 1
            }
            #expect(deployed.teacher.calls.load(ordering: .relaxed) == 0, "no sure input reached the teacher")
            for _ in 0..<10 {
                let text = KeywordStudent.text(label: nil, generator: &generator)
                let top = try bundle.probabilities(for: [.text(text)])
                #expect((0..<4).allSatisfy { top[0, $0] < 0.7 }, "a filler-only text leaves the student unsure")
                let response = try await client.chat(supportBody(text))
                #expect(response.status == .ok)
                #expect(header(response, "x-retort-served-model") == "teacher-model")
                #expect(header(response, "x-retort-attempts") == "1")
            }
            #expect(deployed.teacher.calls.load(ordering: .relaxed) == 10, "every unsure input reached the teacher")

            // A stream from the student: one content chunk, a stop chunk, usage when asked, [DONE].
            let streamed = try await client.chat(
                supportBody(KeywordStudent.text(label: 2, generator: &generator), stream: true, logprobs: false))
            let events = String(buffer: streamed.body)
            #expect(header(streamed, "content-type") == "text/event-stream")
            #expect(events.contains("\"content\":\"charlie\""))
            #expect(events.contains("\"finish_reason\":\"stop\""))
            #expect(events.hasSuffix("data: [DONE]\n\n"))

            // Ledger: student rows priced with the serving cost model, teacher rows with their tokens.
            let rows = try deployed.gateway.ledger.rows()
            let studentRows = rows.filter { $0.deployment == deployed.record.student }
            #expect(studentRows.count == sure + 1)
            #expect(studentRows.allSatisfy { $0.costUSD > 0 && $0.costUSD < 1e-6 && $0.attempts == 0 })
            #expect(rows.filter { $0.deployment == "fake-openai/teacher-model" }.count == 10)
            let usage = UsageReport(rows: rows, by: .route, shadows: try deployed.gateway.ledger.shadows())
            let figures = try #require(usage.groups.first?.student)
            #expect(figures.studentRequests == sure + 1)
            #expect(approximatelyEqual(figures.studentShare, Double(sure + 1) / Double(sure + 11), within: 1e-9))
            #expect(figures.teacherCostBasis == "teacher_requests")
            #expect(figures.teacherUSDSaved > 0)
        }
    }

    @Test("a sampled share of student answers is checked against the teacher, recorded, captured and priced")
    func shadowSamplingRate() async throws {
        let requests = 400
        let rate = 0.25
        try await withDeployedStudent(shadow: rate) { client, deployed in
            var generator = SeededGenerator(seed: 31)
            for index in 0..<requests {
                let response = try await client.chat(
                    supportBody(KeywordStudent.text(label: index % 4, generator: &generator)))
                #expect(header(response, "x-retort-served-model") == deployed.record.student)
            }
            let ledger = deployed.gateway.ledger
            #expect(
                try await eventually { try ledger.shadows().count == deployed.teacher.calls.load(ordering: .relaxed) })
            let shadows = try ledger.shadows()
            // Binomial(400, 0.25): mean 100, sd 8.7; 4.5 sd either side.
            let sd = (Double(requests) * rate * (1 - rate)).squareRoot()
            #expect(approximatelyEqual(Double(shadows.count), Double(requests) * rate, within: 4.5 * sd))
            let allAgree = shadows.allSatisfy { $0.agree }
            #expect(allAgree, "the teacher agrees before any drift")
            let rows = try ledger.rows()
            #expect(rows.filter { $0.kind == "shadow" }.count == shadows.count)
            let usage = UsageReport(rows: rows, by: .route, shadows: shadows)
            let group = try #require(usage.groups.first)
            #expect(group.requests == requests, "shadow calls are not client requests")
            let figures = try #require(group.student)
            #expect(figures.shadowRequests == shadows.count)
            #expect(figures.studentShare == 1)
            #expect(figures.agreement.count == shadows.count && figures.agreement.value == 1)
            #expect(figures.teacherCostBasis == "shadow")
            let csv = usage.csv.split(separator: "\n")
            #expect(csv[0].hasSuffix(",agreement_n,teacher_usd_saved,teacher_cost_basis"))
            #expect(csv[1].hasPrefix("support,\(requests),") && csv[1].hasSuffix(",shadow"))
            // Teacher answers cost (40 × 10 + 2 × 40) / 1e6 each.
            let teacherCost = 480 / 1e6
            #expect(
                abs(
                    figures.teacherUSDSaved
                        - (teacherCost * Double(requests)
                            - rows.filter { $0.deployment == deployed.record.student }.reduce(0) { $0 + $1.costUSD }))
                    < 1e-9)
            #expect(
                abs(
                    group.costUSD
                        - (teacherCost * Double(shadows.count)
                            + rows.filter { $0.kind == "client" }.reduce(0) { $0 + $1.costUSD })) < 1e-9)
            // Shadow answers became teacher rows for the deployment's task.
            #expect(try ledger.captures(task: "keywords").count == shadows.count)
            #expect(try ledger.shadowAgreement(deployment: deployed.record.id).count == min(200, shadows.count))
        }
    }

    @Test("when the teacher drifts, shadow agreement rolls the route back within a bounded number of requests")
    func driftRollsBack() async throws {
        try await withDeployedStudent(shadow: 1, minAgreement: 0.9) { client, deployed in
            var generator = SeededGenerator(seed: 41)
            let ledger = deployed.gateway.ledger
            func send(_ index: Int) async throws -> String? {
                let before = try ledger.shadows().count
                let response = try await client.chat(
                    supportBody(KeywordStudent.text(label: index % 4, generator: &generator)))
                #expect(response.status == .ok)
                let servedBy = header(response, "x-retort-served-model")
                if servedBy == deployed.record.student {
                    #expect(try await eventually { try ledger.shadows().count > before })
                }
                return servedBy
            }
            for index in 0..<30 { #expect(try await send(index) == deployed.record.student) }
            #expect(!(deployed.gateway.students["support"]?.isRolledBack ?? true))
            deployed.teacher.drift()
            var afterDrift = 0
            while try await send(afterDrift) == deployed.record.student {
                afterDrift += 1
                if afterDrift > 40 { break }
            }
            // 30 agreeing then k disagreeing: the Wilson upper bound drops below 0.9 at k = 8 (0.889; 0.905 at 7).
            #expect(afterDrift == 8, "rolled back after \(afterDrift) drifted answers")
            #expect(try await send(0) == "teacher-model", "the route is on the teacher after the rollback")
            let stored = try #require(try ledger.deployments(route: "support").first)
            #expect(stored.state == .rolledBack)
            #expect(stored.reason?.contains("below 0.900") == true)
            let status = stored.statusJSON(agreement: try ledger.shadowAgreement(deployment: stored.id))
            #expect(status["state"]?.string == "rolled_back")
            #expect((status["agreement"]?["ci95"]?[1]?.double ?? 1) < 0.9)
            #expect(try await eventually { deployed.teacher.hooks.withLock { !$0.isEmpty } })
            let hook = try #require(deployed.teacher.hooks.withLock { $0.first })
            #expect(hook["event"]?.string == "deployment_rolled_back")
            #expect(hook["student"]?.string == deployed.record.student)

            // The rollback survives a reload and a restart over the same ledger.
            await deployed.gateway.apply(deployed.config)
            #expect(deployed.gateway.students.isEmpty)
            let restarted = try Gateway(config: deployed.config)
            #expect(restarted.students.isEmpty)
            await restarted.shutdown()
            // The dashboard shows it.
            let page = try await client.execute(
                uri: "/dashboard?key=\(adminToken)", method: .get, headers: [:], body: nil)
            let html = String(buffer: page.body)
            #expect(html.contains("Deployed students") && html.contains("rolled_back"))
        }
    }

    @Test("reloads and new deploys while clients send requests drop none")
    func reloadDropsNothing() async throws {
        try await withDeployedStudent { client, deployed in
            // The test client sends one request at a time; AsyncHTTPClient keeps six in flight.
            let http = ConcurrentClient(port: try #require(client.port), connections: 16)
            defer { http.shutdown() }
            let tally = LoadTally()
            let perWorker = 25
            var deploys = 0
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<6 {
                    group.addTask {
                        // Counted done however it ends, so the reload loop below stops even if a client throws.
                        defer { tally.workersDone.add(1, ordering: .relaxed) }
                        var generator = SeededGenerator(seed: UInt64(100 + worker))
                        for _ in 0..<perWorker {
                            let (status, _) = try await http.post(
                                supportBody(KeywordStudent.text(label: worker % 4, generator: &generator)))
                            if status == .ok {
                                tally.answered.add(1, ordering: .relaxed)
                            } else {
                                tally.failures.add(1, ordering: .relaxed)
                            }
                        }
                    }
                }
                // Deploy and reload over and over while the clients run (at least 3 times, at most 10 minutes).
                let deadline = ContinuousClock.now + .seconds(600)
                while deploys < 3 || tally.workersDone.load(ordering: .relaxed) < 6, ContinuousClock.now < deadline {
                    _ = try DeployedGateway.deploy(
                        ledger: deployed.gateway.ledger, threshold: 0.7, shadow: 0, minAgreement: 0.9)
                    await deployed.gateway.apply(deployed.config)
                    deploys += 1
                    try await Task.sleep(for: .milliseconds(10))
                }
                try await group.waitForAll()
            }
            #expect(tally.failures.load(ordering: .relaxed) == 0)
            #expect(tally.answered.load(ordering: .relaxed) == 6 * perWorker)
            #expect(deploys >= 3)
            let serving = try #require(deployed.gateway.students["support"])
            let newest = try #require(try deployed.gateway.ledger.deployments(route: "support").first)
            #expect(serving.record.id == newest.id, "the newest deploy serves")
            #expect(
                try deployed.gateway.ledger.deployments(route: "support").dropFirst().allSatisfy {
                    $0.state == .replaced
                })
            let health = try await client.execute(uri: "/healthz", method: .get, headers: [:], body: nil)
            #expect(health.status == .ok)
        }
    }

    @Test("Wilson 95% interval figures and the 20-answer floor")
    func wilsonInterval() {
        let tally = ShadowAgreement(agreeing: 18, count: 20)
        #expect(
            approximatelyEqual(tally.interval.low, 0.6990, within: 5e-4)
                && approximatelyEqual(tally.interval.high, 0.9721, within: 5e-4))
        #expect(ShadowAgreement(agreeing: 0, count: 19).fallsBelow(0.9) == false, "fewer than 20 answers never decide")
        #expect(ShadowAgreement(agreeing: 10, count: 20).fallsBelow(0.9))
        let window = ShadowAgreement(outcomes: Array(repeating: false, count: 50) + Array(repeating: true, count: 200))
        #expect(window.count == 200 && window.value == 1, "only the newest 200 answers count")
    }
}

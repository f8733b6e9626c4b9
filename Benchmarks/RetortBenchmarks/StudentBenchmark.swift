import AsyncHTTPClient
import Foundation
import NIOCore
import RetortDeployments
import RetortGatewayTesting
import RetortNumerics
import RetortTeacher

/// `retort deploy bench`: requests per second and latency of the gateway answering a route from an in-process student
/// versus forwarding the same requests to a loopback teacher with a fixed latency.
///
/// The loopback teacher runs in this process; the gateway runs as its own process (`retort gateway serve`, ledger on)
/// with two routes over the same teacher deployment, `student` (the student deployed at threshold 0, no shadow checks:
/// it answers everything) and `teacher`. Closed loop: N clients each send their next request as soon as the last one
/// is answered, for a fixed time per route.
public struct StudentBenchmark: Sendable {
    /// One route at one concurrency.
    public struct Row: Sendable {
        /// `student` or `teacher`.
        public var target: String
        /// Clients in flight.
        public var concurrency: Int
        /// Answers with status 200.
        public var answered: Int
        /// Requests that did not get a 200.
        public var failed: Int
        /// Answers per second.
        public var throughput: Double
        /// Median latency in ms.
        public var p50: Double
        /// 99th-percentile latency in ms.
        public var p99: Double
        /// How many answers the student gave (from the response headers).
        public var servedByStudent: Int
    }

    /// The `retort` binary that runs `gateway serve`.
    public var executable: String
    /// The deployment to serve (its model folder is read by the gateway).
    public var deployment: DeploymentRecord
    /// Raw inputs (the last user message of each request), cycled through.
    public var inputs: [String]
    /// The teacher's answer latency.
    public var teacherLatency: Duration
    /// Clients in flight, one measurement per value and route.
    public var concurrencies: [Int]
    /// Seconds per measurement.
    public var seconds: Double
    /// Where the config and ledger go.
    public var folder: String

    /// A benchmark plan.
    public init(
        executable: String, deployment: DeploymentRecord, inputs: [String], teacherLatency: Duration,
        concurrencies: [Int], seconds: Double, folder: String
    ) {
        self.executable = executable
        self.deployment = deployment
        self.inputs = inputs
        self.teacherLatency = teacherLatency
        self.concurrencies = concurrencies
        self.seconds = seconds
        self.folder = folder
    }

    /// Runs every concurrency on both routes; returns the rows and the gateway's peak resident memory in bytes.
    public func run(log: @escaping @Sendable (String) -> Void) async throws -> (rows: [Row], peakBytes: Int) {
        let (providerPort, provider) = try await GatewayBenchmark.startProvider(
            latency: teacherLatency, logLevel: .critical)
        defer { provider.cancel() }
        let deployment =
            "{provider: loopback, model: intent-teacher, timeout_s: 30, price: {input_per_mtok: 15, output_per_mtok: 75}}"
        let bench = try GatewayBenchmark.writeConfig(
            folder: folder, name: "bench-student-gateway.yaml", providerPort: providerPort,
            routes: """
                  student:
                    deployments:
                      - \(deployment)
                  teacher:
                    deployments:
                      - \(deployment)
                """)
        let token = bench.token
        var record = self.deployment
        record.route = "student"
        record.threshold = 0
        record.shadow = 0
        _ = try Ledger(path: bench.ledgerPath).deploy(record)
        let (process, gatewayPort) = try await GatewayBenchmark.startGateway(
            executable: executable, configPath: bench.configPath)
        defer { process.terminate() }

        let client = GatewayBenchmark.client()
        let bodies = ["student", "teacher"].map { route in
            inputs.map { input in
                ByteBuffer(
                    data: JSON(
                        dictionaryLiteral: ("model", .string(route)),
                        ("messages", [["role": "user", "content": .string(input)]]), ("max_tokens", 8)
                    ).data)
            }
        }
        let url = "http://127.0.0.1:\(gatewayPort)/v1/chat/completions"
        var rows: [Row] = []
        for concurrency in concurrencies {
            for (index, target) in ["student", "teacher"].enumerated() {
                // Warm the connections and the route before measuring.
                _ = await closedLoop(
                    client, url: url, bodies: bodies[index], token: token, clients: concurrency, seconds: 1)
                log("\(target), \(concurrency) clients…")
                let run = await closedLoop(
                    client, url: url, bodies: bodies[index], token: token, clients: concurrency, seconds: seconds)
                rows.append(
                    Row(
                        target: target, concurrency: concurrency, answered: run.latencies.count, failed: run.failures,
                        throughput: Double(run.latencies.count) / run.elapsed,
                        p50: GatewayBenchmark.quantile(run.latencies, 0.5),
                        p99: GatewayBenchmark.quantile(run.latencies, 0.99), servedByStudent: run.byStudent))
            }
        }
        let peak = GatewayBenchmark.peakResidentBytes(pid: process.processIdentifier)
        try await client.shutdown()
        return (rows, peak)
    }

    /// `clients` loops, each sending its next request when the last is answered, until `seconds` have passed.
    func closedLoop(
        _ client: HTTPClient, url: String, bodies: [ByteBuffer], token: String, clients: Int, seconds: Double
    ) async -> (latencies: [Double], failures: Int, byStudent: Int, elapsed: Double) {
        let start = ContinuousClock.now
        let deadline = start + .nanoseconds(Int64(seconds * 1e9))
        let results = await withTaskGroup(of: ([Double], Int, Int).self) { group in
            for worker in 0..<clients {
                group.addTask {
                    var latencies: [Double] = []
                    var failures = 0
                    var byStudent = 0
                    var next = worker
                    while ContinuousClock.now < deadline {
                        var request = HTTPClientRequest(url: url)
                        request.method = .POST
                        request.headers.add(name: "content-type", value: "application/json")
                        request.headers.add(name: "authorization", value: "Bearer \(token)")
                        request.body = .bytes(bodies[next % bodies.count])
                        next += clients
                        let sent = ContinuousClock.now
                        do {
                            let response = try await client.execute(request, timeout: .seconds(60))
                            _ = try await response.body.collect(upTo: 1 << 20)
                            guard response.status == .ok else {
                                failures += 1
                                continue
                            }
                            if response.headers.first(name: "x-retort-served-model")?.hasPrefix("student/") == true {
                                byStudent += 1
                            }
                            let elapsed = ContinuousClock.now - sent
                            latencies.append(elapsed.inMilliseconds)
                        } catch {
                            failures += 1
                        }
                    }
                    return (latencies, failures, byStudent)
                }
            }
            var all: ([Double], Int, Int) = ([], 0, 0)
            for await part in group {
                all.0 += part.0
                all.1 += part.1
                all.2 += part.2
            }
            return all
        }
        let elapsed = ContinuousClock.now - start
        let seconds = elapsed.inSeconds
        return (results.0, results.1, results.2, seconds)
    }
}

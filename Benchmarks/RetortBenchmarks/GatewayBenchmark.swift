import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import RetortGatewayTesting
import RetortTeacher

/// `retort gateway bench`: the latency the gateway adds over calling the upstream directly, at fixed request rates.
///
/// A loopback provider runs in this process; the gateway runs as its own process (`retort gateway serve`, ledger on);
/// an open-loop generator sends requests on a fixed schedule (latency counted from the scheduled send time, so a
/// stalled server cannot hide its queue) first straight to the provider, then through the gateway.
public struct GatewayBenchmark: Sendable {
    /// One rate's measurement.
    public struct Row: Sendable {
        /// Requests per second offered.
        public var rate: Int
        /// Requests sent per target.
        public var requests: Int
        /// Direct to the provider: p50 and p99 in ms.
        public var directP50: Double
        /// Direct p99 in ms.
        public var directP99: Double
        /// Through the gateway: p50 in ms.
        public var gatewayP50: Double
        /// Through the gateway: p99 in ms.
        public var gatewayP99: Double
        /// Requests that did not get a 200 through the gateway.
        public var lost: Int
        /// Ledger rows written for this rate's gateway requests.
        public var ledgerRows: Int
    }

    /// The `retort` binary that runs `gateway serve`.
    public var executable: String
    /// Rates to measure.
    public var rates: [Int]
    /// Seconds per rate and target.
    public var seconds: Double
    /// Where the config and ledger go.
    public var folder: String

    /// A benchmark plan.
    public init(executable: String, rates: [Int], seconds: Double, folder: String) {
        self.executable = executable
        self.rates = rates
        self.seconds = seconds
        self.folder = folder
    }

    /// Runs every rate; returns the rows and the gateway process's peak resident memory in bytes.
    public func run(log: @escaping @Sendable (String) -> Void) async throws -> (rows: [Row], peakBytes: Int) {
        let (providerPort, provider) = try await GatewayBenchmark.startProvider()
        defer { provider.cancel() }
        let bench = try GatewayBenchmark.writeConfig(
            folder: folder, name: "bench-gateway.yaml", providerPort: providerPort,
            routes: """
                  teacher:
                    deployments:
                      - {provider: loopback, model: ok, price: {input_per_mtok: 1, output_per_mtok: 2}}
                """)
        let (ledger, token) = (bench.ledgerPath, bench.token)
        let (process, gatewayPort) = try await GatewayBenchmark.startGateway(
            executable: executable, configPath: bench.configPath)
        defer { process.terminate() }

        let client = GatewayBenchmark.client()
        let body = ByteBuffer(
            data: JSON(
                dictionaryLiteral: ("model", "teacher"),
                ("messages", [["role": "user", "content": "where is my refund?"]]), ("max_tokens", 8)
            ).data
        )
        var rows: [Row] = []
        var rowsBefore = 0
        for rate in rates {
            // Warm both paths (connections, caches) before measuring.
            _ = await load(
                client, url: "http://127.0.0.1:\(providerPort)/v1/chat/completions", rate: rate, seconds: 1, body: body,
                token: nil)
            _ = await load(
                client, url: "http://127.0.0.1:\(gatewayPort)/v1/chat/completions", rate: rate, seconds: 1, body: body,
                token: token)
            rowsBefore = try Ledger(path: ledger).rows().count
            log("rate \(rate)/s: direct…")
            let direct = await load(
                client, url: "http://127.0.0.1:\(providerPort)/v1/chat/completions", rate: rate, seconds: seconds,
                body: body, token: nil
            )
            log("rate \(rate)/s: through the gateway…")
            let through = await load(
                client, url: "http://127.0.0.1:\(gatewayPort)/v1/chat/completions", rate: rate, seconds: seconds,
                body: body, token: token
            )
            let written = try Ledger(path: ledger).rows().count - rowsBefore
            rows.append(
                Row(
                    rate: rate, requests: through.latencies.count + through.failures,
                    directP50: GatewayBenchmark.quantile(direct.latencies, 0.5),
                    directP99: GatewayBenchmark.quantile(direct.latencies, 0.99),
                    gatewayP50: GatewayBenchmark.quantile(through.latencies, 0.5),
                    gatewayP99: GatewayBenchmark.quantile(through.latencies, 0.99), lost: through.failures,
                    ledgerRows: written
                )
            )
        }
        let peak = GatewayBenchmark.peakResidentBytes(pid: process.processIdentifier)
        try await client.shutdown()
        return (rows, peak)
    }

    /// Starts a loopback provider in this process whose intent* models answer after `latency`; returns its port and
    /// the task to cancel when done.
    static func startProvider(latency: Duration = .zero, logLevel: Logger.Level = .info) async throws -> (
        Int, Task<Void, any Error>
    ) {
        let (stream, continuation) = AsyncStream<Int>.makeStream()
        let task = Task {
            try await LoopbackProvider.serve(host: "127.0.0.1", port: 0, intentLatency: latency, logLevel: logLevel) {
                continuation.yield($0)
            }
        }
        for await port in stream { return (port, task) }
        task.cancel()
        throw WireError("the loopback provider did not start")
    }

    /// Writes a benchmark gateway config named `name` into `folder`: a fresh ledger beside it, one key, the loopback
    /// provider on `providerPort`, and `routes` (YAML under `routes:`).
    static func writeConfig(folder: String, name: String, providerPort: Int, routes: String) throws -> (
        configPath: String, ledgerPath: String, token: String
    ) {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let folder = URL(fileURLWithPath: folder).standardizedFileURL.path
        let ledgerPath = (folder as NSString).appendingPathComponent("bench-ledger.sqlite")
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: ledgerPath + suffix) }
        let token = "rk-bench"
        let config = """
            listen: 127.0.0.1:0
            ledger: \(ledgerPath)
            keys:
              - {sha256: \(sha256Hex(token)), user: bench, team: bench}
            providers:
              loopback: {kind: openai, base_url: "http://127.0.0.1:\(providerPort)/v1"}
            routes:
            \(routes)
            """
        let configPath = (folder as NSString).appendingPathComponent(name)
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
        return (configPath, ledgerPath, token)
    }

    /// An HTTP client for load generation (512 connections per host, no decompression).
    static func client() -> HTTPClient {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: 512)
        configuration.decompression = .disabled
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// Starts `executable gateway serve --config configPath`; returns the process and the port it listens on.
    static func startGateway(executable: String, configPath: String) async throws -> (Process, Int) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["gateway", "serve", "--config", configPath, "--log-level", "error"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let handle = pipe.fileHandleForReading
        var text = ""
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            let data = handle.availableData
            if data.isEmpty { break }
            text += String(decoding: data, as: UTF8.self)
            if let range = text.range(of: #"127\.0\.0\.1:(\d+)"#, options: .regularExpression) {
                let port = Int(text[range].split(separator: ":").last ?? "") ?? 0
                return (process, port)
            }
        }
        process.terminate()
        throw WireError("the gateway did not start: \(text)")
    }

    /// Open-loop load: request i is due at start + i / rate; its latency counts from then.
    func load(
        _ client: HTTPClient, url: String, rate: Int, seconds: Double, body: ByteBuffer, token: String?
    ) async -> (latencies: [Double], failures: Int) {
        let count = Int(Double(rate) * seconds)
        let start = ContinuousClock.now
        return await withTaskGroup(of: Double?.self) { group in
            for index in 0..<count {
                let due = start + .nanoseconds(Int64(Double(index) / Double(rate) * 1e9))
                try? await Task.sleep(until: due, clock: .continuous)
                group.addTask {
                    var request = HTTPClientRequest(url: url)
                    request.method = .POST
                    request.headers.add(name: "content-type", value: "application/json")
                    if let token { request.headers.add(name: "authorization", value: "Bearer \(token)") }
                    request.body = .bytes(body)
                    do {
                        let response = try await client.execute(request, timeout: .seconds(30))
                        _ = try await response.body.collect(upTo: 1 << 20)
                        guard response.status == .ok else { return nil }
                        let elapsed = ContinuousClock.now - due
                        return Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
                    } catch {
                        return nil
                    }
                }
            }
            var latencies: [Double] = []
            var failures = 0
            for await latency in group {
                if let latency { latencies.append(latency) } else { failures += 1 }
            }
            return (latencies, failures)
        }
    }

    static func quantile(_ values: [Double], _ q: Double) -> Double {
        Latency.quantile(values.sorted(), q)
    }

    /// VmHWM of a process, from /proc (0 where unavailable).
    static func peakResidentBytes(pid: Int32) -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            if parts.count >= 2, let kilobytes = Int(parts[1]) { return kilobytes * 1024 }
        }
        return 0
    }
}

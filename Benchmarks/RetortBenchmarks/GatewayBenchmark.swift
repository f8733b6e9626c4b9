import AsyncHTTPClient
import Foundation
import Glibc
import Logging
import NIOCore
import RetortGatewayTesting
import RetortNumerics
import RetortTeacher

/// `retort gateway bench`: the latency the gateway adds over calling the upstream directly, at fixed request rates.
///
/// A loopback provider runs in this process; the gateway runs as its own process (`retort gateway serve`, ledger on);
/// an open-loop generator sends requests on a fixed schedule (latency counted from the scheduled send time, so a
/// stalled server cannot hide its queue) first straight to the provider, then through the gateway.
public struct GatewayBenchmark: Sendable {
    /// Which ledger the gateway writes and how many replicas serve: one replica is called directly; several share a
    /// PostgreSQL ledger behind HAProxy (round robin).
    public struct Topology: Sendable, Equatable {
        /// `sqlite` or `postgres`.
        public var backend: LedgerBackend
        /// Gateway processes.
        public var replicas: Int

        /// A topology.
        public init(backend: LedgerBackend, replicas: Int) {
            self.backend = backend
            self.replicas = replicas
        }

        /// `SQLite, 1 replica`, `PostgreSQL, 3 replicas + HAProxy`.
        public var label: String {
            let name = backend == .sqlite ? "SQLite" : "PostgreSQL"
            return replicas == 1 ? "\(name), 1 replica" : "\(name), \(replicas) replicas + HAProxy"
        }
    }

    /// One rate's measurement.
    public struct Row: Sendable {
        /// The ledger and replicas measured.
        public var topology: Topology
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
        /// While the requests went through the gateway: the cores the gateway processes used on average, the cores
        /// this process (the generator and the provider) used, and the busy share of the machine's cores, the
        /// database included (nil where /proc is unreadable).
        public var usage = CPUTime.Usage()
    }

    /// The `retort` binary that runs `gateway serve`.
    public var executable: String
    /// Rates to measure.
    public var rates: [Int]
    /// Seconds per rate and target.
    public var seconds: Double
    /// Where the config and ledger go.
    public var folder: String
    /// The ledgers and replica counts to measure, in order.
    public var topologies: [Topology]
    /// The PostgreSQL ledger (`postgres://USER@HOST:PORT/DB`, trust authentication) of the PostgreSQL topologies.
    public var postgres: PostgresLedgerLocation?
    /// The HAProxy binary put in front of several replicas.
    public var haproxy: String

    /// A benchmark plan.
    public init(
        executable: String, rates: [Int], seconds: Double, folder: String,
        topologies: [Topology] = [Topology(backend: .sqlite, replicas: 1)], postgres: PostgresLedgerLocation? = nil,
        haproxy: String = "haproxy"
    ) {
        self.executable = executable
        self.rates = rates
        self.seconds = seconds
        self.folder = folder
        self.topologies = topologies
        self.postgres = postgres
        self.haproxy = haproxy
    }

    /// Runs every topology at every rate; returns the rows and the largest peak resident memory of a gateway process,
    /// in bytes.
    public func run(log: @escaping @Sendable (String) -> Void) async throws -> (rows: [Row], peakBytes: Int) {
        let (providerPort, provider) = try await GatewayBenchmark.startProvider()
        defer { provider.cancel() }
        let client = GatewayBenchmark.client()
        var rows: [Row] = []
        var peak = 0
        do {
            for topology in topologies {
                let (measured, bytes) = try await run(topology, client: client, providerPort: providerPort, log: log)
                rows += measured
                peak = max(peak, bytes)
            }
        } catch {
            try? await client.shutdown()
            throw error
        }
        try await client.shutdown()
        return (rows, peak)
    }

    /// One topology: its gateway processes (and HAProxy), then every rate, direct and through the gateway.
    func run(
        _ topology: Topology, client: HTTPClient, providerPort: Int, log: @escaping @Sendable (String) -> Void
    ) async throws -> (rows: [Row], peakBytes: Int) {
        var ledgerLine: String?
        if topology.backend == .postgres {
            guard let postgres else { throw WireError("a PostgreSQL topology needs --postgres URL") }
            ledgerLine = postgres.description
        }
        let bench = try GatewayBenchmark.writeConfig(
            folder: folder, name: "bench-gateway.yaml", providerPort: providerPort,
            routes: """
                  teacher:
                    deployments:
                      - {provider: loopback, model: ok, price: {input_per_mtok: 1, output_per_mtok: 2}}
                """, ledger: ledgerLine)
        let ledger =
            if let postgres, topology.backend == .postgres {
                try Ledger(postgres: postgres, path: bench.ledgerPath, maximumConnections: 1)
            } else {
                try Ledger(path: bench.ledgerPath)
            }
        defer { ledger.close() }
        func ledgerRows() throws -> Int {
            try ledger.database.query("SELECT COUNT(*) AS n FROM requests", []).first?.int("n") ?? 0
        }
        var processes: [Process] = []
        defer {
            for process in processes { process.terminate() }
            for process in processes { process.waitUntilExit() }
        }
        var ports: [Int] = []
        for _ in 0..<max(1, topology.replicas) {
            let (process, port) = try await GatewayBenchmark.startGateway(
                executable: executable, configPath: bench.configPath)
            processes.append(process)
            ports.append(port)
        }
        var gatewayPort = ports[0]
        if ports.count > 1 {
            let proxy = try await GatewayBenchmark.startHAProxy(
                haproxy, replicaPorts: ports, folder: folder, client: client)
            processes.append(proxy.process)
            gatewayPort = proxy.port
        }
        let body = ByteBuffer(
            data: JSON(
                dictionaryLiteral: ("model", "teacher"),
                ("messages", [["role": "user", "content": "where is my refund?"]]), ("max_tokens", 8)
            ).data
        )
        let direct = "http://127.0.0.1:\(providerPort)/v1/chat/completions"
        let gateway = "http://127.0.0.1:\(gatewayPort)/v1/chat/completions"
        var rows: [Row] = []
        for rate in rates {
            // Warm both paths (connections, caches) before measuring.
            _ = await load(client, url: direct, rate: rate, seconds: 1, body: body, token: nil)
            _ = await load(client, url: gateway, rate: rate, seconds: 1, body: body, token: bench.token)
            let rowsBefore = try ledgerRows()
            log("\(topology.label), rate \(rate)/s: direct…")
            let straight = await load(client, url: direct, rate: rate, seconds: seconds, body: body, token: nil)
            log("\(topology.label), rate \(rate)/s: through the gateway…")
            let replicaIDs = processes.prefix(ports.count).map(\.processIdentifier)
            let before = CPUTime.Reading(pids: replicaIDs)
            let through = await load(client, url: gateway, rate: rate, seconds: seconds, body: body, token: bench.token)
            let usage = CPUTime.usage(from: before, to: CPUTime.Reading(pids: replicaIDs))
            rows.append(
                Row(
                    topology: topology, rate: rate, requests: through.latencies.count + through.failures,
                    directP50: GatewayBenchmark.quantile(straight.latencies, 0.5),
                    directP99: GatewayBenchmark.quantile(straight.latencies, 0.99),
                    gatewayP50: GatewayBenchmark.quantile(through.latencies, 0.5),
                    gatewayP99: GatewayBenchmark.quantile(through.latencies, 0.99), lost: through.failures,
                    ledgerRows: try ledgerRows() - rowsBefore, usage: usage
                )
            )
        }
        let peak =
            processes.prefix(ports.count).map { GatewayBenchmark.peakResidentBytes(pid: $0.processIdentifier) }
            .max() ?? 0
        return (rows, peak)
    }

    /// Starts HAProxy on a free loopback port, round robin over `replicaPorts` (each health-checked on `/healthz`);
    /// returns once it answers `/healthz` itself.
    static func startHAProxy(
        _ binary: String, replicaPorts: [Int], folder: String, client: HTTPClient
    ) async throws -> (process: Process, port: Int) {
        let port = try freePort()
        let servers = replicaPorts.enumerated().map { "    server r\($0) 127.0.0.1:\($1) check inter 500ms\n" }
        let config = """
            global
                maxconn 8192
            defaults
                mode http
                timeout connect 2s
                timeout client 60s
                timeout server 60s
            frontend gateway
                bind 127.0.0.1:\(port)
                default_backend replicas
            backend replicas
                balance roundrobin
                option httpchk GET /healthz

            """ + servers.joined()
        let path = (URL(fileURLWithPath: folder).standardizedFileURL.path as NSString).appendingPathComponent(
            "bench-haproxy.cfg")
        try config.write(toFile: path, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try which(binary))
        process.arguments = ["-f", path]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        for _ in 0..<100 {
            try await Task.sleep(for: .milliseconds(50))
            if let response = try? await client.execute(
                HTTPClientRequest(url: "http://127.0.0.1:\(port)/healthz"), timeout: .seconds(1)),
                response.status == .ok
            {
                return (process, port)
            }
        }
        process.terminate()
        throw WireError("HAProxy did not start on port \(port); see \(path)")
    }

    /// `binary` as a path: itself when it has a slash, else the first match on PATH.
    static func which(_ binary: String) throws -> String {
        if binary.contains("/") { return binary }
        for folder in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/sbin:/usr/bin").split(separator: ":") {
            let candidate = "\(folder)/\(binary)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw WireError("no \(binary) on PATH; apt-get install haproxy (make bench-gateway does)")
    }

    /// A loopback TCP port free now (bound and released).
    static func freePort() throws -> Int {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { throw WireError("cannot open a socket to find a free port") }
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                bind(socket, address, length) == 0 && getsockname(socket, address, &length) == 0
            }
        }
        guard bound else { throw WireError("cannot bind a loopback socket to find a free port") }
        return Int(UInt16(bigEndian: address.sin_port))
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
    /// provider on `providerPort`, and `routes` (YAML under `routes:`); `ledger` instead of the SQLite file beside it
    /// when given (a `postgres://` URL).
    static func writeConfig(
        folder: String, name: String, providerPort: Int, routes: String, ledger: String? = nil
    ) throws -> (configPath: String, ledgerPath: String, token: String) {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let folder = URL(fileURLWithPath: folder).standardizedFileURL.path
        let ledgerPath = (folder as NSString).appendingPathComponent("bench-ledger.sqlite")
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: ledgerPath + suffix) }
        let token = "rk-bench"
        let config = """
            listen: 127.0.0.1:0
            ledger: \(ledger ?? ledgerPath)
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
                        return elapsed.inMilliseconds
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

import ArgumentParser
import Foundation
import Logging
import RetortBenchmarks
import RetortData
import RetortGateway
import RetortGatewayTesting
import RetortTeacher
import RetortUsage

struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway",
        abstract: "The teacher gateway: one OpenAI-compatible endpoint over many LLM providers (FORMATS.md §5–6).",
        subcommands: [Serve.self, Key.self, Confirm.self, Check.self, FakeProvider.self, Bench.self, BenchLedger.self]
    )

    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Serve /v1/chat/completions, /v1/models, /healthz, /metrics and /dashboard.",
            discussion:
                "SIGHUP reloads the config and the deployed students (a bad file is refused and the running one stays); SIGTERM drains and exits. The gateway writes its pid beside the ledger (LEDGER.pid) so `retort deploy` can signal it."
        )
        @Option(help: "The gateway config (YAML).") var config: String
        @Option(help: "Override the config's listen address (HOST:PORT).") var listen: String?
        @Option(help: "Log level: trace, debug, info, notice, warning, error.") var logLevel = "info"

        func validate() throws { try OptionChecks.listenAddress(listen, "--listen") }

        func run() async throws {
            try await ErrorReporting.run {
                var loaded = try GatewayConfig.load(config)
                if let listen { try loaded.listen(on: listen) }
                var logger = Logger(label: "retort.gateway")
                logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
                let gateway = try Gateway(config: loaded, configPath: config, logger: logger)
                let (host, ledger) = (loaded.host, loaded.ledgerPath)
                defer { GatewayProcess.removePidFile(ledgerPath: ledger) }
                try await gateway.serve { port in
                    GatewayProcess.writePidFile(ledgerPath: ledger)
                    let line = "retort gateway listening on http://\(host):\(port) (ledger \(ledger))\n"
                    FileHandle.standardOutput.write(Data(line.utf8))
                }
            }
        }
    }

    struct Key: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a new random client key once, with the YAML entry that holds only its SHA-256."
        )
        @Option(help: "The key's user.") var user: String
        @Option(help: "The user's team.") var team: String
        @Flag(help: "May open /dashboard.") var admin = false

        func run() async throws {
            let token = ClientKey.newToken()
            print("key (shown once; give it to \(user)): \(token)")
            print("")
            print("# add under keys: in the gateway config")
            for line in ClientKey.configEntry(token: token, user: user, team: team, admin: admin) { print(line) }
        }
    }

    struct Confirm: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Confirm a session the runaway breaker stopped; it then runs to the next multiple of its limit."
        )
        @Argument(help: "The session id (from the 409 answer or the dashboard).") var session: String
        @Option(help: "The gateway config (YAML).") var config: String

        func run() async throws {
            try await ErrorReporting.run {
                let loaded = try GatewayConfig.load(config)
                try Ledger(config: loaded).confirmTripped(session: session, time: Date().timeIntervalSince1970)
                print("confirmed \(session); its next request goes through")
            }
        }
    }

    struct FakeProvider: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "fake-provider",
            abstract:
                "A loopback provider (OpenAI /v1/chat/completions and Anthropic /v1/messages) for trying a config.",
            discussion: """
                The model name scripts the answer: intent* (a deterministic intent classifier that reads "Labels:" and
                "Message:" lines, with logprobs on the OpenAI route and none on the Anthropic one), replay* (the teacher
                label recorded for the last user message in --replay rows, else as intent*), ok, e500, e503once, r429, r429long, slow, reset, gone, retired410,
                cut (a stream cut mid-answer), garbage, bad400. Answers carry recorded usage and logprobs.
                """
        )
        @Option(help: "Address to listen on.") var host = "127.0.0.1"
        @Option(help: "Port (0: any free port).") var port = 8788
        @Option(help: "Milliseconds the intent* and replay* models take to answer (a realistic teacher latency).")
        var latencyMs = 0

        func validate() throws {
            try OptionChecks.integer(port, "--port", in: OptionChecks.ports)
            try OptionChecks.integer(latencyMs, "--latency-ms", in: OptionChecks.latencyMilliseconds)
        }
        @Option(
            help:
                "Rows (FORMATS.md §1) whose recorded teacher labels the replay* models answer, matched on the last user message."
        )
        var replay: String?

        func run() async throws {
            var recorded: [String: String] = [:]
            if let replay {
                try await ErrorReporting.run {
                    for row in try RowReader.read(URL(fileURLWithPath: replay), requireTeacher: true) {
                        if case .text(let text) = row.input, let teacher = row.teacher {
                            recorded[text] = teacher.answer
                        }
                    }
                }
            }
            try await LoopbackProvider.serve(
                host: host, port: port, intentLatency: .milliseconds(latencyMs), replay: recorded
            ) { bound in
                FileHandle.standardOutput.write(Data("loopback provider listening on http://\(host):\(bound)\n".utf8))
            }
        }
    }

    struct Bench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Latency the gateway adds over calling a loopback upstream directly, at fixed rates (ledger on)."
        )
        @Option(help: "Requests per second, comma-separated.") var rates = "200,1000"
        @Option(help: "Seconds per rate and target.") var seconds = 10.0
        @Option(help: "Folder for the config and ledger.") var out = "results/bench-gateway"
        @Option(help: "Ledgers to measure, comma-separated: sqlite, postgres (postgres needs --postgres).")
        var ledger = "sqlite"
        @Option(help: "Replica counts for the PostgreSQL ledger, comma-separated (more than 1: behind HAProxy).")
        var replicas = "1"
        @Option(help: "The PostgreSQL ledger to measure: postgres://USER@HOST:PORT/DB (trust authentication).")
        var postgres: String?
        @Option(help: "The HAProxy binary in front of several replicas.") var haproxy = "haproxy"

        func validate() throws {
            _ = try OptionChecks.integers(rates, "--rates", in: 1...1_000_000)
            _ = try OptionChecks.integers(replicas, "--replicas", in: 1...16)
            try OptionChecks.number(seconds, "--seconds", in: OptionChecks.benchmarkSeconds, unit: "seconds")
        }

        /// SQLite with one replica (its file is one machine's), then PostgreSQL at each replica count.
        func topologies() throws(DataError) -> (
            topologies: [GatewayBenchmark.Topology], postgres: PostgresLedgerLocation?
        ) {
            var result: [GatewayBenchmark.Topology] = []
            var location: PostgresLedgerLocation?
            let counts = replicas.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            for name in ledger.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
                switch name {
                case "sqlite": result.append(.init(backend: .sqlite, replicas: 1))
                case "postgres":
                    guard let postgres else {
                        throw DataError(.usage, "--ledger postgres needs --postgres postgres://USER@HOST:PORT/DB")
                    }
                    switch PostgresLedgerLocation.parse(postgres) {
                    case .success(let parsed): location = parsed
                    case .failure(let error): throw DataError(.usage, "--postgres: \(error.message)")
                    }
                    result += counts.map { .init(backend: .postgres, replicas: $0) }
                default:
                    throw DataError(
                        .usage, "--ledger: \"\(name)\" is not sqlite or postgres; write e.g. sqlite,postgres")
                }
            }
            return (result, location)
        }

        func run() async throws {
            try await ErrorReporting.run {
                let rateList = rates.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
                guard !rateList.isEmpty, rateList.allSatisfy({ $0 > 0 }) else {
                    throw DataError(.usage, "--rates: write positive numbers, e.g. 200,1000")
                }
                let executable = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL.path
                let (topologies, location) = try topologies()
                let benchmark = GatewayBenchmark(
                    executable: Bundle.main.executablePath ?? executable, rates: rateList, seconds: seconds,
                    folder: out,
                    topologies: topologies, postgres: location, haproxy: haproxy
                )
                let (rows, peak) = try await benchmark.run { line in
                    FileHandle.standardError.write(Data((line + "\n").utf8))
                }
                let cores = ProcessInfo.processInfo.activeProcessorCount
                print(
                    "| ledger | rate (req/s) | requests | direct p50 ms | direct p99 ms | gateway p50 ms | gateway p99 ms | added p50 ms | added p99 ms | lost | ledger rows | gateway cores | generator + provider cores | machine busy (\(cores) cores) |"
                )
                print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
                func figure(_ value: Double?, _ format: String) -> String {
                    value.map { String(format: format, $0) } ?? "—"
                }
                for row in rows {
                    print(
                        String(
                            format: "| %@ | %d | %d | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %d | %d"
                                + " | %@ | %@ | %@ |",
                            row.topology.label, row.rate, row.requests,
                            row.directP50, row.directP99, row.gatewayP50, row.gatewayP99,
                            row.gatewayP50 - row.directP50,
                            row.gatewayP99 - row.directP99, row.lost, row.ledgerRows,
                            figure(row.usage.processCores, "%.2f"), figure(row.usage.ownCores, "%.2f"),
                            figure(row.usage.machineBusy.map { $0 * 100 }, "%.0f%%")
                        )
                    )
                }
                print(String(format: "gateway peak resident memory: %.1f MB", Double(peak) / 1_048_576))
            }
        }
    }

    struct BenchLedger: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "bench-ledger",
            abstract: "Time of one ledger write (a request row, committed) on SQLite and, with --postgres, PostgreSQL."
        )
        @Option(help: "Writes timed per backend.") var writes = 2000
        @Option(help: "A PostgreSQL ledger to time too: postgres://USER@HOST:PORT/DB (trust authentication).")
        var postgres: String?
        @Option(help: "Folder for the SQLite file.") var out = "results/bench-gateway"

        func validate() throws {
            try OptionChecks.integer(writes, "--writes", in: 1...1_000_000)
        }

        func run() async throws {
            try await ErrorReporting.run {
                var location: PostgresLedgerLocation?
                if let postgres {
                    switch PostgresLedgerLocation.parse(postgres) {
                    case .success(let parsed): location = parsed
                    case .failure(let error): throw DataError(.usage, "--postgres: \(error.message)")
                    }
                }
                let figures = try LedgerWriteBenchmark(writes: writes, postgres: location, folder: out).run()
                print("| backend | writes | p50 ms | p99 ms |")
                print("|---|---|---|---|")
                for row in figures {
                    print(String(format: "| %@ | %d | %.3f | %.3f |", row.backend, writes, row.p50, row.p99))
                }
            }
        }
    }

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate a gateway config and print its routes (exit 65 with FILE:LINE on errors)."
        )
        @Option(help: "The gateway config (YAML).") var config: String

        func run() async throws {
            try await ErrorReporting.run {
                let loaded = try GatewayConfig.load(config)
                for route in loaded.routes.values.sorted(by: { $0.name < $1.name }) {
                    let deployments = route.deployments.map(\.id).joined(separator: " → ")
                    print("\(route.name) (fallback \(route.fallback.rawValue)): \(deployments)")
                }
                print(
                    "\(loaded.keys.count) keys, \(loaded.providers.count) providers; ledger \(loaded.ledger.description)"
                )
            }
        }
    }
}

struct Usage: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Spend and traffic from the gateway's ledger, grouped by user, team, route, model or day."
    )
    @Option(help: "The gateway config (YAML).") var config: String
    @Option(help: "Group by user, team, route, model or day.") var by = "user"
    @Option(help: "Only the last N days/hours (7d, 24h).") var since: String?
    @Flag(help: "Print a JSON array (FORMATS.md §6).") var json = false
    @Flag(help: "Print CSV.") var csv = false

    func run() async throws {
        try await ErrorReporting.run {
            guard let grouping = UsageReport.Grouping(rawValue: by) else {
                throw DataError(.usage, "--by: use user, team, route, model or day")
            }
            let start = try UsageReport.start(since: since)
            let report = try UsageReport.load(config: try GatewayConfig.load(config), by: grouping, since: start)
            if json {
                print(report.json.text)
            } else if csv {
                print(report.csv, terminator: "")
            } else {
                print(report.table(grouping: grouping), terminator: "")
            }
        }
    }
}

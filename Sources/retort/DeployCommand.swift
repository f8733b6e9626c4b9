import ArgumentParser
import Foundation
import RetortBenchmarks
import RetortData
import RetortDeployments
import RetortEvals
import RetortGateway
import RetortReports
import RetortSearch
import RetortStudents
import RetortTeacher

/// `retort deploy`: put a run's recommended student (or cascade) behind a gateway route, and watch it (FORMATS.md §8).
struct Deploy: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve a run's recommended student on a gateway route, with shadow checks and automatic rollback.",
        discussion: """
            retort deploy RUN_DIR --config gateway.yaml --route NAME [--threshold T] [--shadow 0.05] [--min-agreement 0.97]
            retort deploy status|rollback|history --config gateway.yaml [--route NAME]
            """,
        subcommands: [Put.self, Status.self, Rollback.self, History.self, Bench.self],
        defaultSubcommand: Put.self
    )

    struct Put: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "put",
            abstract: "Put RUN_DIR's recommended student on a route (the default: `retort deploy RUN_DIR ...`).",
            discussion: """
                The model is copied beside the ledger, the deployment is stored in the ledger, and a running gateway
                (found through LEDGER.pid) is sent SIGHUP so it loads the student without a restart. The student
                answers the inputs whose top probability is at least the threshold (a cascade's own threshold, 0 for a
                student) and the teacher deployments answer the rest. A share (--shadow) of the student's answers is
                also sent to the teacher in the background; when the upper bound of the Wilson 95% interval of the
                agreement on the last 200 of them falls below --min-agreement (from 20 answers on), the route goes
                back to the teacher by itself.

                A structured run (report.json task_kind "structured", FORMATS.md §9) deploys the same way: the answer's
                content is the student's JSON object as compact canonical JSON (keys sorted, no spaces), its
                confidence plays the top probability's part, and a shadow check agrees when the teacher's answer parses
                as an equal object (an answer that is not one flat JSON object disagrees).
                """
        )
        @Argument(help: "A finished run folder (results/JOB/latest).") var runDirectory: String
        @Option(help: "The gateway config (YAML).") var config: String
        @Option(help: "The route (the model name clients send) the student serves.") var route: String
        @Option(
            help: ArgumentHelp(
                "Answer with the student when its top probability (structured: confidence) is at least this "
                    + "(default: the run's)."))
        var threshold: Double?
        @Option(help: "Share of student answers also sent to the teacher to check agreement (0 to 1).")
        var shadow = 0.05
        @Option(help: "Roll back when the agreement interval's upper bound falls below this.")
        var minAgreement = 0.97
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await ErrorReporting.run {
                for (name, value) in [("--shadow", shadow), ("--min-agreement", minAgreement)]
                where !(0...1).contains(value) {
                    throw DataError(.usage, "\(name) is a share between 0 and 1, not \(value)")
                }
                if let threshold, !(0...1).contains(threshold) {
                    throw DataError(.usage, "--threshold is a probability between 0 and 1, not \(threshold)")
                }
                let loaded = try GatewayConfig.load(config)
                try Deployer.requireRoute(route, in: loaded, configPath: config)
                let placed = try Deployer.put(
                    report: try loadReport(runDirectory), runDirectory: runDirectory, config: loaded, route: route,
                    threshold: threshold, shadow: shadow, minAgreement: minAgreement)
                let signalled = GatewayProcess.signalReload(ledgerPath: loaded.ledgerPath)
                if output.json {
                    print(placed.record.statusJSON(agreement: ShadowAgreement(agreeing: 0, count: 0)).text)
                    return
                }
                print(Deployer.line(placed, route: route))
                print(
                    signalled.map { "the gateway (pid \($0)) is reloading; `retort deploy status` shows it serving" }
                        ?? "no gateway is running on this ledger; it serves the student from its next start or SIGHUP"
                )
            }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The newest deployment of each route (or one route): state, shadow agreement, rollback.")
        @Option(help: "The gateway config (YAML).") var config: String
        @Option(help: "Only this route (--json then prints one object).") var route: String?
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await ErrorReporting.run {
                let ledger = try Deployer.ledger(config)
                let records = try ledger.newestDeployments(route: route)
                if let route, records.isEmpty {
                    throw DataError(.usage, "nothing was ever deployed on route \"\(route)\"", file: config)
                }
                print(
                    try Deployer.listing(
                        records, ledger: ledger, json: output.json, single: route != nil,
                        empty: "nothing deployed yet; `retort deploy RUN_DIR --config ... --route NAME`"))
            }
        }
    }

    struct Rollback: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Take the student off a route now; the teacher answers everything until the next deploy.")
        @Option(help: "The gateway config (YAML).") var config: String
        @Option(help: "The route.") var route: String
        @Option(help: "Why (kept in the ledger).") var reason = "rolled back by an operator"

        func run() async throws {
            try await ErrorReporting.run {
                let ledger = try Deployer.ledger(config)
                let serving = try Deployer.rollBack(route: route, reason: reason, ledger: ledger, configPath: config)
                print("rolled back \(serving.student) on route \(route); the teacher answers everything")
                if let pid = GatewayProcess.signalReload(ledgerPath: ledger.path) {
                    print("the gateway (pid \(pid)) is reloading")
                }
            }
        }
    }

    struct Bench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Requests/s and p50/p99 of the gateway answering from RUN_DIR's student in-process vs a loopback teacher."
        )
        @Argument(help: "A finished run folder whose recommendation is a student or a cascade.") var runDirectory:
            String
        @Option(help: "Rows (FORMATS.md §1, or §9 for a structured run) whose inputs the requests carry (text tasks).")
        var input: String
        @Option(help: "The loopback teacher's latency in ms.") var teacherLatencyMs = 300
        @Option(help: "Clients in flight, comma-separated.") var concurrency = "1,32"
        @Option(help: "Seconds per route and concurrency.") var seconds = 10.0
        @Option(help: "Folder for the config and ledger.") var out = "results/bench-deploy"

        func validate() throws {
            try OptionChecks.integer(teacherLatencyMs, "--teacher-latency-ms", in: OptionChecks.latencyMilliseconds)
            _ = try OptionChecks.integers(concurrency, "--concurrency", in: 1...10_000)
            try OptionChecks.number(seconds, "--seconds", in: OptionChecks.benchmarkSeconds, unit: "seconds")
        }

        func run() async throws {
            try await ErrorReporting.run {
                let levels = concurrency.split(separator: ",").compactMap {
                    Int($0.trimmingCharacters(in: .whitespaces))
                }
                guard !levels.isEmpty, levels.allSatisfy({ $0 > 0 }) else {
                    throw DataError(.usage, "--concurrency: write positive numbers, e.g. 1,32")
                }
                let report = try loadReport(runDirectory)
                guard let candidateID = report.recommendation.candidate else {
                    throw DataError(
                        .usage, "the run recommends keeping the teacher; nothing to serve", file: runDirectory)
                }
                let inputURL = URL(fileURLWithPath: input)
                let texts =
                    report.taskKind == TaskKind.structured.rawValue
                    ? try RowReader.readStructured(inputURL, schema: nil, requireTeacher: false).map(\.input)
                    : try RowReader.read(inputURL, requireTeacher: false).compactMap { row in
                        if case .text(let text) = row.input { text } else { nil }
                    }
                guard !texts.isEmpty else { throw DataError(.badData, "no text inputs", file: input) }
                let model = URL(fileURLWithPath: runDirectory).appendingPathComponent("model").standardizedFileURL.path
                let record = DeploymentRecord(
                    time: Date().timeIntervalSince1970, route: "student", candidate: candidateID,
                    kind: report.recommendation.kind, runDirectory: runDirectory, modelDirectory: model,
                    task: report.task, threshold: 0, shadow: 0, minAgreement: 0,
                    usdPerVCPUSecond: Deployer.usdPerVCPUSecond(report.candidates.first { $0.id == candidateID }))
                let executable = Bundle.main.executablePath ?? CommandLine.arguments[0]
                let benchmark = StudentBenchmark(
                    executable: executable, deployment: record, inputs: texts,
                    teacherLatency: .milliseconds(teacherLatencyMs), concurrencies: levels, seconds: seconds,
                    folder: out)
                let (rows, peak) = try await benchmark.run { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
                print("| route | clients | answers | failed | answers/s | p50 ms | p99 ms | answered by the student |")
                print("|---|---|---|---|---|---|---|---|")
                for row in rows {
                    print(
                        String(
                            format: "| %@ | %d | %d | %d | %.1f | %.2f | %.2f | %d |", row.target, row.concurrency,
                            row.answered, row.failed, row.throughput, row.p50, row.p99, row.servedByStudent))
                }
                for level in levels {
                    guard let student = rows.first(where: { $0.target == "student" && $0.concurrency == level }),
                        let teacher = rows.first(where: { $0.target == "teacher" && $0.concurrency == level })
                    else { continue }
                    print(
                        String(
                            format: "%d clients: the student answers %.0f× the requests per second at %.0f× lower p50",
                            level, student.throughput / max(teacher.throughput, 1e-9),
                            teacher.p50 / max(student.p50, 1e-9)))
                }
                print(
                    String(
                        format:
                            "candidate %@, teacher latency %d ms, %.0f s per route and concurrency, gateway peak RSS %.0f MB",
                        candidateID, teacherLatencyMs, seconds, Double(peak) / 1_048_576))
            }
        }
    }

    struct History: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every deployment, newest first.")
        @Option(help: "The gateway config (YAML).") var config: String
        @Option(help: "Only this route.") var route: String?
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await ErrorReporting.run {
                let ledger = try Deployer.ledger(config)
                print(
                    try Deployer.listing(
                        try ledger.deployments(route: route), ledger: ledger, json: output.json, single: false,
                        empty: "nothing deployed yet"))
            }
        }
    }
}

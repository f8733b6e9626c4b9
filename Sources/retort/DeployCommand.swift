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
                """
        )
        @Argument(help: "A finished run folder (results/JOB/latest).") var runDirectory: String
        @Option(help: "The gateway config (YAML).") var config: String
        @Option(help: "The route (the model name clients send) the student serves.") var route: String
        @Option(help: "Answer with the student when its top probability is at least this (default: the run's).")
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
                guard loaded.routes[route] != nil else {
                    throw DataError(
                        .usage,
                        "no route \"\(route)\" in the config; it has \(loaded.routes.keys.sorted().joined(separator: ", "))",
                        file: config)
                }
                let report = try loadReport(runDirectory)
                let recommendation = report.recommendation
                guard recommendation.kind == "student" || recommendation.kind == "cascade",
                    let candidateID = recommendation.candidate
                else {
                    throw DataError(
                        .usage,
                        "the run recommends keeping the teacher, so there is no student to deploy: \(recommendation.reason)",
                        file: runDirectory)
                }
                let modelFolder = URL(fileURLWithPath: runDirectory).appendingPathComponent("model")
                do throws(StudentError) { _ = try ModelBundle.load(from: modelFolder) } catch {
                    throw DataError(
                        .badData, error.message, file: error.file ?? modelFolder.relativePath, line: error.line)
                }
                let chosen = threshold ?? recommendation.threshold ?? 0
                let candidate = report.candidates.first { $0.id == candidateID }
                let validation = DeployCheck.validationAgreement(
                    report: report, candidate: candidateID, threshold: chosen)
                if let validation, let upper = validation.estimate.ci95.last, upper < minAgreement {
                    throw DataError(
                        .usage,
                        String(
                            format:
                                "%@ at threshold %.4f agreed %.3f [%.3f, %.3f] with the teacher on validation (coverage %.0f%%): below --min-agreement %.3f. %@",
                            candidateID, chosen, validation.estimate.value, validation.estimate.ci95.first ?? 0, upper,
                            validation.coverage * 100, minAgreement,
                            DeployCheck.suggestion(report: report, candidate: candidateID, minAgreement: minAgreement)),
                        file: runDirectory)
                }
                let usdPerVCPUSecond = DeployCheck.usdPerVCPUSecond(candidate)
                let now = Date().timeIntervalSince1970
                let target = try DeployCheck.copyModel(
                    from: modelFolder, ledgerPath: loaded.ledgerPath, route: route, candidate: candidateID, time: now)
                let ledger = try Ledger(path: loaded.ledgerPath)
                let record: DeploymentRecord
                do {
                    record = try ledger.deploy(
                        DeploymentRecord(
                            time: now, route: route, candidate: candidateID, kind: recommendation.kind,
                            runDirectory: URL(fileURLWithPath: runDirectory).resolvingSymlinksInPath().path,
                            modelDirectory: target, task: report.task, threshold: chosen, shadow: shadow,
                            minAgreement: minAgreement, usdPerVCPUSecond: usdPerVCPUSecond,
                            validationAgreement: validation.map {
                                [$0.estimate.value, $0.estimate.ci95.first ?? 0, $0.estimate.ci95.last ?? 1]
                            }))
                } catch {
                    throw DataError(
                        .cannotCreateOutput, "cannot store the deployment: \(error)", file: loaded.ledgerPath)
                }
                let signalled = GatewayProcess.signalReload(ledgerPath: loaded.ledgerPath)
                if output.json {
                    print(record.statusJSON(agreement: ShadowAgreement(agreeing: 0, count: 0)).text)
                    return
                }
                var line = String(
                    format: "deployed %@ on route %@: threshold %.4f", record.student, route, chosen)
                if let validation {
                    line += String(
                        format: " (validation coverage %.0f%%, agreement %.3f [%.3f, %.3f])", validation.coverage * 100,
                        validation.estimate.value, validation.estimate.ci95.first ?? 0,
                        validation.estimate.ci95.last ?? 1)
                }
                line += String(format: ", shadow %.0f%%, rollback below %.3f", shadow * 100, minAgreement)
                print(line)
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
                let ledger = try DeployCheck.ledger(config)
                let records = try ledger.newestDeployments(route: route)
                if let route, records.isEmpty {
                    throw DataError(.usage, "nothing was ever deployed on route \"\(route)\"", file: config)
                }
                try DeployCheck.show(
                    records, ledger: ledger, json: output.json, single: route != nil,
                    empty: "nothing deployed yet; `retort deploy RUN_DIR --config ... --route NAME`")
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
                let ledger = try DeployCheck.ledger(config)
                guard let serving = try ledger.deployments(route: route).first(where: { $0.state == .serving }) else {
                    throw DataError(.usage, "no student is serving route \"\(route)\"", file: config)
                }
                try ledger.rollBack(deployment: serving.id, time: Date().timeIntervalSince1970, reason: reason)
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
        @Option(help: "Rows (FORMATS.md §1) whose inputs the requests carry (text tasks).") var input: String
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
                let texts = try RowReader.read(URL(fileURLWithPath: input), requireTeacher: false).compactMap { row in
                    if case .text(let text) = row.input { text } else { nil }
                }
                guard !texts.isEmpty else { throw DataError(.badData, "no text inputs", file: input) }
                let model = URL(fileURLWithPath: runDirectory).appendingPathComponent("model").standardizedFileURL.path
                let record = DeploymentRecord(
                    time: Date().timeIntervalSince1970, route: "student", candidate: candidateID,
                    kind: report.recommendation.kind, runDirectory: runDirectory, modelDirectory: model,
                    task: report.task, threshold: 0, shadow: 0, minAgreement: 0,
                    usdPerVCPUSecond: DeployCheck.usdPerVCPUSecond(report.candidates.first { $0.id == candidateID }))
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
                let ledger = try DeployCheck.ledger(config)
                try DeployCheck.show(
                    try ledger.deployments(route: route), ledger: ledger, json: output.json, single: false,
                    empty: "nothing deployed yet")
            }
        }
    }
}

/// What `retort deploy` checks and prints.
enum DeployCheck {
    /// The run's serving price: its cost per 1M calls over its measured p50 (so the gateway prices each student answer
    /// by its own measured time); the default $0.05 per vCPU-hour when the run has neither.
    static func usdPerVCPUSecond(_ candidate: TrialResult?) -> Double {
        if let cost = candidate?.costPer1MUSD, let p50 = candidate?.latencyMsP50, cost > 0, p50 > 0 {
            return cost / (p50 / 1000 * 1_000_000)
        }
        return 0.05 / 3600
    }

    /// The run's validation agreement of `candidate` answering at `threshold`: the curve point with the largest
    /// threshold at or below it (it answers at least the same inputs, so its agreement is not flattering), or the
    /// candidate's own agreement at threshold 0.
    static func validationAgreement(report: RunReport, candidate: String, threshold: Double) -> (
        estimate: MetricEstimate, coverage: Double
    )? {
        if let curve = report.cascades?.first(where: { $0.candidate == candidate }) {
            let points = curve.validation.filter { $0.threshold <= threshold + 1e-12 && $0.agreement != nil }
            if let point = points.max(by: { $0.threshold < $1.threshold }), let agreement = point.agreement {
                return (agreement, point.coverage)
            }
        }
        guard threshold <= 0,
            let agreement = report.candidates.first(where: { $0.id == candidate })?.metrics["agreement"]
        else { return nil }
        return (agreement, 1)
    }

    /// Names the widest-coverage threshold whose validation agreement meets `minAgreement`, if any.
    static func suggestion(report: RunReport, candidate: String, minAgreement: Double) -> String {
        let points =
            report.cascades?.first(where: { $0.candidate == candidate })?.validation.filter {
                ($0.agreement?.value ?? 0) >= minAgreement
            } ?? []
        guard let best = points.max(by: { $0.coverage < $1.coverage }), let agreement = best.agreement else {
            return
                "No threshold on the run's cascade curve agrees that well; keep the teacher or lower --min-agreement."
        }
        return String(
            format: "The cascade at --threshold %.4f would: coverage %.0f%%, agreement %.3f [%.3f, %.3f].",
            best.threshold, best.coverage * 100, agreement.value, agreement.ci95.first ?? 0, agreement.ci95.last ?? 1)
    }

    /// Copies the model folder beside the ledger (temporary folder, then rename); returns the copy's path.
    static func copyModel(from folder: URL, ledgerPath: String, route: String, candidate: String, time: Double) throws
        -> String
    {
        let root = URL(fileURLWithPath: ledgerPath).deletingLastPathComponent().appendingPathComponent("deployments")
        let safeRoute = String(route.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" })
        let name = "\(safeRoute)-\(Int(time * 1000))-\(candidate)"
        let target = root.appendingPathComponent(name)
        let temporary = root.appendingPathComponent(".\(name).partial")
        do {
            try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
            try? FileManager.default.removeItem(at: temporary)
            try FileManager.default.copyItem(at: folder, to: temporary)
            try FileManager.default.moveItem(at: temporary, to: target)
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw DataError(
                .cannotCreateOutput, "cannot copy the model beside the ledger: \(FileProblem.reason(error))",
                file: root.path)
        }
        return target.path
    }

    /// The ledger of an existing gateway config.
    static func ledger(_ config: String) throws -> Ledger {
        let loaded = try GatewayConfig.load(config)
        guard FileManager.default.fileExists(atPath: loaded.ledgerPath) else {
            throw DataError(.missingInput, "no ledger yet: nothing was deployed", file: loaded.ledgerPath)
        }
        return try Ledger(path: loaded.ledgerPath)
    }

    /// Prints `records` with their shadow agreement: the FORMATS.md §8 JSON (one object when `single`) or a line each.
    static func show(_ records: [DeploymentRecord], ledger: Ledger, json: Bool, single: Bool, empty: String) throws {
        let agreements = try records.map { try ledger.shadowAgreement(deployment: $0.id) }
        if json {
            let objects = zip(records, agreements).map { $0.statusJSON(agreement: $1) }
            print((single ? objects[0] : JSON.array(objects)).text)
            return
        }
        if records.isEmpty { print(empty) }
        for (record, agreement) in zip(records, agreements) { print(summary(record, agreement)) }
    }

    /// One line per deployment.
    static func summary(_ record: DeploymentRecord, _ agreement: ShadowAgreement) -> String {
        var text = "\(record.route): \(record.student) \(record.state.rawValue), threshold "
        text += String(
            format: "%.4f, shadow %.0f%%, floor %.3f", record.threshold, record.shadow * 100, record.minAgreement)
        if agreement.count > 0 {
            let (low, high) = agreement.interval
            text += String(
                format: "; shadow agreement %.3f [%.3f, %.3f] over %d", agreement.value, low, high, agreement.count)
        } else {
            text += "; no shadow answers yet"
        }
        if let reason = record.reason { text += "; \(reason)" }
        return text
    }
}

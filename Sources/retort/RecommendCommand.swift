import ArgumentParser
import Foundation
import RetortData
import RetortNumerics
import RetortReports
import RetortSearch

struct Recommend: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Re-decide a finished run under new constraints from its stored results, without training.")

    @Argument(help: "A finished run folder (results/JOB/RUN-ID or results/JOB/latest).")
    var runDirectory: String
    @Option(name: .customLong("max-size"), help: "Largest model: bytes, 500KB, 2MB.")
    var maxSize: String?
    @Option(name: .customLong("max-latency-ms"), help: "Largest p50 latency in ms.")
    var maxLatencyMs: Double?
    @Option(name: .customLong("max-drop"), help: "Allowed drop against the teacher on the metric.")
    var maxDrop: Double?
    @Option(help: "The confidence the student must reach that its true drop is within the allowed drop (0.5–0.999).")
    var confidence: Double?
    @OptionGroup var trafficOptions: TrafficOptions
    @Option(help: "Metric to decide on: accuracy, agreement or macro_f1.")
    var metric: String?
    @Option(
        help:
            "A device profile (phone, edge-cpu, server-vcpu, or a devices/*.yaml file): its memory caps the size and the latency limit applies to its estimated latency."
    )
    var device: String?
    @OptionGroup var output: OutputOptions

    func validate() throws {
        try OptionChecks.size(maxSize, "--max-size")
        try OptionChecks.number(maxLatencyMs, "--max-latency-ms", in: .positive(upTo: 86_400_000), unit: "ms")
        try OptionChecks.number(maxDrop, "--max-drop", in: NumberRange(0, 1))
        try OptionChecks.number(confidence, "--confidence", in: NumberRange(0.5, 0.999))
    }

    func run() async throws {
        try await ErrorReporting.run {
            let report = try loadReport(runDirectory)
            var constraints = report.constraints
            if let maxSize {
                guard let bytes = ByteSize.parse(maxSize) else {
                    throw DataError(.usage, "--max-size \"\(maxSize)\" is not a size; write bytes or 500KB, 2MB")
                }
                constraints.maxModelBytes = bytes
            }
            if let maxLatencyMs { constraints.maxLatencyMs = maxLatencyMs }
            if let device {
                let profile = try DeviceProfile.named(device)
                constraints.device = profile.name
                constraints.maxModelBytes = min(constraints.maxModelBytes ?? profile.memoryBytes, profile.memoryBytes)
                // Stored latencies were measured on the machine that ran the search; this assumes the same kind.
                constraints.latencyScale = MachineSpeed.sgemmFlopsPerSecond() / profile.flopsPerSecond
                say(
                    String(
                        format:
                            "Device %@: latency estimated as measured p50 × %.2f (this machine's sgemm FLOP/s / the device's).",
                        profile.name, constraints.latencyScale ?? 1))
            }
            if let maxDrop {
                guard (0...1).contains(maxDrop) else { throw DataError(.usage, "--max-drop must lie in [0, 1]") }
                constraints.maxDrop = maxDrop
            }
            if let confidence { constraints.confidence = confidence }
            let traffic = try trafficOptions.resolve()
            let result = try WhatIf.decide(
                report, constraints: constraints, metric: metric, traffic: traffic?.perMonth,
                trafficSource: traffic?.source)
            if output.json {
                try output.printJSON(
                    RecommendJSON(
                        kind: result.recommendation.kind, candidate: result.recommendation.candidate,
                        reason: result.recommendation.reason, change: result.change, constraints: constraints,
                        untrained: result.untrained.map(\.id), economics: result.economics))
                return
            }
            switch result.recommendation {
            case .distill(let candidate, let reason): say("Recommendation: distill into `\(candidate)`. \(reason).")
            case .cascade(let candidate, let point, let reason):
                say(
                    String(
                        format: "Recommendation: cascade `%@` at %@ ≥ %.3f. %@.", candidate, report.confidenceName,
                        point.threshold, reason))
            case .noDistillation(let reason): say("Recommendation: no distillation. \(reason).")
            }
            if let money = EconomicsText.line(result.economics) { say(money) }
            say("Compared with the run: \(result.change).")
            guard !result.untrained.isEmpty else { return }
            say("")
            say("\(result.untrained.count) candidates fit these constraints but were not trained to full fidelity:")
            for trial in result.untrained.prefix(20) {
                say("- \(trial.id) (\(trial.status.rawValue)\(trial.reason.map { ": \($0)" } ?? ""))")
            }
            if result.untrained.count > 20 { say("- … and \(result.untrained.count - 20) more") }
            var command = ["retort", "search"]
            let journal = URL(fileURLWithPath: runDirectory).appendingPathComponent("journal.jsonl")
            if let header = try? JournalRecord.read(journal).first, let source = header.source {
                let isJob = source.hasSuffix(".yaml") || source.hasSuffix(".yml") || source.hasSuffix(".json")
                command += isJob ? [source] : ["--task", source]
                if let catalog = header.options?["candidates"] { command += ["--candidates", catalog] }
                if let seed = header.options?["seed"] { command += ["--seed", seed] }
            } else {
                command += ["JOB.yaml"]
            }
            command += ["--strategy", "exhaustive"]
            if let bytes = constraints.maxModelBytes { command += ["--max-size", "\(bytes)"] }
            if let latency = constraints.maxLatencyMs { command += ["--max-latency-ms", "\(latency)"] }
            command += ["--max-drop", "\(constraints.maxDrop)"]
            if let metric { command += ["--metric", metric] }
            say("To train them: \(command.joined(separator: " "))")
        }
    }
}

/// `retort recommend --json`.
struct RecommendJSON: Encodable {
    let kind: String
    let candidate: String?
    let reason: String
    let change: String
    let constraints: Constraints
    let untrained: [String]
    let economics: Economics?
}

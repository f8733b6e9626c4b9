import ArgumentParser
import Foundation
import RetortData
import RetortHistory
import RetortSearch

struct Suggest: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Predict the frontier and the recommendation from history, without training (seconds), with uncertainty.",
        discussion: """
            Every figure printed is a prediction from past searches (k nearest past trials over task meta-features and
            candidate descriptors), never a measurement; the last line is the `retort search` command that confirms it.
            """)

    @OptionGroup var input: JobInput
    @OptionGroup var options: SearchOptions
    @OptionGroup var history: HistoryOptions
    @OptionGroup var output: OutputOptions
    @Option(help: "Rows of the prediction table (the predicted frontier first).")
    var top = 10

    func validate() throws {
        guard input.job != nil || input.task != nil else { throw ValidationError("give a job file or --task DIR") }
        try OptionChecks.integer(top, "--top", in: 1...100_000)
    }

    /// One suggested candidate.
    struct Row: Encodable {
        let id: String
        let family: String
        let precision: String
        let sizeBytes: Int
        let flopsPerExample: Int
        let predicted: CandidatePrediction
        let chanceToMeetBar: Double
        let onPredictedFrontier: Bool

        enum CodingKeys: String, CodingKey {
            case id, family, precision, predicted
            case sizeBytes = "size_bytes"
            case flopsPerExample = "flops_per_example"
            case chanceToMeetBar = "chance_to_meet_bar"
            case onPredictedFrontier = "on_predicted_frontier"
        }
    }

    func run() async throws {
        try await ErrorReporting.run {
            guard var job = try input.load() else { throw DataError(.usage, "give a job file or --task DIR") }
            try options.apply(to: &job)
            let task = try TaskData.load(job)
            let settings = try SearchSettings(job: job, strategy: .learned, workers: 1)
            let metric = try SearchEngine.primaryMetric(task: task, settings: settings).rawValue
            let path = history.resolvedPath
            guard FileManager.default.fileExists(atPath: path) else {
                throw DataError(
                    .missingInput, "no history yet: run `retort search` on a few tasks first (or give --history PATH)",
                    file: path)
            }
            let predictor = try HistoryPredictor(
                store: try HistoryStore(path: path), kind: task.kind.rawValue, metric: metric)
            guard predictor.taskCount > 0 else {
                throw DataError(
                    .missingInput, "the history holds no \(task.kind.rawValue) task scored by \(metric) yet", file: path
                )
            }
            let meta = try MetaFeatures(task: task, seed: job.seed)
            let bar = -settings.constraints.maxDrop
            var rows: [Row] = []
            for candidate in SearchEngine.candidateSpace(task: task, settings: settings)
            where candidate.status == .complete {
                guard
                    let prediction = predictor.predict(
                        meta: meta, family: candidate.family, precision: candidate.precision,
                        sizeBytes: candidate.sizeBytes, flops: candidate.flopsPerExample)
                else { continue }
                rows.append(
                    Row(
                        id: candidate.id, family: candidate.family.rawValue, precision: candidate.precision.rawValue,
                        sizeBytes: candidate.sizeBytes, flopsPerExample: candidate.flopsPerExample,
                        predicted: prediction,
                        chanceToMeetBar: Self.normalCDF((prediction.gap - bar) / prediction.gapSD),
                        onPredictedFrontier: false))
            }
            // Predicted frontier: the search's own dominance over predicted gap ↑, FLOPs ↓, size ↓.
            let frontier = Set(
                paretoFrontier(
                    of: rows.map {
                        FrontierPoint(
                            id: $0.id, quality: $0.predicted.gap, latencyTier: 0, flops: Double($0.flopsPerExample),
                            size: Double($0.sizeBytes))
                    }
                ).map(\.id))
            rows = rows.map {
                Row(
                    id: $0.id, family: $0.family, precision: $0.precision, sizeBytes: $0.sizeBytes,
                    flopsPerExample: $0.flopsPerExample, predicted: $0.predicted, chanceToMeetBar: $0.chanceToMeetBar,
                    onPredictedFrontier: frontier.contains($0.id))
            }
            let qualifying = rows.filter { $0.predicted.gap >= bar }
            let pick = qualifying.min {
                ($0.flopsPerExample, $0.sizeBytes, $0.id) < ($1.flopsPerExample, $1.sizeBytes, $1.id)
            }
            let confirm =
                "retort search "
                + (input.job.map { "\($0)" } ?? "--task \(input.task ?? "")")
                + " --strategy learned" + (history.path.map { " --history \($0)" } ?? "")
            let sorted = rows.sorted {
                ($0.onPredictedFrontier ? 0 : 1, -$0.predicted.gap, $0.flopsPerExample)
                    < ($1.onPredictedFrontier ? 0 : 1, -$1.predicted.gap, $1.flopsPerExample)
            }
            if output.json {
                struct Suggestion: Encodable {
                    let task: String
                    let historyTasks: Int
                    let metric: String
                    let recommendation: String
                    let candidate: String?
                    let candidates: [Row]
                    let confirm: String
                    let similarTasks: [SimilarTask]
                    enum CodingKeys: String, CodingKey {
                        case task, metric, recommendation, candidate, candidates, confirm
                        case historyTasks = "history_tasks"
                        case similarTasks = "similar_tasks"
                    }
                }
                try output.printJSON(
                    Suggestion(
                        task: task.name, historyTasks: predictor.taskCount, metric: metric,
                        recommendation: pick == nil ? "no-distillation" : "student", candidate: pick?.id,
                        candidates: sorted, confirm: confirm, similarTasks: predictor.similarTasks(to: meta)))
                return
            }
            say(
                "Predicted from \(predictor.taskCount) past \(task.kind.rawValue) task(s), nothing trained: gap = student − teacher on validation \(metric); the bar is \(String(format: "%+.4f", bar)).\n"
            )
            var lines = [
                "| candidate | predicted gap ± 2 sd | chance to meet the bar | predicted p50 ms | size | FLOPs/ex | predicted frontier |",
                "|---|---|---|---|---|---|---|",
            ]
            for row in sorted.prefix(top) {
                lines.append(
                    String(
                        format: "| %@ | %+.4f ± %.4f | %.0f%% | %@ | %@ | %d | %@ |", row.id, row.predicted.gap,
                        2 * row.predicted.gapSD, 100 * row.chanceToMeetBar,
                        row.predicted.latencyMsP50.map { String(format: "%.4f", $0) } ?? "—",
                        ByteSize.format(row.sizeBytes), row.flopsPerExample, row.onPredictedFrontier ? "yes" : ""))
            }
            say(output.styled(lines.joined(separator: "\n")) + "\n")
            if let pick {
                say(
                    String(
                        format:
                            "Predicted recommendation: distill into %@ (predicted gap %+.4f ± %.4f, %.0f%% chance to meet the bar); the cheapest of %d candidates predicted to qualify.",
                        pick.id, pick.predicted.gap, 2 * pick.predicted.gapSD, 100 * pick.chanceToMeetBar,
                        qualifying.count))
            } else {
                let best = rows.max { $0.predicted.gap < $1.predicted.gap }
                say(
                    "Predicted recommendation: no distillation; the most promising, "
                        + (best.map {
                            String(
                                format: "%@ (predicted gap %+.4f ± %.4f)", $0.id, $0.predicted.gap,
                                2 * $0.predicted.gapSD)
                        }
                            ?? "none") + ", is predicted below the bar.")
            }
            let similar = predictor.similarTasks(to: meta)
            if !similar.isEmpty {
                say(
                    "Most similar past tasks: "
                        + similar.map { task in
                            "\(task.task) (\(task.recommendation)"
                                + (task.bestGap.map { String(format: ", best student %+.1f pt", $0 * 100) } ?? "") + ")"
                        }.joined(separator: "; "))
            }
            say("Confirm with: \(confirm)")
        }
    }

    /// Φ(x), the standard normal distribution function.
    static func normalCDF(_ x: Double) -> Double { 0.5 * erfc(-x / 2.squareRoot()) }
}

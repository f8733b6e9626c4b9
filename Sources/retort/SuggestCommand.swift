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

    func run() async throws {
        try await ErrorReporting.run {
            guard var job = try input.load() else { throw DataError(.usage, "give a job file or --task DIR") }
            try options.apply(to: &job)
            let path = history.resolvedPath
            let store = try history.existingStore()
            let settings = try SearchSettings(job: job, strategy: .learned, workers: 1)
            let structured = TaskFile.declaresStructured(job)
            let kind: String
            let metric: String
            let predict: (HistoryPredictor, String) throws -> Suggestion
            if structured {
                let task = try StructuredTaskData.load(job)
                kind = TaskKind.structured.rawValue
                metric = try StructuredHistory.primaryMetric(task: task, settings: settings)
                predict = { predictor, confirm in
                    Suggestion.predict(
                        structured: task, settings: settings, seed: job.seed, metric: metric, predictor: predictor,
                        confirm: confirm)
                }
            } else {
                let task = try TaskData.load(job)
                kind = task.kind.rawValue
                metric = try SearchEngine.primaryMetric(task: task, settings: settings).rawValue
                predict = { predictor, confirm in
                    try Suggestion.predict(
                        task: task, settings: settings, seed: job.seed, metric: metric, predictor: predictor,
                        confirm: confirm)
                }
            }
            guard let store else {
                throw DataError(
                    .missingInput, "no history yet: run `retort search` on a few tasks first (or give --history PATH)",
                    file: path)
            }
            let predictor = try HistoryPredictor(
                store: store, kind: kind, metric: metric, readsGoldProbeHeadroom: true)
            guard predictor.taskCount > 0 else {
                throw DataError(
                    .missingInput,
                    "the history holds no \(kind) task scored by \(metric) yet: run `retort search` on a few \(kind) "
                        + "tasks first", file: path)
            }
            // The search is confirmed by the learned strategy the prediction stands for.
            let confirm =
                "retort search "
                + (input.job.map { "\($0)" } ?? "--task \(input.task ?? "")")
                + " --strategy learned" + (history.path.map { " --history \($0)" } ?? "")
            let suggestion = try predict(predictor, confirm)
            if output.json {
                try output.printJSON(suggestion)
                return
            }
            show(suggestion, kind: kind)
        }
    }

    /// The prediction table, the predicted recommendation, the nearest past tasks and the confirming command.
    func show(_ suggestion: Suggestion, kind: String) {
        let bar = suggestion.bar
        let metric = suggestion.metric
        say(
            "Predicted from \(suggestion.historyTasks) past \(kind) task(s), nothing trained: gap = student − teacher on validation \(metric); the bar is \(String(format: "%+.4f", bar)).\n"
        )
        // A structured student's size and FLOPs are known once trained: the table shows the past trials' instead.
        let cost = kind == TaskKind.structured.rawValue ? "predicted size | predicted FLOPs/ex" : "size | FLOPs/ex"
        var lines = [
            "| candidate | predicted gap ± 2 sd | chance to meet the bar | predicted p50 ms | \(cost) | predicted frontier |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in suggestion.candidates.prefix(top) {
            lines.append(
                String(
                    format: "| %@ | %+.4f ± %.4f | %.0f%% | %@ | %@ | %d | %@ |", row.id, row.predicted.gap,
                    2 * row.predicted.gapSD, 100 * row.chanceToMeetBar,
                    row.predicted.latencyMsP50.map { String(format: "%.4f", $0) } ?? "—",
                    ByteSize.format(row.sizeBytes), row.flopsPerExample, row.onPredictedFrontier ? "yes" : ""))
        }
        say(output.styled(lines.joined(separator: "\n")) + "\n")
        if let pick = suggestion.pick {
            say(
                String(
                    format:
                        "Predicted recommendation: distill into %@ (predicted gap %+.4f ± %.4f, %.0f%% chance to meet the bar); what the recommender would pick among the %d candidates predicted to qualify with its confidence (the smallest of the predicted equally fast).",
                    pick.id, pick.predicted.gap, 2 * pick.predicted.gapSD, 100 * pick.chanceToMeetBar,
                    suggestion.qualifying))
        } else {
            let best = suggestion.mostPromising
            say(
                "Predicted recommendation: no distillation; the most promising, "
                    + (best.map {
                        String(
                            format: "%@ (predicted gap %+.4f ± %.4f)", $0.id, $0.predicted.gap,
                            2 * $0.predicted.gapSD)
                    }
                        ?? "none") + ", is not predicted to clear the bar with the recommendation's confidence.")
        }
        if let warning = suggestion.teacherWarning { say("Teacher warning: \(warning).") }
        let similar = suggestion.similarTasks
        if !similar.isEmpty {
            say(
                "Most similar past tasks: "
                    + similar.map { task in
                        "\(task.task) (\(task.recommendation)"
                            + (task.bestGap.map { String(format: ", best student %+.1f pt", $0 * 100) } ?? "") + ")"
                    }.joined(separator: "; "))
        }
        say("Confirm with: \(suggestion.confirm)")
    }
}

import Foundation
import RetortData

extension SearchRun {
    /// The search's result: the teacher's summary, every trial, the frontier, the recommendation with its test figures,
    /// and the summary of what the search spent and why it stopped (`strategy` words the normal stop).
    func outcome(ranked: RankedTrials, figures: TestFigures, strategy: any RungStrategy) -> SearchOutcome {
        let teacherSummary = TeacherSummary(
            name: task.teacher.name,
            metrics: Dictionary(uniqueKeysWithValues: teacher.test.estimates.map { ($0.key.rawValue, $0.value) }),
            validationMetrics: Dictionary(
                uniqueKeysWithValues: teacher.validation.estimates.map { ($0.key.rawValue, $0.value) }),
            latencyMsP50: ranked.teacherLatency, costPer1MUSD: SearchEngine.teacherCostPer1M(task),
            params: task.teacher.params, onFrontier: ranked.frontier.contains("teacher"),
            models: SearchEngine.teacherModels(task))
        return SearchOutcome(
            taskName: task.name, taskDataset: task.dataset, kind: task.kind, labels: task.vocabulary.labels,
            primaryMetric: metric.rawValue,
            teacher: teacherSummary, trials: ranked.ordered, frontier: ranked.frontier,
            recommendation: ranked.recommendation, recommendationTestMetrics: figures.recommendationTest,
            recommendationTestDifference: figures.recommendationDifference,
            recommendedBundle: figures.recommendedBundle, constraints: settings.constraints,
            summary: summary(
                skippedAll: ranked.ordered.allSatisfy { $0.status == .skipped }, strategy: strategy,
                calibration: PredictionCalibration(trials: ranked.ordered)),
            seed: settings.seed,
            splitSizes: ["train": task.train.count, "validation": task.validation.count, "test": task.test.count],
            cascades: figures.cascades, selection: ranked.selection, economics: figures.economics,
            pointEstimatePick: ranked.pointEstimatePick, pointEstimateCascade: ranked.pointEstimateCascade,
            speed: ranked.speed)
    }

    /// What the search spent (epochs, wall seconds, training runs, the budget's overrun) and why it stopped.
    func summary(skippedAll: Bool, strategy: any RungStrategy, calibration: PredictionCalibration?) -> SearchSummary {
        let wall = elapsed()
        let learned = settings.strategy == .learned
        var summary = SearchSummary(
            strategy: settings.strategy.rawValue, candidateEpochs: candidateEpochs, wallSeconds: wall,
            trials: trainingRuns.count,
            stoppedBecause: budgetHit
                ? String(format: "the budget of %.0f s ran out", settings.budgetSeconds)
                : skippedAll
                    ? "every candidate breaks a constraint"
                    : strategy.stoppedBecause(feasible: feasible, settings: settings),
            encoderSeconds: featurization.encoderSeconds > 0 ? featurization.encoderSeconds : nil,
            historyTasks: learned ? settings.historyTasks : nil,
            similarTasks: learned && !settings.similarTasks.isEmpty ? settings.similarTasks : nil,
            executor: settings.executor.summary)
        summary.learnedMode = learned ? strategy.learnedMode : nil
        summary.calibration = calibration
        summary.budgetSeconds = settings.budgetSeconds
        summary.afterTrainingSeconds = trainingEnded.map { Double(DispatchTime.now().uptimeNanoseconds - $0) / 1e9 }
        if budgetHit {
            summary.epochInFlightSeconds = epochInFlight ?? 0
            summary.cutEvaluationSeconds = cutEvaluation ?? 0
            summary.overrunSeconds = max(0, wall - settings.budgetSeconds)
        }
        return summary
    }
}

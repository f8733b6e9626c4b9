import Foundation
import RetortData
import RetortEvals
import RetortNumerics

/// The teacher measured on validation and test, and the evaluators every student is measured by (the search's first
/// phase). Validation resamples are drawn from `seed + 1`, test resamples from `seed + 2`.
struct TeacherEvaluation {
    /// Scores labels against the validation split (students' validation metrics, paired with the teacher's).
    let validationEvaluator: Evaluator
    /// Scores labels against the test split (frontier students only; nothing on test feeds back into a decision).
    let testEvaluator: Evaluator
    /// The teacher's own labels scored on validation.
    let validation: Evaluation
    /// The teacher's own labels scored on test.
    let test: Evaluation
    /// The teacher's validation value of the primary metric.
    let value: Double

    /// Evaluates the teacher of `task` on validation and test.
    init(
        task: TaskData, settings: SearchSettings, metric: Metric, events: @Sendable (SearchEvent) throws -> Void
    ) throws {
        try events(.phase("evaluate the teacher"))
        let kind = task.answerKind
        validationEvaluator = Evaluator(
            kind: kind, split: task.validation, resamples: settings.suite.resamples, seed: settings.seed &+ 1)
        testEvaluator = Evaluator(
            kind: kind, split: task.test, resamples: settings.suite.resamples, seed: settings.seed &+ 2)
        validation = try validationEvaluator.evaluate(validationEvaluator.teacher)
        test = try testEvaluator.evaluate(testEvaluator.teacher)
        guard let value = validation.estimates[metric]?.value else {
            throw SearchError("the teacher has no \(metric.rawValue) on validation")
        }
        self.value = value
    }
}

extension SearchEngine {
    /// The teacher's median latency: task.json or the job, else the median of the rows' `latency_ms`.
    static func teacherLatencyMs(_ task: TaskData) -> Double? {
        if let latency = task.teacher.latencyMsP50 { return latency }
        let recorded = (task.validation.teacherLatencyMs + task.test.teacherLatencyMs).compactMap { $0 }.sorted()
        return recorded.isEmpty ? nil : LatencyProfiler.percentile(recorded, 0.5)
    }

    /// The teacher's cost of a million calls: from token prices and the rows' usage when both exist, else
    /// 1000 × `cost_per_1k_requests_usd`.
    static func teacherCostPer1M(_ task: TaskData) -> Double? {
        let usage = (task.validation.teacherUsage + task.test.teacherUsage).compactMap { $0 }
        if let inputPrice = task.teacher.inputPerMTokUSD, let outputPrice = task.teacher.outputPerMTokUSD,
            !usage.isEmpty
        {
            let meanCost =
                usage.reduce(0.0) { $0 + Double($1.input) * inputPrice + Double($1.output) * outputPrice } / 1e6
                / Double(usage.count)
            return meanCost * 1e6
        }
        return task.teacher.costPer1kRequestsUSD.map { $0 * 1000 }
    }

    /// Rows per answering model over every split (nil when no row records one).
    static func teacherModels(_ task: TaskData) -> [String: Int]? {
        var counts: [String: Int] = [:]
        for split in [task.train, task.validation, task.test] {
            for model in split.teacherModels.compactMap({ $0 }) { counts[model, default: 0] += 1 }
        }
        return counts.isEmpty ? nil : counts
    }
}

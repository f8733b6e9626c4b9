import Foundation
import RetortData

extension SearchRun {
    /// A cascade can turn "keep the teacher" into "a student on its sure inputs, the teacher on the rest": reconsiders
    /// `ranked.recommendation` with the cascade curves of the students within the size and latency limits
    /// (``Cascade/reconsider``). A cascade that wins replaces the recommendation, its bundle and its test figures (the
    /// paired test difference of the cascade's labels against the teacher's).
    func cascadeRecommendation(_ ranked: inout RankedTrials, figures: inout TestFigures) throws {
        let constraints = settings.constraints
        let allowed = Set(ranked.ordered.filter(constraints.admits).map(\.id))
        figures.cascades = Cascade.withConfidence(
            figures.cascades, metric: metric.rawValue, teacherValue: teacher.value, maxDrop: constraints.maxDrop)
        func reconsider(level: Double) -> Recommendation {
            Cascade.reconsider(
                ranked.recommendation, curves: figures.cascades.filter { allowed.contains($0.candidate) },
                metric: metric.rawValue, teacherValue: teacher.value,
                teacherCostPer1M: SearchEngine.teacherCostPer1M(task), maxDrop: constraints.maxDrop,
                confidenceLevel: level,
                sizes: Dictionary(ranked.ordered.map { ($0.id, $0.sizeBytes) }, uniquingKeysWith: { a, _ in a }))
        }
        let reconsidered = reconsider(level: constraints.confidenceLevel)
        if ranked.pointEstimatePick == nil {
            ranked.pointEstimateCascade = Cascade.choiceIfDifferent(reconsider(level: 0), from: reconsidered)
        }
        guard case .cascade(let id, let point, _) = reconsidered,
            let index = ranked.ordered.firstIndex(where: { $0.id == id }), member[id] != nil,
            let curve = figures.cascades.first(where: { $0.candidate == id }),
            let testPoint = curve.test.first(where: { $0.threshold == point.threshold })
        else {
            if reconsidered.cascadePoint == nil { ranked.recommendation = reconsidered }
            return
        }
        ranked.recommendation = reconsidered
        figures.recommendedBundle = try bundle(id, epochs: ranked.ordered[index].epochsRun ?? 0)
        figures.recommendationTest = testPoint.metrics
        // The paired test difference: the cascade's labels (student where sure, teacher elsewhere) vs the teacher.
        if let probabilities = figures.frontierTestProbabilities[id] {
            let evaluator = teacher.testEvaluator
            let labels = Cascade.labels(
                top: Cascade.topProbabilities(probabilities), predictions: probabilities.argmaxPerRow(),
                teacher: evaluator.teacher, threshold: point.threshold)
            figures.recommendationDifference = try evaluator.evaluate(labels).difference(
                to: teacher.test, on: metric, resampler: evaluator.resampler)
        }
    }
}

extension Constraints {
    /// Whether `trial` fits the size and latency limits (a cascade's student must, as a plain student must).
    func admits(_ trial: TrialResult) -> Bool {
        (maxModelBytes.map { trial.sizeBytes <= $0 } ?? true)
            && (maxLatencyMs.map { (trial.latencyMsP50 ?? .infinity) * (latencyScale ?? 1) <= $0 } ?? true)
    }
}

import Foundation
import RetortData
import RetortEvals
import RetortNumerics
import RetortStudents

/// Test-set figures of the frontier, the recommendation and each family's best, with the frontier's cascade curves.
struct TestFigures {
    /// The recommended student's test metrics.
    var recommendationTest: [String: MetricEstimate]?
    /// The recommended student's paired test difference to the teacher on the primary metric.
    var recommendationDifference: MetricEstimate?
    /// The recommended student, ready to export.
    var recommendedBundle: ModelBundle?
    /// Each frontier student's cascade curve, on validation and test.
    var cascades: [CascadeCurve] = []
    /// Frontier students' test probabilities, for a cascade recommendation's paired test difference.
    var frontierTestProbabilities: [String: Matrix] = [:]
    /// The recommendation's break-even.
    var economics: Economics?
}

extension SearchRun {
    /// Evaluates on test the frontier, the recommendation and each family's best on validation (the per-family
    /// comparison), sets their `testMetrics` in `ranked.ordered`, and draws each frontier student's cascade curve
    /// (thresholds placed on validation, applied to test as they are). Nothing on the test set feeds back into a
    /// decision.
    func testEvaluation(_ ranked: inout RankedTrials) throws -> TestFigures {
        try events(.phase("test-set evaluation of the frontier"))
        var figures = TestFigures()
        var familyLeaders: [Family: TrialResult] = [:]
        for trial in ranked.ordered where trial.status == .complete {
            let value = trial.metrics[metric.rawValue]?.value ?? -.infinity
            if value > familyLeaders[trial.family]?.metrics[metric.rawValue]?.value ?? -.infinity {
                familyLeaders[trial.family] = trial
            }
        }
        let leaders = Set(familyLeaders.values.map(\.id))
        let teacherCost = SearchEngine.teacherCostPer1M(task)
        for index in ranked.ordered.indices {
            let trial = ranked.ordered[index]
            let id = trial.id
            ranked.ordered[index].onFrontier = ranked.frontier.contains(id)
            guard trial.status == .complete,
                ranked.ordered[index].onFrontier || id == ranked.recommendation.candidate || leaders.contains(id)
                    || id == ranked.pointEstimatePick,
                let (group, candidate) = member[id],
                let bundle = try bundle(id, epochs: trial.epochsRun ?? 0)
            else { continue }
            let features = features(group.featureKey)
            let testProbabilities = try bundle.model.probabilities(features.test(at: candidate.precision))
            let evaluation = try teacher.testEvaluator.evaluate(testProbabilities.argmaxPerRow())
            if ranked.ordered[index].onFrontier {
                let validationProbabilities = try bundle.model.probabilities(
                    features.validation(at: candidate.precision))
                let thresholds = Cascade.thresholds(topProbabilities: Cascade.topProbabilities(validationProbabilities))
                func points(_ probabilities: Matrix, _ evaluator: Evaluator, _ teacher: Evaluation?) throws
                    -> [CascadePoint]
                {
                    try Cascade.points(
                        probabilities: probabilities, thresholds: thresholds, evaluator: evaluator,
                        studentCostPer1M: trial.costPer1MUSD, teacherCostPer1M: teacherCost,
                        studentLatencyMs: trial.latencyMsP50, teacherLatencyMs: ranked.teacherLatency,
                        teacherEvaluation: teacher)
                }
                figures.frontierTestProbabilities[id] = testProbabilities
                figures.cascades.append(
                    CascadeCurve(
                        candidate: id,
                        validation: try points(
                            validationProbabilities, teacher.validationEvaluator, teacher.validation),
                        test: try points(testProbabilities, teacher.testEvaluator, nil)))
            }
            let metrics = Dictionary(uniqueKeysWithValues: evaluation.estimates.map { ($0.key.rawValue, $0.value) })
            ranked.ordered[index].testMetrics = metrics
            if id == ranked.recommendation.candidate {
                figures.recommendationTest = metrics
                figures.recommendationDifference = evaluation.difference(
                    to: teacher.test, on: metric, resampler: teacher.testEvaluator.resampler)
                figures.recommendedBundle = bundle
            }
        }
        return figures
    }
}

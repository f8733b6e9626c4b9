import Foundation
import RetortData
import RetortEvals
import RetortStudents
import Testing

@testable import RetortSearch

/// Runs the learned strategy ruled out only for being no cheaper than the current recommendation are decided against
/// the recommendation as the final one checks it (adjusted for choosing among candidates): when the current one fails
/// that check, they go back to the queue.
struct ParkedRunsTests {
    @Test(
        "parked runs go back to the queue when the recommendation they were ruled out against fails the final check, and are ruled out when it passes"
    )
    func checkParked() throws {
        let task = try blobTask(learnable: true, seed: 5)
        var settings = SearchSettings(
            catalog: try CandidateCatalog(try YAMLValue.parse(learnedCatalog, file: "c.yaml")), seed: 4)
        let groups = trainingGroups(task, settings: settings)
        let linear = try #require(groups.first { $0.architecture.family == .linear })
        let larger = groups.filter { $0.flops > linear.flops && $0.architecture.family == .mlp }
        #expect(!larger.isEmpty)
        let member = try #require(linear.members.first { $0.precision == .int8 })
        // The parked runs are predicted to clear the bar (a run without a prediction is never ruled out).
        for candidate in larger.flatMap(\.members) {
            settings.predictions[candidate.id] = CandidatePrediction(
                gap: 0, gapSD: 0.01, latencyMsP50: nil, neighbours: 8)
        }
        // The current recommendation: 0.5 pt below the teacher (bar: 1 pt) with a standard error of 0.3 pt.
        func current(difference: Double) -> TrialResult {
            var trial = TrialResult(
                id: member.id, family: .linear, config: [:], precision: member.precision,
                params: linear.architecture.parameterCount, sizeBytes: linear.size(of: member),
                flopsPerExample: linear.flops,
                metrics: ["accuracy": MetricEstimate(value: 0.9 + difference, ci95: 0...1)],
                differenceToTeacher: MetricEstimate(value: difference, ci95: difference - 0.006...difference + 0.006),
                fidelity: 1, status: .complete, onFrontier: false)
            trial.differenceSE = 0.003
            return trial
        }
        // Choosing among many: the largest standardized error is about 2–3 standard errors.
        let selection = SelectionAdjustment(
            candidates: 20, maxStatisticPercentiles: (1...99).map { 1.5 + 1.5 * Double($0) / 99 })
        // Margin (−0.005 + 0.01) / 0.003 ≈ 1.7 se: unadjusted that is 95% (it qualified as the current one), but
        // below the adjusted 90% point (about 2.9): no student passes, the parked runs could change the answer.
        let weak = current(difference: -0.005)
        #expect(SearchEngine.confidentlyQualifies(weak, constraints: settings.constraints))
        // Its fp32 copy measured the same: it fails too, and is rejected with it (it would be the next current one).
        var copy = weak
        copy.id = "linear-fp32"
        let failed = SearchEngine.checkParked(
            larger, rejected: [], trials: [weak, copy], selection: selection, metric: "accuracy",
            teacherValue: 0.9, settings: settings)
        #expect(failed.verified == nil)
        #expect(failed.back.map(\.key) == larger.map(\.key) && failed.decided.isEmpty)
        #expect(failed.rejected == [weak.id, copy.id])
        // 0.5 pt above the teacher: (0.005 + 0.01) / 0.003 = 5 se, past every percentile: it passes, and the parked
        // runs (more FLOPs, larger) cannot change it.
        let strong = current(difference: 0.005)
        let passed = SearchEngine.checkParked(
            larger, rejected: [], trials: [strong], selection: selection, metric: "accuracy",
            teacherValue: 0.9, settings: settings)
        #expect(passed.verified?.id == strong.id)
        #expect(passed.back.isEmpty && passed.decided.map(\.key) == larger.map(\.key))
        #expect(passed.rejected.isEmpty)
        // A rejected student is not the verified one even when it would pass.
        let again = SearchEngine.checkParked(
            larger, rejected: [strong.id], trials: [strong], selection: selection, metric: "accuracy",
            teacherValue: 0.9, settings: settings)
        #expect(again.verified == nil && again.back.count == larger.count)
    }
}

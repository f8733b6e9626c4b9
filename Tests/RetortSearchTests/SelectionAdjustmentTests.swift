import Foundation
import RetortData
import RetortEvals
import RetortNumerics
import Testing

@testable import RetortSearch

/// The recommendation's confidence (issue 24): the probability that a student's true drop is within `max_drop`,
/// adjusted for picking the cheapest of many (``SelectionAdjustment``).
@Suite struct SelectionAdjustmentTests {
    /// One simulated search: a teacher and `students` whose per-row correctness is drawn with the given true
    /// accuracies on `rows` validation rows; the students are listed cheapest first. Returns the trials (with their
    /// differences, standard errors) and the adjustment, as the search computes them.
    static func simulate(
        teacherAccuracy: Double, studentAccuracies: [Double], rows: Int, seed: UInt64
    ) throws -> (trials: [TrialResult], teacherValue: Double, selection: SelectionAdjustment?) {
        var generator = SeededGenerator(seed: seed)
        func draw(_ accuracy: Double) -> [Float] {
            (0..<rows).map { _ in Double(generator.nextUnitFloat()) < accuracy ? 1 : 0 }
        }
        let resampler = BootstrapResampler(examples: rows, resamples: 500, seed: seed &+ 1)
        let teacher = draw(teacherAccuracy)
        let teacherValue = Double(teacher.reduce(0, +)) / Double(rows)
        let teacherReplicates = try resampler.resampledSums(teacher).map { $0 / Float(rows) }
        var trials: [TrialResult] = []
        var replicates: [String: [Float]] = [:]
        var differences: [String: Double] = [:]
        for (index, accuracy) in studentAccuracies.enumerated() {
            let scores = draw(accuracy)
            let value = Double(scores.reduce(0, +)) / Double(rows)
            let own = try resampler.resampledSums(scores).map { $0 / Float(rows) }
            let paired = zip(own, teacherReplicates).map { $0 - $1 }
            let id = "s\(index)"
            var trial = TrialResult(
                id: id, family: .linear, config: [:], precision: .fp32, params: 10, sizeBytes: 100 + index,
                flopsPerExample: 1000 + index,
                metrics: ["accuracy": MetricEstimate(value: value, ci95: value...value)],
                differenceToTeacher: MetricEstimate(value: value - teacherValue, ci95: 0...0), fidelity: 1,
                status: .complete, onFrontier: false)
            trial.differenceSE = SelectionAdjustment.standardError(paired)
            trials.append(trial)
            replicates[id] = paired
            differences[id] = value - teacherValue
        }
        return (trials, teacherValue, SelectionAdjustment.make(replicates: replicates, differences: differences))
    }

    @Test(
        "twenty equal students, each truly 2 pt below the teacher: the point rule promises wrongly, the new rule rarely"
    )
    func selectionBias() throws {
        let constraints = Constraints(maxDrop: 0.01)
        var pointPicks = 0
        var confidentPicks = 0
        let seeds = 40
        for seed in 0..<UInt64(seeds) {
            let (trials, teacherValue, selection) = try Self.simulate(
                teacherAccuracy: 0.90, studentAccuracies: Array(repeating: 0.88, count: 20), rows: 400,
                seed: 100 + seed)
            let point = Recommender.recommend(
                trials: trials, metric: "accuracy", teacherValue: teacherValue, constraints: constraints)
            let confident = Recommender.recommend(
                trials: trials, metric: "accuracy", teacherValue: teacherValue, constraints: constraints,
                selection: selection)
            if point.candidate != nil { pointPicks += 1 }
            if confident.candidate != nil { confidentPicks += 1 }
        }
        // Every pick is a broken promise here (every student is truly 2 pt below, the bar is 1 pt).
        #expect(pointPicks > seeds / 2, "the point rule is fooled by the luckiest of 20: \(pointPicks)/\(seeds)")
        #expect(
            Double(confidentPicks) <= 0.1 * Double(seeds), "at most 10% broken promises: \(confidentPicks)/\(seeds)")
    }

    @Test("a student truly as good as the teacher is still found, and the probabilities order by margin")
    func findsTheGoodStudent() throws {
        let constraints = Constraints(maxDrop: 0.01)
        var found = 0
        let seeds = 20
        for seed in 0..<UInt64(seeds) {
            // Ten cheap students truly 3 pt below, then one as good as the teacher (the most expensive).
            let (trials, teacherValue, selection) = try Self.simulate(
                teacherAccuracy: 0.90, studentAccuracies: Array(repeating: 0.87, count: 10) + [0.93], rows: 1500,
                seed: 300 + seed)
            let confident = Recommender.recommend(
                trials: trials, metric: "accuracy", teacherValue: teacherValue, constraints: constraints,
                selection: selection)
            if confident.candidate == "s10" { found += 1 }
            let adjustment = try #require(selection)
            #expect(adjustment.candidates == 11)
            let good = adjustment.probabilityWithin(
                difference: trials[10].differenceToTeacher?.value ?? 0, se: trials[10].differenceSE ?? 1,
                maxDrop: 0.01)
            let bad = adjustment.probabilityWithin(
                difference: trials[0].differenceToTeacher?.value ?? 0, se: trials[0].differenceSE ?? 1, maxDrop: 0.01)
            #expect(good >= bad)
        }
        #expect(found >= seeds * 8 / 10, "the good student is recommended in \(found)/\(seeds) runs")
    }

    @Test("the max statistic's distribution: monotone percentiles, a CDF between 0 and 1, zero spread is exact")
    func distribution() throws {
        let (_, _, selection) = try Self.simulate(
            teacherAccuracy: 0.8, studentAccuracies: [0.8, 0.79, 0.81], rows: 300, seed: 9)
        let adjustment = try #require(selection)
        #expect(adjustment.maxStatisticPercentiles.count == 99)
        #expect(
            zip(adjustment.maxStatisticPercentiles, adjustment.maxStatisticPercentiles.dropFirst()).allSatisfy {
                $0 <= $1
            })
        #expect(adjustment.probability(margin: -100) == 0 && adjustment.probability(margin: 100) == 1)
        let median = adjustment.maxStatisticPercentiles[49]
        #expect(abs(adjustment.probability(margin: median) - 0.5) < 0.011)
        // The maximum of three standardized errors sits above a single one's median (0).
        #expect(median > 0)
        #expect(adjustment.probabilityWithin(difference: -0.005, se: 0, maxDrop: 0.01) == 1)
        #expect(adjustment.probabilityWithin(difference: -0.02, se: 0, maxDrop: 0.01) == 0)
    }

    @Test("the reason says the confidence, and no distillation says why when only the confidence fails")
    func reasons() throws {
        // T's percentiles from −2.5 to 2.4 in steps of 0.05: P(T ≤ 1) = 0.7, P(T ≤ 2) = 0.9.
        let selection = SelectionAdjustment(
            candidates: 7, maxStatisticPercentiles: (1...99).map { -2.5 + 0.05 * Double($0) })
        #expect(abs(selection.probability(margin: 2) - 0.9) < 1e-9)
        func trial(_ id: String, value: Double, se: Double, flops: Int) -> TrialResult {
            var trial = TrialResult(
                id: id, family: .linear, config: [:], precision: .fp32, params: 10, sizeBytes: 100,
                flopsPerExample: flops, metrics: ["accuracy": MetricEstimate(value: value, ci95: value...value)],
                fidelity: 1, status: .complete, onFrontier: false)
            trial.differenceSE = se
            return trial
        }
        // Both within the 1 pt bar on the point estimate; the cheap one only 1 se inside it (70%), the other 2 (90%).
        let trials = [
            trial("cheap", value: 0.900, se: 0.005, flops: 10), trial("sure", value: 0.905, se: 0.0025, flops: 20),
        ]
        let constraints = Constraints(maxDrop: 0.01)
        let point = Recommender.recommend(
            trials: trials, metric: "accuracy", teacherValue: 0.905, constraints: constraints)
        #expect(point.candidate == "cheap")
        let confident = Recommender.recommend(
            trials: trials, metric: "accuracy", teacherValue: 0.905, constraints: constraints, selection: selection)
        #expect(confident.candidate == "sure")
        #expect(confident.reason.contains("within 1.0 pt of the teacher with 99% confidence"), "\(confident.reason)")
        #expect(confident.reason.contains("adjusted for choosing among 7 candidates"), "\(confident.reason)")
        var strict = constraints
        strict.confidence = 0.999
        let none = Recommender.recommend(
            trials: [trials[0]], metric: "accuracy", teacherValue: 0.905, constraints: strict, selection: selection)
        #expect(none.candidate == nil)
        #expect(none.reason.contains("with only 70% confidence that its true drop is within 1.0 pt"), "\(none.reason)")
        #expect(none.reason.contains("99.9% needed"), "\(none.reason)")
    }
}

import Foundation
import RetortData
import RetortEvals
import Testing

@testable import RetortSearch

@Suite struct PredictionCalibrationTests {
    static func trial(
        _ id: String, measured: Double?, predicted: Double?, sd: Double = 0.01, status: TrialStatus = .complete,
        fidelity: Double = 1, invented: Bool = false
    ) -> TrialResult {
        var trial = TrialResult(
            id: id, family: .mlp, config: [:], precision: .fp32, params: 1, sizeBytes: 4, flopsPerExample: 2,
            metrics: [:], differenceToTeacher: measured.map { MetricEstimate(value: $0, ci95: $0...$0) },
            fidelity: fidelity, status: status, onFrontier: false)
        trial.predicted = predicted.map { CandidatePrediction(gap: $0, gapSD: sd, latencyMsP50: nil, neighbours: 8) }
        trial.invented = invented ? true : nil
        return trial
    }

    @Test(
        "only trained, full-fidelity, history-predicted candidates count: inside ± 2 sd and the mean absolute error")
    func counts() throws {
        let trials = [
            Self.trial("a", measured: -0.010, predicted: -0.020),  // error 0.010, inside (≤ 0.02)
            Self.trial("b", measured: -0.050, predicted: -0.020),  // error 0.030, outside
            Self.trial("c", measured: 0.000, predicted: 0.015),  // error 0.015, inside
            Self.trial("screened", measured: -0.3, predicted: 0, status: .pruned, fidelity: 1.0 / 3),
            Self.trial("skipped", measured: nil, predicted: -0.5, status: .skipped, fidelity: 0),
            Self.trial("invented", measured: -0.2, predicted: 0, invented: true),
            Self.trial("no prediction", measured: -0.2, predicted: nil),
        ]
        let calibration = try #require(PredictionCalibration(trials: trials))
        #expect(calibration.predicted == 3 && calibration.inside == 2)
        #expect(abs(calibration.coverage - 2.0 / 3) < 1e-12)
        #expect(abs(calibration.mae - 0.055 / 3) < 1e-12)
        #expect(
            calibration.summaryLine
                == "2 of 3 measured gaps inside the predicted ± 2 sd (67%), mean absolute error 0.0183")
        #expect(PredictionCalibration(trials: Array(trials.suffix(4))) == nil)
        // report.json: an additive key under `search`; a summary written before it still decodes.
        var summary = SearchSummary(
            strategy: "learned", candidateEpochs: 1, wallSeconds: 1, trials: 1, stoppedBecause: "x")
        let old = try JSONEncoder().encode(summary)
        #expect(try JSONDecoder().decode(SearchSummary.self, from: old).calibration == nil)
        summary.calibration = calibration
        summary.learnedMode = LearnedMode(schedule: .halving, reason: "why")
        let text = try #require(String(data: try JSONEncoder().encode(summary), encoding: .utf8))
        #expect(text.contains("\"calibration\":{") && text.contains("\"mae\":") && text.contains("\"coverage\":"))
        #expect(
            text.contains("\"learned_mode\":{\"reason\":\"why\",\"schedule\":\"halving\"}")
                || text.contains("\"learned_mode\":{\"schedule\":\"halving\",\"reason\":\"why\"}"))
        #expect(try JSONDecoder().decode(SearchSummary.self, from: Data(text.utf8)) == summary)
    }

    @Test(
        "three residuals that match the history exactly do not shrink an interval to the floor: a student the history says could reach the bar still could"
    )
    func pooledSpread() throws {
        let predictions = [
            "a": CandidatePrediction(gap: -0.10, gapSD: 0.03, latencyMsP50: nil, neighbours: 8),
            "b": CandidatePrediction(gap: -0.08, gapSD: 0.03, latencyMsP50: nil, neighbours: 8),
            "c": CandidatePrediction(gap: -0.06, gapSD: 0.03, latencyMsP50: nil, neighbours: 8),
            "untrained": CandidatePrediction(gap: -0.05, gapSD: 0.03, latencyMsP50: nil, neighbours: 8),
        ]
        let measured = Dictionary(
            uniqueKeysWithValues: ["a": -0.10, "b": -0.08, "c": -0.06].map { id, gap in
                (id, PredictionCalibrationTests.trial(id, measured: gap, predicted: nil))
            })
        let corrected = SearchEngine.correctedPredictions(predictions, measured: measured, floor: 0.01)
        let untrained = try #require(corrected["untrained"])
        // No offset; the task's spread is 0, pooled with the history's 0.03 at the weight of 3 residuals, times the
        // predictive 1 + 1/3: √(3 · 0.03² / (2 + 3) · 4/3) = 0.0268.
        #expect(abs(untrained.gap + 0.05) < 1e-12)
        #expect(abs(untrained.gapSD - (3 * 0.0009 / 5 * 4 / 3).squareRoot()) < 1e-12)
        // −0.05 + 2 · 0.0268 reaches the bar of −0.01; with the spread replaced by the floor it would not.
        #expect(untrained.gap + 2 * untrained.gapSD >= -0.01)
        // Many residuals: this task's own spread (with the predictive 1 + 1/n) dominates.
        var many = measured
        var predicted = predictions
        for index in 0..<40 {
            let residual = index.isMultiple(of: 2) ? 0.05 : -0.05
            predicted["m\(index)"] = CandidatePrediction(gap: 0, gapSD: 0.03, latencyMsP50: nil, neighbours: 8)
            many["m\(index)"] = PredictionCalibrationTests.trial("m\(index)", measured: residual, predicted: nil)
        }
        let wide = try #require(SearchEngine.correctedPredictions(predicted, measured: many, floor: 0.01)["untrained"])
        #expect(wide.gapSD > 0.04)
    }

    @Test(
        "precision variants of one training run are one residual (their mean); κ scales the history's spread in the pool"
    )
    func groupedResiduals() throws {
        var predictions: [String: CandidatePrediction] = [:]
        var measured: [String: TrialResult] = [:]
        // Run a: three variants measured 0.02 above their predictions; run b: one candidate 0.04 above.
        for (id, residual) in [("a-fp32", 0.02), ("a-fp16", 0.02), ("a-int8", 0.02), ("b-fp32", 0.04)] {
            predictions[id] = CandidatePrediction(gap: -0.05, gapSD: 0.03, latencyMsP50: nil, neighbours: 8)
            measured[id] = Self.trial(id, measured: -0.05 + residual, predicted: nil)
        }
        predictions["untrained"] = CandidatePrediction(gap: -0.05, gapSD: 0.03, latencyMsP50: nil, neighbours: 8)
        let run: (String) -> String = { String($0.prefix(1)) }
        let residuals = SearchEngine.residuals(predictions, measured: measured, run: run)
        #expect(residuals.count == 2)
        #expect(SearchEngine.residuals(predictions, measured: measured).count == 4)
        let corrected = try #require(
            SearchEngine.correctedPredictions(
                predictions, measured: measured, floor: 0.01, offsetSpread: 0.5, run: run)["untrained"])
        // Offset: the mean of the runs' residuals (0.02, 0.04) = 0.03, not the trials' 0.025.
        #expect(abs(corrected.gap - (-0.05 + 0.03)) < 1e-12)
        // s² · (n − 1) = 2 · 0.01² = 0.0002; prior 3 · (0.5 · 0.03)²; n = 2: √((0.0002 + 0.000675) / 4 · 1.5).
        #expect(abs(corrected.gapSD - ((0.0002 + 3 * 0.015 * 0.015) / 4 * 1.5).squareRoot()) < 1e-12)
        // κ = 1 keeps the history's whole spread: wider.
        let whole = try #require(
            SearchEngine.correctedPredictions(predictions, measured: measured, floor: 0.01, run: run)["untrained"])
        #expect(whole.gapSD > corrected.gapSD)
    }

    @Test(
        "the learned screen climbs halving's ladder (every rung but the last, lowest first, and one step below its first where every run still trains two epochs there); halving's planned budget gates invented sizes"
    )
    func screenLadder() {
        // Runs of 50 epochs or more still train two at 1/27 (⌈50/27⌉): one step below halving's first rung.
        let thirds: [Double] = [1.0 / 27, 1.0 / 9, 1.0 / 3]
        #expect(LearnedStrategy.ladder(halvingRungs: 3, eta: 3, epochs: [50, 100]) == thirds)
        #expect(LearnedStrategy.ladder(halvingRungs: 2, eta: 3, epochs: [50]) == Array(thirds.dropFirst()))
        // A 21-epoch run would train one epoch at 1/27 (three at 1/9): halving's rungs but the last.
        #expect(LearnedStrategy.ladder(halvingRungs: 3, eta: 3, epochs: [50, 21]) == Array(thirds.dropFirst()))
        #expect(LearnedStrategy.ladder(halvingRungs: 2, eta: 3, epochs: [21]) == Array(thirds.dropFirst()))
        #expect(LearnedStrategy.ladder(halvingRungs: 2, eta: 3, epochs: [9]) == [1.0 / 3])
        #expect(LearnedStrategy.ladder(halvingRungs: 1, eta: 2, epochs: [50]) == [0.5])
        #expect(LearnedStrategy.ladder(halvingRungs: 4, eta: 2, epochs: [32]) == [0.0625, 0.125, 0.25, 0.5])
        #expect(LearnedStrategy.ladder(halvingRungs: 4, eta: 2, epochs: [16]) == [0.125, 0.25, 0.5])
        // What halving plans, against which invented sizes are gated: 11 trainable runs of 50, 50, …, 100, 100 epochs
        // (mean 59.09) and one prototype, three rungs at η = 3: 11 · 1/9 + 4 · 2/9 + 2 · 2/3 of the mean, plus 1.
        let budget = LearnedStrategy.halvingBudget(
            epochs: Array(repeating: 50, count: 9) + [100, 100], closedForm: 1, rungs: 3, eta: 3)
        #expect(abs(budget - ((11.0 / 9 + 8.0 / 9 + 4.0 / 3) * 650 / 11 + 1)) < 1e-9)
        // One rung: every run whole.
        #expect(LearnedStrategy.halvingBudget(epochs: [10, 20], closedForm: 0, rungs: 1, eta: 3) == 30)
        #expect(LearnedStrategy.halvingBudget(epochs: [], closedForm: 2, rungs: 3, eta: 3) == 2)
    }

    @Test(
        "the learned strategy rules out against a student only when it qualifies with the recommendation's confidence, not by its point estimate alone"
    )
    func confidentlyQualifies() {
        let constraints = Constraints(maxDrop: 0.01)
        func trial(_ value: Double, _ low: Double, _ high: Double, status: TrialStatus = .complete) -> TrialResult {
            var trial = Self.trial("t", measured: value, predicted: nil, status: status)
            trial.differenceToTeacher = MetricEstimate(value: value, ci95: low...high)
            return trial
        }
        // −0.008 passes the bar of −0.01 by its point estimate, but se ≈ 0.0077: P(within) ≈ 0.60 < 0.9.
        #expect(!SearchEngine.confidentlyQualifies(trial(-0.008, -0.023, 0.007), constraints: constraints))
        // +0.004 with se ≈ 0.0026: P ≈ 1.
        #expect(SearchEngine.confidentlyQualifies(trial(0.004, -0.001, 0.009), constraints: constraints))
        // Below the bar, or not trained to completion: never.
        #expect(!SearchEngine.confidentlyQualifies(trial(-0.02, -0.021, -0.019), constraints: constraints))
        #expect(
            !SearchEngine.confidentlyQualifies(trial(0.004, -0.001, 0.009, status: .pruned), constraints: constraints))
        // A point interval: the point decides.
        #expect(SearchEngine.confidentlyQualifies(trial(-0.01, -0.01, -0.01), constraints: constraints))
    }
}

import Foundation
import RetortData
import RetortSearch
import RetortTestSupport
import Testing

@testable import RetortHistory

/// `suggest`'s predicted recommendation follows the recommender's rules on the predictions: a student qualifies
/// when the bar is met with the recommendation's confidence given the predicted standard error of measurement, and
/// among the qualifying the predicted equally fast are compared by size.
struct SuggestionTests {
    func row(_ id: String, gap: Double, se: Double? = nil, latency: Double?, size: Int, flops: Int) -> Suggestion.Row {
        Suggestion.Row(
            id: id, family: "linear", precision: "int8", sizeBytes: size, flopsPerExample: flops,
            predicted: CandidatePrediction(
                gap: gap, gapSD: 0.05, latencyMsP50: latency, neighbours: 8, differenceSE: se),
            chanceToMeetBar: 0.5, onPredictedFrontier: true)
    }

    @Test("a prediction qualifies when its gap clears the bar with the confidence level, given its standard error")
    func qualifiesWithConfidence() {
        func prediction(_ gap: Double, _ se: Double?) -> CandidatePrediction {
            CandidatePrediction(gap: gap, gapSD: 0.05, latencyMsP50: nil, neighbours: 8, differenceSE: se)
        }
        // Bar −0.01: a gap of +0.002 with se 0.005 is 2.4 se above it (Φ = 0.992); with se 0.01, 1.2 se (Φ = 0.885).
        #expect(Suggestion.qualifies(prediction(0.002, 0.005), bar: -0.01, level: 0.9))
        #expect(!Suggestion.qualifies(prediction(0.002, 0.01), bar: -0.01, level: 0.9))
        #expect(Suggestion.qualifies(prediction(0.002, 0.01), bar: -0.01, level: 0.85))
        // Below the bar never qualifies; without a standard error the point estimate decides.
        #expect(!Suggestion.qualifies(prediction(-0.02, 0.0001), bar: -0.01, level: 0.5))
        #expect(Suggestion.qualifies(prediction(-0.009, nil), bar: -0.01, level: 0.99))
    }

    @Test("among qualifying predictions the equally fast are compared by size, a clearly faster one wins outright")
    func recommendedAsTheRecommender() {
        let speed = SpeedComparison(relativeTolerance: 1)
        let fewFlops = row("embedding-bag", gap: 0, latency: 0.008, size: 263_000, flops: 3_500)
        let small = row("linear", gap: 0, latency: 0.009, size: 172_000, flops: 5_700)
        #expect(Suggestion.recommended(among: [fewFlops, small], speed: speed)?.id == "linear")
        let fast = row("tiny-tree", gap: 0, latency: 0.003, size: 900_000, flops: 9_000)
        #expect(Suggestion.recommended(among: [fewFlops, small, fast], speed: speed)?.id == "tiny-tree")
        // Without predicted latencies: the fewest FLOPs, as the recommender without a speed comparison.
        let a = row("a", gap: 0, latency: nil, size: 263_000, flops: 3_500)
        let b = row("b", gap: 0, latency: nil, size: 172_000, flops: 5_700)
        #expect(Suggestion.recommended(among: [a, b], speed: speed)?.id == "a")
        #expect(Suggestion.recommended(among: [], speed: speed) == nil)
    }

    @Test("the predicted standard error scales the neighbours' by √(their train rows / this task's)")
    func standardErrorScalesWithRows() throws {
        let store = try HistoryStore(path: SyntheticTasks.temporaryFolder().appendingPathComponent("h.sqlite").path)
        let predictor = try HistoryPredictor(store: store, kind: "numeric", metric: "accuracy")
        func example(se: Double?, rows: Int) -> HistoryPredictor.Example {
            HistoryPredictor.Example(
                features: [0], gap: 0, latency: nil, differenceSE: se, rows: rows, sizeBytes: 1, flops: 1,
                taskId: "t\(rows)", run: "r\(rows)")
        }
        let nearest = [(1.0, 0.5, example(se: 0.02, rows: 400)), (1.0, 0.5, example(se: 0.01, rows: 100))]
        // 0.02 · √(400/400) and 0.01 · √(100/400) = 0.005: their geometric mean is 0.01.
        let se = try #require(predictor.prediction(from: nearest, rows: 400).differenceSE)
        #expect(abs(se - 0.01) < 1e-12)
        // A task with four times the rows measures with half the error.
        let larger = try #require(predictor.prediction(from: nearest, rows: 1600).differenceSE)
        #expect(abs(larger - 0.005) < 1e-12)
        // Past trials that recorded no standard error give none.
        #expect(predictor.prediction(from: [(1.0, 0.5, example(se: nil, rows: 400))], rows: 400).differenceSE == nil)
    }

    @Test("the predicted share of epochs: the neighbours' epochs run over their configured epochs or rounds, weighted")
    func epochsFractionFromNeighbours() throws {
        func trial(_ config: [String: ReportValue], epochsRun: Int?) -> TrialResult {
            var trial = TrialResult(
                id: "t", family: .mlp, config: config, precision: .fp32, params: 1, sizeBytes: 1, flopsPerExample: 1,
                metrics: [:], fidelity: 1, status: .complete, onFrontier: false)
            trial.epochsRun = epochsRun
            return trial
        }
        #expect(HistoryPredictor.epochsFraction(of: trial(["epochs": .int(50)], epochsRun: 20)) == 0.4)
        #expect(HistoryPredictor.epochsFraction(of: trial(["rounds": .int(100)], epochsRun: 100)) == 1)
        // Closed-form students (no configured epochs) and trials that recorded no epochs say nothing.
        #expect(HistoryPredictor.epochsFraction(of: trial(["scoring": .string("euclidean")], epochsRun: 1)) == nil)
        #expect(HistoryPredictor.epochsFraction(of: trial(["epochs": .int(50)], epochsRun: nil)) == nil)

        let store = try HistoryStore(path: SyntheticTasks.temporaryFolder().appendingPathComponent("h.sqlite").path)
        let predictor = try HistoryPredictor(store: store, kind: "numeric", metric: "accuracy")
        func example(_ fraction: Double?) -> HistoryPredictor.Example {
            HistoryPredictor.Example(
                features: [0], gap: 0, latency: nil, differenceSE: nil, rows: 100, sizeBytes: 1, flops: 1,
                taskId: "t", run: "r", epochsFraction: fraction)
        }
        // Weights 3 and 1: (3 · 0.2 + 1 · 1.0) / 4 = 0.4; a neighbour without one does not count.
        let nearest = [(3.0, 0.1, example(0.2)), (1.0, 0.9, example(1.0)), (2.0, 0.3, example(nil))]
        let fraction = try #require(predictor.prediction(from: nearest, rows: 100).epochsFraction)
        #expect(abs(fraction - 0.4) < 1e-12)
        #expect(predictor.prediction(from: [(1.0, 0.5, example(nil))], rows: 100).epochsFraction == nil)
    }
}

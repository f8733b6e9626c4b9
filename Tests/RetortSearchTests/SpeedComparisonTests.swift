import Foundation
import RetortData
import RetortEvals
import RetortNumerics
import Testing

@testable import RetortSearch

/// A complete student of `family` with a measured p50.
private func student(
    _ id: String, family: Family, accuracy: Double, latency: Double, size: Int, flops: Int
) -> TrialResult {
    TrialResult(
        id: id, family: family, config: [:], precision: .fp32, params: size / 4, sizeBytes: size,
        flopsPerExample: flops,
        latencyMsP50: latency, latencyMsP95: latency * 1.5,
        metrics: ["accuracy": MetricEstimate(value: accuracy, ci95: accuracy...accuracy)],
        fidelity: 1, status: .complete, onFrontier: false)
}

@Suite struct SpeedComparisonTests {
    /// The case: a tree ensemble whose comparisons count few FLOPs beside an mlp of equal accuracy that is
    /// 5× faster as measured and 35× smaller.
    static let crossFamily = [
        student("gbdt", family: .gbdt, accuracy: 0.93, latency: 0.0050, size: 50_000, flops: 1_000),
        student("mlp", family: .mlp, accuracy: 0.93, latency: 0.00088, size: 1_430, flops: 20_000),
        student("linear", family: .linear, accuracy: 0.80, latency: 0.00070, size: 900, flops: 600),
    ]

    @Test("across families measured latency decides: a clearly slower, larger, no better student leaves the frontier")
    func crossFamilyFrontier() {
        let byFLOPs = SearchEngine.rank(
            Self.crossFamily, metric: "accuracy", teacherValue: 0.93, teacherLatency: 700,
            constraints: Constraints(maxDrop: 0.01))
        #expect(byFLOPs.frontier.contains("gbdt"), "FLOPs call the ensemble faster")
        #expect(byFLOPs.recommendation.candidate == "gbdt")
        let measured = SearchEngine.rank(
            Self.crossFamily, metric: "accuracy", teacherValue: 0.93, teacherLatency: 700,
            constraints: Constraints(maxDrop: 0.01), speed: SpeedComparison())
        #expect(!measured.frontier.contains("gbdt"))
        #expect(measured.frontier.contains("mlp") && measured.frontier.contains("linear"))
        #expect(measured.recommendation.candidate == "mlp", "\(measured.recommendation.reason)")
        #expect(measured.recommendation.reason.contains("the smallest of the 2 qualifying students that are as fast"))
        // No frontier member is clearly slower, larger and no better than any candidate.
        let speed = SpeedComparison()
        for id in measured.frontier where id != "teacher" {
            let member = Self.crossFamily.first { $0.id == id }!
            for other in Self.crossFamily where other.id != id {
                let clearlySlower = speed.clearlyFaster(other.latencyMsP50!, than: member.latencyMsP50!)
                let larger = member.sizeBytes > other.sizeBytes
                let noBetter = member.metrics["accuracy"]!.value <= other.metrics["accuracy"]!.value
                #expect(!(clearlySlower && larger && noBetter), "\(id) vs \(other.id)")
            }
        }
    }

    @Test("within the tolerance: across families a tie, within a family FLOPs decide")
    func tolerance() {
        let speed = SpeedComparison(relativeTolerance: 0.2)
        #expect(speed.compare((1.0, "mlp", 9_000), (1.15, "gbdt", 100)) == 0)
        #expect(speed.compare((1.0, "mlp", 9_000), (1.15, "mlp", 100)) == 1)
        #expect(speed.compare((1.0, "mlp", 9_000), (1.25, "gbdt", 100)) == -1)
        #expect(speed.compare((nil, "mlp", 9_000), (1.25, "gbdt", 100)) == 1, "no latency: FLOPs alone")
        let a = FrontierPoint(
            id: "a", quality: 0.9, latencyTier: 0, flops: 9_000, size: 10, latencyMs: 1.0, family: "mlp", speed: speed)
        let b = FrontierPoint(
            id: "b", quality: 0.9, latencyTier: 0, flops: 100, size: 10, latencyMs: 1.1, family: "gbdt", speed: speed)
        #expect(!a.dominates(b) && !b.dominates(a), "as fast and as large: both stay")
        var c = b
        c.size = 20
        #expect(a.dominates(c), "as fast, smaller")
    }

    @Test("the recommendation survives measurement noise within the run-to-run spread")
    func stableUnderNoise() {
        // Three qualifying students as fast as each other (within 6%), of different sizes, and a slower one.
        let base = [
            student("lin-b14", family: .linear, accuracy: 0.941, latency: 0.010, size: 300_000, flops: 900),
            student("mlp-16", family: .mlp, accuracy: 0.942, latency: 0.0104, size: 90_000, flops: 4_000),
            student("gbdt", family: .gbdt, accuracy: 0.943, latency: 0.0106, size: 400_000, flops: 300),
            student("mlp-256", family: .mlp, accuracy: 0.950, latency: 0.05, size: 4_000_000, flops: 90_000),
        ]
        var picks: [String: Int] = [:]
        var rawFastest: [String: Int] = [:]
        var generator = SeededGenerator(seed: 3)
        for _ in 0..<200 {
            // Each run's measurements move by up to ±8% (two runs of one job on a noisy machine).
            let noisy = base.map { trial in
                var trial = trial
                trial.latencyMsP50 = (trial.latencyMsP50 ?? 0) * Double.random(in: 0.95...1.05, using: &generator)
                return trial
            }
            let pick = Recommender.recommend(
                trials: noisy, metric: "accuracy", teacherValue: 0.945, constraints: Constraints(maxDrop: 0.01),
                speed: SpeedComparison())
            picks[pick.candidate ?? "teacher", default: 0] += 1
            let fastest = noisy.filter { $0.id != "mlp-256" }.min { $0.latencyMsP50! < $1.latencyMsP50! }!
            rawFastest[fastest.id, default: 0] += 1
        }
        #expect(picks == ["mlp-16": 200], "\(picks)")
        #expect(rawFastest.count > 1, "the raw fastest flips from run to run: \(rawFastest)")
    }

    @Test("close calls are measured again, keep their lower p50 and set the tolerance from the spread")
    func settle() {
        var trials = [
            student("a", family: .linear, accuracy: 0.9, latency: 1.0, size: 10, flops: 10),
            student("b", family: .mlp, accuracy: 0.9, latency: 1.25, size: 10, flops: 10),
            student("c", family: .mlp, accuracy: 0.9, latency: 9.0, size: 10, flops: 10),
            student("d", family: .linear, accuracy: 0.9, latency: 1.1, size: 10, flops: 10),
        ]
        #expect(
            SpeedComparison.closeCalls(trials, contenders: ["a"], tolerance: 0.2) == ["a", "d", "b"],
            "nearest first, any family")
        #expect(Set(SpeedComparison.closeCalls(trials, contenders: ["a", "d"], tolerance: 0.2)) == ["a", "b", "d"])
        #expect(SpeedComparison.closeCalls(trials, contenders: ["c"]) == [], "9 ms is near nothing")
        let again = ["a": 1.5, "b": 1.2]  // d can no longer be profiled: left as measured
        var asked: [String] = []
        let speed = SpeedComparison.settle(&trials, contenders: ["a"], tolerance: 0.2, usdPerVCPUHour: 0.036) { id in
            asked.append(id)
            return again[id].map { LatencyProfile(p50: $0, p95: $0 * 2, throughput: 1000 / $0) }
        }
        #expect(asked == ["a", "d", "b"])
        #expect(trials[0].latencyMsP50 == 1.0, "the first measurement was lower")
        #expect(trials[1].latencyMsP50 == 1.2 && trials[1].latencyMsP95 == 2.4)
        #expect(abs((trials[1].costPer1MUSD ?? 0) - 1.2 / 1000 * 1e6 * 0.036 / 3600) < 1e-12)
        // Spreads 50% and 4.2%: median 27.1%, tolerance twice that (wider than the 20% asked for).
        let spread = (0.5 + 0.05 / 1.2) / 2
        #expect(abs((speed.measuredSpread ?? 0) - spread) < 1e-12)
        #expect(abs(speed.relativeTolerance - 2 * spread) < 1e-12)
        #expect(speed.remeasured == ["a", "b"])
        var quiet = trials
        let none = SpeedComparison.settle(&quiet, contenders: ["c"], usdPerVCPUHour: 0) { _ in nil }
        #expect(none == SpeedComparison(), "nothing near c: the default tolerance, 2×")
    }
}

import Foundation
import RetortData
import RetortNumerics

/// A metric's point value with its bootstrap interval.
public struct MetricEstimate: Sendable, Codable, Equatable {
    /// The value on the whole split.
    public var value: Double
    /// The 95% percentile bootstrap interval.
    public var ci95: [Double]

    /// An estimate.
    public init(value: Double, ci95: ClosedRange<Double>) {
        self.value = value
        self.ci95 = [ci95.lowerBound, ci95.upperBound]
    }
}

/// Metrics of one set of predictions on one split, with the bootstrap replicates kept for paired differences.
public struct Evaluation: Sendable {
    /// Estimates by metric.
    public var estimates: [Metric: MetricEstimate]
    /// Per-resample values by metric (same resamples for every model on the split).
    public var replicates: [Metric: [Float]]

    /// The CI of `self − other` on the same resamples, for `metric` (nil when either lacks it).
    public func difference(to other: Evaluation, on metric: Metric, resampler: BootstrapResampler) -> MetricEstimate? {
        guard let mine = estimates[metric], let theirs = other.estimates[metric], let a = replicates[metric],
            let b = other.replicates[metric]
        else { return nil }
        return MetricEstimate(value: mine.value - theirs.value, ci95: resampler.interval(zip(a, b).map { $0 - $1 }))
    }
}

/// Computes metrics with bootstrap CIs for predictions on a split, all resampled through one `W`.
public struct Evaluator: Sendable {
    /// The split's teacher answers.
    public let teacherLabels: [Int]
    /// The split's gold labels (nil where absent).
    public let gold: [Int?]
    /// Number of classes.
    public let classes: Int
    /// The resampler for this split.
    public let resampler: BootstrapResampler

    /// An evaluator for `split` with `resamples` seeded resamples.
    public init(split: SplitData, classes: Int, resamples: Int = 1000, seed: UInt64) {
        teacherLabels = split.teacherLabels
        gold = split.gold
        self.classes = classes
        resampler = BootstrapResampler(examples: split.count, resamples: resamples, seed: seed)
    }

    /// Whether accuracy against gold is available.
    public var hasGold: Bool { gold.contains { $0 != nil } }

    /// The metrics this split supports.
    public var availableMetrics: [Metric] { hasGold ? Metric.allCases : [.agreement, .macroF1] }

    /// Evaluates `predictions` (class indices, one per row).
    public func evaluate(_ predictions: [Int]) throws(NumericsError) -> Evaluation {
        precondition(predictions.count == teacherLabels.count, "one prediction per row")
        let n = predictions.count
        var estimates: [Metric: MetricEstimate] = [:]
        var replicates: [Metric: [Float]] = [:]
        let ones = [Float](repeating: 1, count: n)
        let allRows = try resampler.resampledSums(ones)
        func ratio(correct: [Float], mask: [Float], totals: [Float]) throws(NumericsError) -> (Double, [Float]) {
            let hits = try resampler.resampledSums(correct)
            let values = zip(hits, totals).map { $1 > 0 ? $0 / $1 : Float.nan }
            let total = mask.reduce(0, +)
            return (total > 0 ? Double(correct.reduce(0, +)) / Double(total) : .nan, values)
        }
        let agreementHits = (0..<n).map { Float(predictions[$0] == teacherLabels[$0] ? 1 : 0) }
        let (agreement, agreementReplicates) = try ratio(correct: agreementHits, mask: ones, totals: allRows)
        estimates[.agreement] = MetricEstimate(value: agreement, ci95: resampler.interval(agreementReplicates))
        replicates[.agreement] = agreementReplicates
        let reference: [Int?] = hasGold ? gold : teacherLabels.map { $0 }
        if hasGold {
            let mask = gold.map { $0 == nil ? Float(0) : 1 }
            let hits = (0..<n).map { Float(gold[$0] == predictions[$0] ? 1 : 0) }
            let (accuracy, accuracyReplicates) = try ratio(
                correct: hits, mask: mask, totals: try resampler.resampledSums(mask))
            estimates[.accuracy] = MetricEstimate(value: accuracy, ci95: resampler.interval(accuracyReplicates))
            replicates[.accuracy] = accuracyReplicates
        }
        var truePositive = Matrix(rows: n, columns: classes)
        var predicted = Matrix(rows: n, columns: classes)
        var actual = Matrix(rows: n, columns: classes)
        for i in 0..<n {
            guard let truth = reference[i] else { continue }
            predicted[i, predictions[i]] = 1
            actual[i, truth] = 1
            if truth == predictions[i] { truePositive[i, truth] = 1 }
        }
        func macroF1(_ tp: ArraySlice<Float>, _ p: ArraySlice<Float>, _ a: ArraySlice<Float>) -> Float {
            var total: Float = 0
            var present = 0
            for (t, (pp, aa)) in zip(tp, zip(p, a)) where pp + aa > 0 {
                total += 2 * t / (pp + aa)
                present += 1
            }
            return present > 0 ? total / Float(present) : .nan
        }
        let point = macroF1(
            try Kernels.columnSums(truePositive)[...], try Kernels.columnSums(predicted)[...],
            try Kernels.columnSums(actual)[...])
        let tpB = try resampler.resampledSums(truePositive)
        let pB = try resampler.resampledSums(predicted)
        let aB = try resampler.resampledSums(actual)
        var f1Replicates = [Float](repeating: 0, count: resampler.resamples)
        for b in 0..<resampler.resamples {
            let range = (b * classes)..<((b + 1) * classes)
            f1Replicates[b] = macroF1(tpB.storage[range], pB.storage[range], aB.storage[range])
        }
        estimates[.macroF1] = MetricEstimate(value: Double(point), ci95: resampler.interval(f1Replicates))
        replicates[.macroF1] = f1Replicates
        return Evaluation(estimates: estimates, replicates: replicates)
    }
}

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

/// Computes a task kind's metrics with bootstrap CIs for predictions on one split, all resampled through one `W`:
/// the kind scores rows (``AnswerKind/scores(_:teacher:gold:)``), the resampler turns the scores into estimates and
/// replicates.
public struct SplitEvaluator<Kind: AnswerKind>: Sendable {
    /// The task kind.
    public let kind: Kind
    /// The split's teacher answers.
    public let teacher: [Kind.Answer]
    /// The split's gold answers (nil where absent).
    public let gold: [Kind.Answer?]
    /// The resampler for this split.
    public let resampler: BootstrapResampler

    /// An evaluator for `split` under `kind`, with `resamples` seeded resamples.
    public init(kind: Kind, split: Kind.Split, resamples: Int = 1000, seed: UInt64) {
        self.kind = kind
        teacher = kind.teacherAnswers(split)
        gold = kind.goldAnswers(split)
        precondition(gold.count == teacher.count, "one gold entry per row")
        resampler = BootstrapResampler(examples: teacher.count, resamples: resamples, seed: seed)
    }

    /// Whether metrics against gold are available.
    public var hasGold: Bool { gold.contains { $0 != nil } }

    /// The metrics this split supports.
    public var availableMetrics: [Metric] { kind.metrics(hasGold: hasGold) }

    /// Evaluates `predictions` (one answer per row).
    public func evaluate(_ predictions: [Kind.Answer]) throws(NumericsError) -> Evaluation {
        precondition(predictions.count == teacher.count, "one prediction per row")
        var estimates: [Metric: MetricEstimate] = [:]
        var replicates: [Metric: [Float]] = [:]
        for (metric, scores) in kind.scores(predictions, teacher: teacher, gold: gold) {
            let (estimate, values) = try self.estimate(scores)
            estimates[metric] = estimate
            replicates[metric] = values
        }
        return Evaluation(estimates: estimates, replicates: replicates)
    }

    /// The point value, interval and per-resample values of one metric's row scores.
    public func estimate(_ scores: MetricScores) throws(NumericsError) -> (MetricEstimate, [Float]) {
        switch scores {
        case .ratio(let numerator, let denominator):
            let hits = try resampler.resampledSums(numerator)
            let totals = try resampler.resampledSums(denominator)
            let values = zip(hits, totals).map { $1 > 0 ? $0 / $1 : Float.nan }
            let total = denominator.reduce(0, +)
            let point = total > 0 ? Double(numerator.reduce(0, +)) / Double(total) : .nan
            return (MetricEstimate(value: point, ci95: resampler.interval(values)), values)
        case .meanClassF1(let truePositives, let predicted, let actual):
            let classes = truePositives.columns
            let point = Self.meanF1(
                try Kernels.columnSums(truePositives)[...], try Kernels.columnSums(predicted)[...],
                try Kernels.columnSums(actual)[...])
            let tpB = try resampler.resampledSums(truePositives)
            let pB = try resampler.resampledSums(predicted)
            let aB = try resampler.resampledSums(actual)
            var values = [Float](repeating: 0, count: resampler.resamples)
            for b in 0..<resampler.resamples {
                let range = (b * classes)..<((b + 1) * classes)
                values[b] = Self.meanF1(tpB.storage[range], pB.storage[range], aB.storage[range])
            }
            return (MetricEstimate(value: Double(point), ci95: resampler.interval(values)), values)
        }
    }

    /// The mean over present classes of `2·tp / (predicted + actual)`.
    static func meanF1(_ tp: ArraySlice<Float>, _ p: ArraySlice<Float>, _ a: ArraySlice<Float>) -> Float {
        var total: Float = 0
        var present = 0
        for (t, (pp, aa)) in zip(tp, zip(p, a)) where pp + aa > 0 {
            total += 2 * t / (pp + aa)
            present += 1
        }
        return present > 0 ? total / Float(present) : .nan
    }
}

/// The classification evaluator, which every search uses today.
public typealias Evaluator = SplitEvaluator<Classification>

extension SplitEvaluator where Kind == Classification {
    /// An evaluator for `split` with `resamples` seeded resamples, over the labels of `vocabulary`.
    public init(split: SplitData, vocabulary: LabelVocabulary, resamples: Int = 1000, seed: UInt64) {
        self.init(kind: Classification(vocabulary), split: split, resamples: resamples, seed: seed)
    }

    /// The split's teacher labels.
    public var teacherLabels: [Int] { teacher }
}

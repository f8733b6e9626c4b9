import Foundation
import RetortEvals
import RetortNumerics

/// How sure the search may be that a student's true drop against the teacher is within `max_drop`, corrected for
/// having picked it among many (report.json `selection`).
///
/// Every candidate's validation difference to the teacher (`d`) comes with its paired bootstrap replicates `d_b`
/// (the same resamples for every candidate and the teacher). The standardized error of candidate `c` on resample `b`
/// is `(d_cb − d_c) / se_c` (basic bootstrap: the resample's error stands in for the estimate's). Picking the
/// cheapest candidate that clears a bar favours candidates whose estimate happened to be lucky; what protects every
/// candidate at once is the *largest* standardized error over the candidates, `T_b = max_c (d_cb − d_c) / se_c`,
/// whose distribution the bootstrap gives (a max-t simultaneous bound: it keeps the candidates' correlation, so
/// near-identical students do not count as independent chances). The probability that `c`'s true difference is at
/// least `−max_drop` is then `P(T ≤ (d_c + max_drop) / se_c)`: with it at 90%, the bound holds for every candidate
/// at once with 90% probability, whichever is picked.
///
/// Why this and not a held-out confirmation half: splitting validation halves the rows every estimate rests on
/// (widening every CI by √2) and the pick still has only one half's evidence; the simultaneous bound uses all rows
/// and costs only the max-t quantile (about 2–2.5 standard errors with dozens of correlated candidates, against
/// 1.3 for a single one).
public struct SelectionAdjustment: Sendable, Codable, Equatable {
    /// Candidates the maximum runs over (complete, full fidelity, with a bootstrap spread).
    public var candidates: Int
    /// The 1st to 99th percentiles of `T`, ascending.
    public var maxStatisticPercentiles: [Double]

    /// The distribution function of `T` at `margin` (linear between the stored percentiles; 0 below the 1st, 1 above
    /// the 99th).
    public func probability(margin: Double) -> Double {
        let q = maxStatisticPercentiles
        guard let first = q.first, let last = q.last else { return 0 }
        if margin < first { return 0 }
        if margin >= last { return 1 }
        var index = 0
        while index + 1 < q.count && q[index + 1] <= margin { index += 1 }
        let step = q[index + 1] - q[index]
        let fraction = step > 0 ? (margin - q[index]) / step : 0
        return (Double(index + 1) + fraction) / 100
    }

    /// The probability that a candidate with validation difference `difference` (student − teacher) and bootstrap
    /// standard error `se` is truly within `maxDrop` of the teacher, adjusted for the selection.
    public func probabilityWithin(difference: Double, se: Double, maxDrop: Double) -> Double {
        let slack = difference + maxDrop
        guard se > 0 else { return slack >= -1e-12 ? 1 : 0 }
        return probability(margin: slack / se)
    }

    /// The adjustment for candidates whose paired difference replicates are `replicates` and point differences
    /// `differences` (both by candidate id); nil when fewer than one candidate has a spread.
    public static func make(replicates: [String: [Float]], differences: [String: Double]) -> SelectionAdjustment? {
        var errors: [[Double]] = []
        for (id, values) in replicates {
            guard let difference = differences[id], values.count > 1 else { continue }
            let se = standardError(values)
            guard se > 0 else { continue }
            errors.append(values.map { (Double($0) - difference) / se })
        }
        guard let resamples = errors.first?.count, errors.allSatisfy({ $0.count == resamples }) else { return nil }
        let maxima = (0..<resamples).map { b in errors.reduce(-Double.infinity) { max($0, $1[b]) } }.sorted()
        let percentiles = (1...99).map { Quantile.interpolated(maxima, Double($0) / 100) }
        return SelectionAdjustment(candidates: errors.count, maxStatisticPercentiles: percentiles)
    }

    /// The standard deviation of bootstrap replicates.
    public static func standardError(_ values: [Float]) -> Double {
        guard values.count > 1 else { return 0 }
        let mean = values.reduce(0.0) { $0 + Double($1) } / Double(values.count)
        let squares = values.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) }
        return (squares / Double(values.count - 1)).squareRoot()
    }

    enum CodingKeys: String, CodingKey {
        case candidates
        case maxStatisticPercentiles = "max_statistic_percentiles"
    }
}

import Foundation
import RetortNumerics
import RetortSearch

/// How a prediction's uncertainty grows with the distance to the past trials it rests on, so that a tight spread of
/// far-away (irrelevant) neighbours is not trusted:
///
///     sd² = spread² + floor² + (c · D / d₀)²
///
/// where
/// - `spread`: the inverse-distance-weighted spread of the k neighbours' gaps;
/// - `D`: their inverse-distance-weighted mean distance (standardized feature space);
/// - `d₀` (``typicalDistance``): the median of `D` over the history's own trials, each predicted from the trials of
///   the other tasks (leave one task out), so `D / d₀ = 1` is "as near as past tasks are to each other";
/// - `c` (``perTypicalDistance``): the smallest value for which ``targetCoverage`` (95%) of those leave-one-task-out
///   predictions hold the measured gap within ±``z`` sd. Each held-out trial i needs
///   `cᵢ = √max(0, (rᵢ/z)² − spreadᵢ² − floor²) / (Dᵢ/d₀)` (rᵢ its residual) to be covered, and `c` is the 95% quantile
///   of the `cᵢ`: exactly 95% of the history's own trials are covered, and a new task twice as far as usual gets twice
///   the extra deviation.
///
/// Beyond ``reach`` (D / d₀ > 4) the history's own trials cannot check the linear term, so the sd is at least that of
/// a gap nothing is known about (``uninformed``, 1/√12 = 0.289).
///
/// The fit aims at 95% on the history rather than the 90% asked of new tasks because a new task is usually farther
/// from the history than its own tasks are from each other.
///
/// Much of a prediction's error is the task's own offset, shared by all its candidates (a teacher that is hard to
/// imitate lowers every student's gap). Once a search has measured a few runs of its task it knows that offset
/// (`SearchEngine.correctedPredictions`); what is left is ``offsetSpread`` (κ) of the deviation: the smallest κ for
/// which 95% of the same leave-one-task-out predictions, each shifted by the mean residual of its task's *other*
/// training runs, hold the measured gap within ±z · κ · sd. With fewer than two past tasks nothing can be held out:
/// ``none`` (no widening, no relative distance).
///
/// The same predictions give the chance that a gap reaches a bar (``chance(_:reaches:)``). Because the sd is fitted to
/// cover 95%, the residuals are fat-tailed in its units: most sit well inside ±1 sd, a few far out. So the chance is
/// the share of the history's own held-out trials whose residual, in sd units, would have cleared the bar
/// (``standardizedResiduals``), not the normal tail, which measured too cautious in the middle on the starter datasets
/// (a stated 60% met 84% of the time, `make bench-predictions`).
public struct DistanceWidening: Sendable, Equatable {
    /// d₀: the median weighted neighbour distance of the history's trials predicted leave one task out.
    public let typicalDistance: Double
    /// c: the extra standard deviation at the typical distance (it grows in proportion to the distance).
    public let perTypicalDistance: Double
    /// History trials predicted leave one task out for the fit (0: not fitted).
    public let fittedOn: Int
    /// Of those, the share whose measured gap fell within ±z sd without the distance term.
    public let coverageWithout: Double?
    /// The same share with the fitted distance term.
    public let coverageWith: Double?
    /// The median standard deviation of those predictions with the distance term: how wide the history's intervals
    /// usually are.
    public let typicalSD: Double?
    /// κ: the share of a prediction's deviation left once its task's offset is known (nil: no task with three or more
    /// training runs to fit it on).
    public let offsetSpread: Double?
    /// The fitted predictions' residuals (measured − predicted gap) over their standard deviations with the distance
    /// term, ascending: the distribution ``chance(_:reaches:)`` reads.
    public let standardizedResiduals: [Double]

    /// The share of the history's own trials the fit covers.
    public static let targetCoverage = 0.95
    /// The interval the fit covers, in standard deviations (the `confidenceZ` a search uses by default).
    public static let z = 2.0
    /// Trials of a large history predicted for the fit at most (evenly spaced), to bound its cost.
    public static let maximumFitQueries = 2000
    /// Fewer fitted trials than this and ``chance(_:reaches:)`` uses the normal tail: too few to read a share from.
    public static let minimumForEmpiricalChance = 50

    /// No widening (a history with fewer than two tasks).
    public static let none = DistanceWidening(
        typicalDistance: 1, perTypicalDistance: 0, fittedOn: 0, coverageWithout: nil, coverageWith: nil, typicalSD: nil,
        offsetSpread: nil)

    /// A widening with these parameters.
    public init(
        typicalDistance: Double, perTypicalDistance: Double, fittedOn: Int, coverageWithout: Double?,
        coverageWith: Double?, typicalSD: Double?, offsetSpread: Double? = nil, standardizedResiduals: [Double] = []
    ) {
        self.typicalDistance = typicalDistance
        self.perTypicalDistance = perTypicalDistance
        self.fittedOn = fittedOn
        self.coverageWithout = coverageWithout
        self.coverageWith = coverageWith
        self.typicalSD = typicalSD
        self.offsetSpread = offsetSpread
        self.standardizedResiduals = standardizedResiduals.sorted()
    }

    /// The chance that the gap of a candidate with `prediction` reaches `bar`: the share of the history's own held-out
    /// trials whose standardized residual r would have put it there (gap + r · sd ≥ bar), counted as (k + ½) / (n + 1)
    /// so that it is never exactly 0 or 1. The normal tail Φ((gap − bar) / sd) instead when fewer than
    /// ``minimumForEmpiricalChance`` trials were fitted, or beyond ``reach``, where the sd is that of a gap nothing is
    /// known about and the history's residuals do not apply.
    /// - Complexity: O(log n).
    public func chance(_ prediction: CandidatePrediction, reaches bar: Double) -> Double {
        let residuals = standardizedResiduals
        guard prediction.gapSD > 0 else { return prediction.gap >= bar - 1e-12 ? 1 : 0 }
        let threshold = (bar - prediction.gap) / prediction.gapSD
        guard residuals.count >= Self.minimumForEmpiricalChance,
            (prediction.relativeDistance ?? 0) <= Self.reach
        else { return StandardNormal.cdf(-threshold) }
        // The first residual at or above the threshold, by bisection over the ascending residuals.
        var (low, high) = (0, residuals.count)
        while low < high {
            let middle = (low + high) / 2
            if residuals[middle] < threshold { low = middle + 1 } else { high = middle }
        }
        return (Double(residuals.count - low) + 0.5) / (Double(residuals.count) + 1)
    }

    /// `distance / d₀`, or nil when not fitted.
    public func relative(_ distance: Double) -> Double? {
        fittedOn > 0 ? distance / typicalDistance : nil
    }

    /// `√(spread² + floor² + (c · distance / d₀)²)`; beyond ``reach`` (relative distance), at least ``uninformed``.
    public func standardDeviation(spread: Double, floor: Double, distance: Double) -> Double {
        let relative = relative(distance) ?? 0
        let extra = perTypicalDistance * relative
        let sd = (spread * spread + floor * floor + extra * extra).squareRoot()
        return Self.bounded(sd, relative: relative)
    }

    /// `sd` at `relative` distance as a prediction states it: beyond ``reach``, at least ``uninformed``.
    static func bounded(_ sd: Double, relative: Double) -> Double {
        relative > reach ? max(sd, uninformed) : sd
    }

    /// The relative distance up to which the history's own trials show how a prediction's error grows with distance:
    /// 4× the typical one. Farther away the linear term is an extrapolation the history cannot check, so a prediction
    /// there says only what any gap may be (``uninformed``); the learned strategy runs halving when the median
    /// prediction is that far (`LearnedMode.maximumRelativeDistance`).
    public static let reach = LearnedMode.maximumRelativeDistance

    /// The standard deviation of a gap nothing is known about: a student's metric (accuracy or macro-F1, on [0, 1])
    /// equally likely anywhere, `1/√12`.
    public static let uninformed = 1 / 12.0.squareRoot()

    /// Fits d₀, c and κ on the history's trials: `standardized` feature rows (one per trial, equal widths), their
    /// measured `gaps`, `taskIds` and training `runs` (precision variants of one run share it; nil: every trial is its
    /// own); each trial (at most ``maximumFitQueries``, evenly spaced) is predicted from its
    /// `k` nearest trials of other tasks, weighted 1 / (distance + 0.25) as the predictor does. Squared distances come
    /// from one sgemm, ‖a − b‖² = ‖a‖² + ‖b‖² − 2·a·b, to select the neighbours; their distances are then recomputed
    /// in Double.
    /// - Complexity: O(q · n · width) for q queried trials of n, plus O(q · n · k) for the neighbour selection.
    static func fitted(
        standardized: [[Double]], gaps: [Double], taskIds: [String], runs: [String]? = nil, k: Int, floorSD: Double
    ) -> DistanceWidening {
        let n = standardized.count
        let width = standardized.first?.count ?? 0
        guard n > 1, width > 0, k > 0, Set(taskIds).count >= 2 else { return .none }
        let queries =
            n <= maximumFitQueries ? Array(0..<n) : (0..<maximumFitQueries).map { $0 * n / maximumFitQueries }
        let all = Matrix(rows: n, columns: width, storage: standardized.flatMap { $0.map(Float.init) })
        guard let products = try? Matrix.product(all.gatheringRows(queries), all, transposeB: .transposed) else {
            return .none
        }
        let norms = standardized.map { row in row.reduce(0) { $0 + $1 * $1 } }
        var residuals: [(residual: Double, variance: Double, distance: Double, trial: Int)] = []
        for (row, i) in queries.enumerated() {
            // The k nearest trials of other tasks, kept sorted by distance.
            var nearest: [(distance: Double, index: Int)] = []
            for j in 0..<n where taskIds[j] != taskIds[i] {
                let squared = max(0, norms[i] + norms[j] - 2 * Double(products[row, j]))
                let distance = squared.squareRoot()
                guard nearest.count < k || distance < (nearest.last?.distance ?? .infinity) else { continue }
                let position = nearest.firstIndex { $0.distance > distance } ?? nearest.count
                nearest.insert((distance, j), at: position)
                if nearest.count > k { nearest.removeLast() }
            }
            guard !nearest.isEmpty else { continue }
            // The selected neighbours' distances again in Double, as the predictor computes them.
            nearest = nearest.map { (HistoryPredictor.distance(standardized[i], standardized[$0.index]), $0.index) }
            let weights = nearest.map { 1 / ($0.distance + 0.25) }
            let total = weights.reduce(0, +)
            let mean = zip(weights, nearest).reduce(0) { $0 + $1.0 * gaps[$1.1.index] } / total
            let variance = zip(weights, nearest).reduce(0) { $0 + $1.0 * pow(gaps[$1.1.index] - mean, 2) } / total
            let distance = zip(weights, nearest).reduce(0) { $0 + $1.0 * $1.1.distance } / total
            residuals.append((gaps[i] - mean, variance + floorSD * floorSD, distance, i))
        }
        guard !residuals.isEmpty else { return .none }
        let distances = residuals.map(\.distance).sorted()
        let typical = max(distances[distances.count / 2], 1e-6)
        // The c each trial needs to be covered: 0 when its spread covers it already, infinite when its neighbours sit
        // at distance 0 (no distance term can cover it).
        let needed = residuals.map { entry -> Double in
            let missing = pow(entry.residual / z, 2) - entry.variance
            guard missing > 0 else { return 0 }
            guard entry.distance > 0 else { return .infinity }
            return missing.squareRoot() / (entry.distance / typical)
        }.sorted()
        let index = min(needed.count - 1, max(0, Int((targetCoverage * Double(needed.count)).rounded(.up)) - 1))
        let c = needed[index].isFinite ? needed[index] : (needed.last { $0.isFinite } ?? 0)
        let count = Double(needed.count)
        let deviation = residuals.map { ($0.variance + pow(c * $0.distance / typical, 2)).squareRoot() }
        let sorted = deviation.sorted()
        // In the units of the sd a prediction states.
        let standardized = zip(residuals, deviation).map { entry, deviation in
            entry.residual / bounded(deviation, relative: entry.distance / typical)
        }
        return DistanceWidening(
            typicalDistance: typical, perTypicalDistance: c, fittedOn: needed.count,
            coverageWithout: Double(needed.filter { $0 == 0 }.count) / count,
            coverageWith: Double(needed.filter { $0 <= c }.count) / count, typicalSD: sorted[sorted.count / 2],
            offsetSpread: offsetSpread(
                residuals: residuals.map(\.residual), deviations: deviation,
                tasks: residuals.map { taskIds[$0.trial] }, runs: residuals.map { runs?[$0.trial] ?? "\($0.trial)" }),
            standardizedResiduals: standardized)
    }

    /// κ from leave-one-task-out `residuals` and their `deviations` (sd with the distance term), per trial with its
    /// task and training run: each run's residual (the mean of its trials') less the mean residual of the task's other
    /// runs, over z times the run's deviation; κ is the 95% quantile of those ratios, at most 1. Only tasks with three or
    /// more runs count (two or more others to estimate the offset from); nil when none has.
    static func offsetSpread(residuals: [Double], deviations: [Double], tasks: [String], runs: [String]) -> Double? {
        var byRun: [String: (task: String, residual: Double, deviation: Double, count: Double)] = [:]
        for i in residuals.indices {
            var entry = byRun[runs[i]] ?? (tasks[i], 0, 0, 0)
            entry.residual += residuals[i]
            entry.deviation += deviations[i]
            entry.count += 1
            byRun[runs[i]] = entry
        }
        let byTask = Dictionary(grouping: byRun.values, by: \.task)
        var ratios: [Double] = []
        for members in byTask.values where members.count >= 3 {
            let total = members.reduce(0) { $0 + $1.residual / $1.count }
            for run in members {
                let own = run.residual / run.count
                let offset = (total - own) / Double(members.count - 1)
                let deviation = run.deviation / run.count
                guard deviation > 0 else { continue }
                ratios.append(abs(own - offset) / (z * deviation))
            }
        }
        guard !ratios.isEmpty else { return nil }
        ratios.sort()
        let index = min(ratios.count - 1, max(0, Int((targetCoverage * Double(ratios.count)).rounded(.up)) - 1))
        return min(1, ratios[index])
    }
}

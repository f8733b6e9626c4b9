import Foundation
import RetortNumerics

/// How a prediction's uncertainty grows with the distance to the past trials it rests on, so that a tight spread of
/// far-away (irrelevant) neighbours is not trusted:
///
///     sd² = spread² + floor² + (c · D / d₀)²
///
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
/// The fit aims at 95% on the history rather than the 90% asked of new tasks because a new task is usually farther
/// from the history than its own tasks are from each other. With fewer than two past tasks nothing can be held out:
/// ``none`` (no widening, no relative distance).
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

    /// The share of the history's own trials the fit covers.
    public static let targetCoverage = 0.95
    /// The interval the fit covers, in standard deviations (the `confidenceZ` a search uses by default).
    public static let z = 2.0
    /// Trials of a large history predicted for the fit at most (evenly spaced), to bound its cost.
    public static let maximumFitQueries = 2000

    /// No widening (a history with fewer than two tasks).
    public static let none = DistanceWidening(
        typicalDistance: 1, perTypicalDistance: 0, fittedOn: 0, coverageWithout: nil, coverageWith: nil, typicalSD: nil)

    /// A widening with these parameters.
    public init(
        typicalDistance: Double, perTypicalDistance: Double, fittedOn: Int, coverageWithout: Double?,
        coverageWith: Double?, typicalSD: Double?
    ) {
        self.typicalDistance = typicalDistance
        self.perTypicalDistance = perTypicalDistance
        self.fittedOn = fittedOn
        self.coverageWithout = coverageWithout
        self.coverageWith = coverageWith
        self.typicalSD = typicalSD
    }

    /// `distance / d₀`, or nil when not fitted.
    public func relative(_ distance: Double) -> Double? {
        fittedOn > 0 ? distance / typicalDistance : nil
    }

    /// `√(spread² + floor² + (c · distance / d₀)²)`.
    public func standardDeviation(spread: Double, floor: Double, distance: Double) -> Double {
        let extra = perTypicalDistance * (relative(distance) ?? 0)
        return (spread * spread + floor * floor + extra * extra).squareRoot()
    }

    /// Fits d₀ and c on the history's trials: `standardized` feature rows (one per trial, equal widths), their
    /// measured `gaps` and `taskIds`; each trial (at most ``maximumFitQueries``, evenly spaced) is predicted from its
    /// `k` nearest trials of other tasks, weighted 1 / (distance + 0.25) as the predictor does. Squared distances come
    /// from one sgemm, ‖a − b‖² = ‖a‖² + ‖b‖² − 2·a·b, to select the neighbours; their distances are then recomputed
    /// in Double.
    /// - Complexity: O(q · n · width) for q queried trials of n, plus O(q · n · k) for the neighbour selection.
    static func fitted(standardized: [[Double]], gaps: [Double], taskIds: [String], k: Int, floorSD: Double)
        -> DistanceWidening
    {
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
        var residuals: [(residual: Double, variance: Double, distance: Double)] = []
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
            residuals.append((gaps[i] - mean, variance + floorSD * floorSD, distance))
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
        let deviations = residuals.map { ($0.variance + pow(c * $0.distance / typical, 2)).squareRoot() }.sorted()
        return DistanceWidening(
            typicalDistance: typical, perTypicalDistance: c, fittedOn: needed.count,
            coverageWithout: Double(needed.filter { $0 == 0 }.count) / count,
            coverageWith: Double(needed.filter { $0 <= c }.count) / count, typicalSD: deviations[deviations.count / 2])
    }
}

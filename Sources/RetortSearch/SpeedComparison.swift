import Foundation
import RetortNumerics

/// How the frontier and the recommender compare students on speed: by measured latency, with measurements that lie
/// within the run's measured run-to-run spread counted as equally fast; only then, and only within one family, do
/// FLOPs break the tie (they count the work of one architecture well, but say little about the clock across
/// families: a tree ensemble's comparisons and an mlp's multiply-adds are not the same cost).
///
/// Close calls are measured again: after every candidate has one measurement, the contenders (frontier members and
/// qualifying students) whose p50 lies near another candidate's are profiled once more, with those candidates, and
/// each keeps the lower p50 of its two measurements (noise on a shared machine only ever adds time). The relative differences between the two measurements of the same model are the run's run-to-run
/// spread; the tolerance is the larger of the job's (``defaultTolerance``: 2×) and twice their median, wide enough
/// that a second run of the same job draws the same line between "faster" and "as fast".
public struct SpeedComparison: Sendable, Equatable, Codable {
    /// Latencies whose ratio is within 1 + this count as equally fast.
    public var relativeTolerance: Double
    /// Median relative difference between two measurements of the same model in this run, when some were repeated.
    public var measuredSpread: Double?
    /// The candidates measured twice (close calls), in order.
    public var remeasured: [String]

    /// The default tolerance (`objective.speed_tolerance`): p50s within 2× of each other count as equally fast.
    ///
    /// Measured on the bench tasks (`make bench-speed`, two runs of each job on a busy 2-core machine): with 20%, the
    /// frontier differed between the two runs on 5 of 5 tasks and the recommendation on 2; with 50%, on 1 and 1; with
    /// 2×, on none. The gaps that matter across families stay visible: the tree ensembles the FLOPs rule kept on
    /// satimage's frontier are measured 4× slower than an mlp that is smaller and as good.
    public static let defaultTolerance = 1.0
    /// Candidates whose p50s are within `(1 + closeCallFactor × tolerance)` of each other are close calls.
    public static let closeCallFactor = 1.5
    /// At most this many candidates are measured again (the slowest to profile are the large encoders).
    public static let maximumRemeasured = 16

    /// A comparison with a given tolerance.
    public init(
        relativeTolerance: Double = Self.defaultTolerance, measuredSpread: Double? = nil, remeasured: [String] = []
    ) {
        self.relativeTolerance = relativeTolerance
        self.measuredSpread = measuredSpread
        self.remeasured = remeasured
    }

    enum CodingKeys: String, CodingKey {
        case relativeTolerance = "relative_tolerance"
        case measuredSpread = "measured_spread"
        case remeasured
    }

    /// Whether latency `a` (ms) is clearly lower than `b`: by more than the tolerance.
    public func clearlyFaster(_ a: Double, than b: Double) -> Bool { b > a * (1 + relativeTolerance) }

    /// −1 when `a` is faster, 1 when slower, 0 when as fast: latency first (beyond the tolerance), then FLOPs when
    /// both share a family, else a tie. Without a latency on either side, FLOPs alone.
    public func compare(
        _ a: (latencyMs: Double?, family: String, flops: Double),
        _ b: (latencyMs: Double?, family: String, flops: Double)
    ) -> Int {
        if let x = a.latencyMs, let y = b.latencyMs, x.isFinite, y.isFinite {
            if clearlyFaster(x, than: y) { return -1 }
            if clearlyFaster(y, than: x) { return 1 }
            if a.family != b.family { return 0 }
        }
        if a.flops != b.flops { return a.flops < b.flops ? -1 : 1 }
        return 0
    }

    /// The close calls among `trials` given the `contenders`' ids: complete students whose p50 lies within
    /// `1 + closeCallFactor × tolerance` of a contender's, with the contenders themselves, nearest calls first, at most
    /// ``maximumRemeasured``.
    public static func closeCalls(
        _ trials: [TrialResult], contenders: [String], tolerance: Double = defaultTolerance
    ) -> [String] {
        let measured = trials.filter { $0.status == .complete && ($0.latencyMsP50 ?? 0) > 0 }
        let byID = Dictionary(measured.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        var calls: [(id: String, ratio: Double)] = []
        for id in contenders {
            guard let contender = byID[id], let p50 = contender.latencyMsP50 else { continue }
            var near: [(String, Double)] = []
            for other in measured where other.id != id {
                guard let q = other.latencyMsP50 else { continue }
                let ratio = max(p50, q) / min(p50, q)
                if ratio <= 1 + closeCallFactor * tolerance { near.append((other.id, ratio)) }
            }
            guard let nearest = near.map(\.1).min() else { continue }
            calls.append((id, nearest))
            calls += near
        }
        var seen = Set<String>()
        var ordered: [String] = []
        for call in calls.sorted(by: { $0.ratio < $1.ratio || ($0.ratio == $1.ratio && $0.id < $1.id) })
        where seen.insert(call.id).inserted {
            ordered.append(call.id)
        }
        return Array(ordered.prefix(maximumRemeasured))
    }

    /// Measures the close calls of `trials` again with `profile` (nil when a candidate can no longer be profiled),
    /// keeps each one's lower p50 (and its p95, throughput and serving cost with it), and returns the comparison with
    /// the larger of `tolerance` and twice the measured spread.
    public static func settle(
        _ trials: inout [TrialResult], contenders: [String], tolerance: Double = defaultTolerance,
        usdPerVCPUHour: Double, profile: (String) throws -> LatencyProfile?
    ) rethrows -> SpeedComparison {
        let calls = closeCalls(trials, contenders: contenders, tolerance: tolerance)
        var spreads: [Double] = []
        var remeasured: [String] = []
        for id in calls {
            guard let index = trials.firstIndex(where: { $0.id == id }), let first = trials[index].latencyMsP50,
                let again = try profile(id)
            else { continue }
            remeasured.append(id)
            spreads.append(abs(again.p50 - first) / min(again.p50, first))
            if again.p50 < first {
                trials[index].latencyMsP50 = again.p50
                trials[index].latencyMsP95 = again.p95
                trials[index].throughputPerSecond = again.throughput
                trials[index].costPer1MUSD = again.p50 / 1000 * 1e6 * usdPerVCPUHour / 3600
            }
        }
        let spread = spreads.isEmpty ? nil : Quantile.interpolated(spreads.sorted(), 0.5)
        return SpeedComparison(
            relativeTolerance: max(tolerance, 2 * (spread ?? 0)), measuredSpread: spread,
            remeasured: remeasured)
    }
}

/// A point to place on the Pareto frontier: quality (higher is better), a latency key and size (lower is better).
public struct FrontierPoint: Sendable, Equatable {
    /// Identifier.
    public var id: String
    /// Primary metric (↑).
    public var quality: Double
    /// Latency tier (↓): latencies within measurement noise share a tier (see ``LatencyTiers``).
    public var latencyTier: Int
    /// FLOPs per example (↓), the tie-break inside a latency tier.
    public var flops: Double
    /// Serialized size in bytes (↓); `.infinity` when unknown (the teacher behind an API).
    public var size: Double

    /// A point.
    public init(id: String, quality: Double, latencyTier: Int, flops: Double, size: Double) {
        self.id = id
        self.quality = quality
        self.latencyTier = latencyTier
        self.flops = flops
        self.size = size
    }

    /// Whether `self` is at least as good as `other` on every objective and strictly better on one.
    ///
    /// Latency compares as the pair (tier, FLOPs): measured latencies within noise of each other are equal, and
    /// then the cheaper computation is the faster one. Each objective is a total preorder, so dominance is a strict
    /// partial order and the frontier is well defined.
    public func dominates(_ other: FrontierPoint) -> Bool {
        let latency = compare((latencyTier, flops), (other.latencyTier, other.flops))
        let notWorse = quality >= other.quality && latency <= 0 && size <= other.size
        let better = quality > other.quality || latency < 0 || size < other.size
        return notWorse && better
    }

    private func compare(_ a: (Int, Double), _ b: (Int, Double)) -> Int {
        if a.0 != b.0 { return a.0 < b.0 ? -1 : 1 }
        if a.1 != b.1 { return a.1 < b.1 ? -1 : 1 }
        return 0
    }
}

/// The exact Pareto frontier: the points no other point dominates, in input order. O(n²) comparisons.
public func paretoFrontier(of points: [FrontierPoint]) -> [FrontierPoint] {
    points.filter { candidate in !points.contains { $0.dominates(candidate) } }
}

/// Groups measured latencies into tiers: sorted ascending, a new tier starts whenever a latency exceeds the first
/// latency of the current tier by more than `tolerance` (10% by default). Latencies inside a tier are treated as
/// equal for dominance and the recommendation, so measurement noise does not reorder decisions.
public enum LatencyTiers {
    /// The tier of each latency (same order as the input).
    public static func assign(_ latencies: [Double], tolerance: Double = 0.10) -> [Int] {
        let order = latencies.indices.sorted { latencies[$0] < latencies[$1] }
        var tiers = [Int](repeating: 0, count: latencies.count)
        var tier = 0
        var tierStart: Double?
        for index in order {
            let latency = latencies[index]
            if let start = tierStart, latency > start * (1 + tolerance) {
                tier += 1
                tierStart = latency
            } else if tierStart == nil {
                tierStart = latency
            }
            tiers[index] = tier
        }
        return tiers
    }
}

/// A point to place on the Pareto frontier: quality (higher is better), a latency key and size (lower is better).
public struct FrontierPoint: Sendable, Equatable {
    /// Identifier.
    public var id: String
    /// Primary metric (↑).
    public var quality: Double
    /// Speed class (↓), compared before FLOPs: 0 for students, 1 for the teacher, 2 for a student measured slower
    /// than the teacher.
    public var latencyTier: Int
    /// FLOPs per example (↓): within a speed class, the deterministic stand-in for latency.
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
    /// Speed compares as the pair (class, FLOPs). Each objective is a total preorder, so dominance is a strict
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

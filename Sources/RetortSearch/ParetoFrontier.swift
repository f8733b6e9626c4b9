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
    /// Measured p50 latency, ms, compared under ``speed`` when both points have one.
    public var latencyMs: Double?
    /// The student family: FLOPs break a latency tie only within one family.
    public var family: String
    /// How speed is compared; nil: by (class, FLOPs) alone (halving's rungs, before latency is measured).
    public var speed: SpeedComparison?

    /// A point.
    public init(
        id: String, quality: Double, latencyTier: Int, flops: Double, size: Double, latencyMs: Double? = nil,
        family: String = "", speed: SpeedComparison? = nil
    ) {
        self.id = id
        self.quality = quality
        self.latencyTier = latencyTier
        self.flops = flops
        self.size = size
        self.latencyMs = latencyMs
        self.family = family
        self.speed = speed
    }

    /// Whether `self` is at least as good as `other` on every objective and strictly better on one.
    ///
    /// Speed compares by class first, then, with a ``SpeedComparison``, by measured latency beyond its tolerance and
    /// FLOPs within a family (``SpeedComparison/compare(_:_:)``); without one, by FLOPs. The frontier is the set of
    /// points no other dominates.
    public func dominates(_ other: FrontierPoint) -> Bool {
        let latency =
            latencyTier != other.latencyTier
            ? (latencyTier < other.latencyTier ? -1 : 1)
            : (speed ?? SpeedComparison()).compare(
                (speed == nil ? nil : latencyMs, family, flops),
                (speed == nil ? nil : other.latencyMs, other.family, other.flops))
        let notWorse = quality >= other.quality && latency <= 0 && size <= other.size
        let better = quality > other.quality || latency < 0 || size < other.size
        return notWorse && better
    }
}

/// The exact Pareto frontier: the points no other point dominates, in input order. O(n²) comparisons.
public func paretoFrontier(of points: [FrontierPoint]) -> [FrontierPoint] {
    points.filter { candidate in !points.contains { $0.dominates(candidate) } }
}

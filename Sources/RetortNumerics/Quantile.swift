/// Quantiles of samples, one definition for every figure Retort prints (latency p50/p95, bootstrap intervals, usage).
///
/// The definition is linear interpolation between closest ranks (type 7 of Hyndman and Fan, NumPy's default): the
/// `q` quantile of `n` ascending values sits at position `q × (n − 1)`, between the two values around it.
public enum Quantile {
    /// The `q` quantile (`q` in [0, 1]) of ascending `sorted`, interpolated; NaN when `sorted` is empty. O(1).
    public static func interpolated(_ sorted: [Double], _ q: Double) -> Double {
        interpolated(count: sorted.count, q) { sorted[$0] }
    }

    /// The interpolation over `count` ascending values read through `value`.
    static func interpolated(count: Int, _ q: Double, _ value: (Int) -> Double) -> Double {
        guard count > 0 else { return .nan }
        let position = min(max(q, 0), 1) * Double(count - 1)
        let lower = Int(position.rounded(.down))
        let upper = min(lower + 1, count - 1)
        let fraction = position - Double(lower)
        return value(lower) * (1 - fraction) + value(upper) * fraction
    }

    /// The `q` quantile of ascending single-precision `sorted` (bootstrap replicates), computed in Double. O(1).
    public static func interpolated(_ sorted: [Float], _ q: Double) -> Double {
        interpolated(count: sorted.count, q) { Double(sorted[$0]) }
    }

    /// The `q` quantile of `values` in any order (sorts a copy: O(n log n)).
    public static func of(_ values: [Double], _ q: Double) -> Double { interpolated(values.sorted(), q) }
}

extension RandomNumberGenerator {
    /// A uniform index in `0..<bound` (`bound` > 0) without modulo bias: draws below `2^64 mod bound` are redrawn
    /// (the rule of OpenBSD's arc4random_uniform), so every accepted draw `x` gives `x % bound`. A draw is redrawn
    /// with probability below `bound / 2^64`, so for any realistic bound the stream of indices is the one plain
    /// `next() % bound` gives, without its bias.
    public mutating func index(below bound: Int) -> Int {
        precondition(bound > 0, "index(below:) needs a positive bound")
        let range = UInt64(bound)
        let threshold = (0 &- range) % range
        while true {
            let draw = next()
            if draw >= threshold { return Int(draw % range) }
        }
    }
}

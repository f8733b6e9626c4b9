import RetortNumerics

/// Bootstrap resampling as one matrix: `W` is `B × N`, `W_bi` = how often example `i` is drawn in resample `b`
/// (each row sums to `N`). A statistic that is a ratio of sums becomes BLAS products: `W·c ./ W·m` (sgemv), and
/// per-class counts `W·I` for an `N × K` indicator matrix (sgemm). Efron & Tibshirani 1993, percentile intervals.
public struct BootstrapResampler: Sendable {
    /// Resample counts, `B × N`.
    public let counts: Matrix
    /// Confidence level of the intervals (0.95).
    public let confidence: Double

    /// Draws `resamples` seeded resamples of `examples` examples.
    public init(examples: Int, resamples: Int = 1000, confidence: Double = 0.95, seed: UInt64) {
        var generator = SeededGenerator(seed: seed)
        var counts = Matrix(rows: resamples, columns: examples)
        counts.storage.withUnsafeMutableBufferPointer { w in
            for b in 0..<resamples {
                let base = b * examples
                for _ in 0..<examples { w[base + generator.index(below: examples)] += 1 }
            }
        }
        self.counts = counts
        self.confidence = confidence
    }

    /// Number of resamples `B`.
    public var resamples: Int { counts.rows }
    /// Number of examples `N`.
    public var examples: Int { counts.columns }

    /// `W·v` for an `N`-vector (sgemv): the resampled sums.
    public func resampledSums(_ vector: [Float]) throws(NumericsError) -> [Float] {
        precondition(vector.count == examples, "one value per example")
        var result = [Float](repeating: 0, count: resamples)
        try counts.storage.withUnsafeBufferPointer { (w) throws(NumericsError) in
            try vector.withUnsafeBufferPointer { (x) throws(NumericsError) in
                try result.withUnsafeMutableBufferPointer { (y) throws(NumericsError) in
                    try BLAS.gemv(
                        .none, rows: resamples, columns: examples, a: w, lda: examples, x: x,
                        y: y)
                }
            }
        }
        return result
    }

    /// `W·M` for an `N × K` matrix (sgemm): resampled column sums, `B × K`.
    public func resampledSums(_ matrix: Matrix) throws(NumericsError) -> Matrix {
        try Matrix.product(counts, matrix)
    }

    /// The percentile interval of `replicates` at this confidence (linear interpolation between order statistics).
    public func interval(_ replicates: [Float]) -> ClosedRange<Double> {
        let sorted = replicates.filter { $0.isFinite }.sorted()
        guard !sorted.isEmpty else { return Double.nan...Double.nan }
        let tail = (1 - confidence) / 2
        return Quantile.interpolated(sorted, tail)...Quantile.interpolated(sorted, 1 - tail)
    }

}

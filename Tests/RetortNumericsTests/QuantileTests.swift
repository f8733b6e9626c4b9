import RetortNumerics
import RetortTestSupport
import Testing

@Suite struct QuantileTests {
    @Test("interpolated quantiles are NumPy's default (linear between closest ranks), for Double and Float")
    func interpolatedQuantiles() {
        let values: [Double] = [1, 2, 3, 4, 10]
        #expect(Quantile.interpolated(values, 0) == 1)
        #expect(Quantile.interpolated(values, 1) == 10)
        #expect(Quantile.interpolated(values, 0.5) == 3)
        // numpy.quantile([1, 2, 3, 4, 10], 0.9) = 7.6, 0.25 = 2.0, 0.3 = 2.2
        #expect(approximatelyEqual(Quantile.interpolated(values, 0.9), 7.6, within: 1e-12))
        #expect(approximatelyEqual(Quantile.interpolated(values.map(Float.init), 0.3), 2.2, within: 1e-6))
        #expect(Quantile.of([10, 4, 3, 2, 1], 0.25) == 2)
        #expect(Quantile.interpolated([Double](), 0.5).isNaN)
        #expect(Quantile.interpolated([7.0], 0.95) == 7)
    }

    /// Replays fixed draws.
    struct Draws: RandomNumberGenerator {
        var values: [UInt64]
        mutating func next() -> UInt64 { values.removeFirst() }
    }

    @Test("index(below:) redraws the biased low draws and otherwise gives next() % bound")
    func unbiasedIndex() {
        // 2^64 mod 3 = 1: a draw of 0 would favour index 0, so it is redrawn; 1 gives 1 % 3.
        var draws = Draws(values: [0, 1])
        #expect(draws.index(below: 3) == 1)
        #expect(draws.values.isEmpty)
        // A power of two has no bias: nothing is redrawn.
        var even = Draws(values: [0, 5])
        #expect(even.index(below: 4) == 0)
        var generator = SeededGenerator(seed: 11)
        var copy = generator
        for bound in [1, 2, 3, 7, 1000, 12345] {
            let index = generator.index(below: bound)
            #expect(index == Int(copy.next() % UInt64(bound)) && (0..<bound).contains(index))
        }
    }
}

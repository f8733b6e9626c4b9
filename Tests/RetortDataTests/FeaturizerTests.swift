import Foundation
import RetortData
import RetortNumerics
import RetortTestSupport
import Testing

/// Featurizers: fitted on train rows, deterministic, and shipped with the model.
@Suite struct FeaturizerTests {
    static let texts = [
        "turn off the kitchen lights", "Turn OFF the kitchen lights!", "where is my order #4411",
        "ça coûte combien ?", "", "refund refund refund please",
    ]

    /// Columns and values of row `index` of `matrix`.
    static func row(_ matrix: SparseMatrix, _ index: Int) -> (columns: [Int32], values: [Float]) {
        let range = matrix.rowOffsets[index]..<matrix.rowOffsets[index + 1]
        return (Array(matrix.columnIndices[range]), Array(matrix.values[range]))
    }

    @Test("hashing is deterministic: two featurizers give the same columns and values for the same text")
    func hashingIsDeterministic() {
        let first = HashedTextFeaturizer(bucketsLog2: 12).features(for: Self.texts)
        let second = HashedTextFeaturizer(bucketsLog2: 12).features(for: Self.texts.reversed())
        let count = Self.texts.count
        for index in 0..<count {
            let a = Self.row(first, index)
            let b = Self.row(second, count - 1 - index)
            #expect(a.columns == b.columns, "text \(Self.texts[index])")
            #expect(a.values == b.values)
        }
        #expect(Self.row(first, 0).columns == Self.row(first, 1).columns, "case and punctuation do not matter")
        #expect(first.rows == count)
        #expect(first.columns == 4096)
    }

    @Test("hashing does not depend on the process: a known text maps to checked-in buckets")
    func goldenBuckets() {
        let wordsOnly = HashedTextFeaturizer(bucketsLog2: 10, maxWordNgram: 1, minCharNgram: 0)
        var buckets: [UInt32] = []
        wordsOnly.appendBuckets(of: "Hello world", to: &buckets)
        #expect(buckets.count == 2)
        var again: [UInt32] = []
        wordsOnly.appendBuckets(of: "hello WORLD", to: &again)
        #expect(again == buckets, "case must not matter")
        #expect(buckets == Self.goldenHelloWorld)
    }

    /// Buckets of the words "hello" and "world" at 2^10 buckets, as produced when the format was fixed.
    static let goldenHelloWorld: [UInt32] = [812, 234]

    @Test("each text's feature row has unit L2 norm; an empty text has no features")
    func rowsAreNormalised() {
        let matrix = HashedTextFeaturizer(bucketsLog2: 14).features(for: Self.texts)
        for index in Self.texts.indices {
            let (columns, values) = Self.row(matrix, index)
            if Self.texts[index].isEmpty {
                #expect(values.isEmpty)
                continue
            }
            let norm = values.reduce(0) { $0 + $1 * $1 }.squareRoot()
            #expect(approximatelyEqual(norm, 1), "text \(Self.texts[index])")
            #expect(columns == columns.sorted() && Set(columns).count == columns.count, "columns sorted and distinct")
        }
        let repeated = Self.row(matrix, 5)
        #expect(Set(repeated.values).count > 1, "a repeated word weighs more than a single one")
    }

    @Test("more buckets widen the column range; fewer buckets fold the same n-grams")
    func bucketCountChangesColumnRange() {
        let small = HashedTextFeaturizer(bucketsLog2: 8).features(for: Self.texts)
        let large = HashedTextFeaturizer(bucketsLog2: 16).features(for: Self.texts)
        #expect(small.columns == 256)
        #expect(large.columns == 65_536)
        #expect(small.columnIndices.allSatisfy { (0..<256).contains($0) })
        #expect(large.columnIndices.allSatisfy { (0..<65_536).contains($0) })
        #expect(large.columnIndices.contains { $0 >= 256 })
        for index in Self.texts.indices {
            let folded = Set(Self.row(large, index).columns.map { $0 & 255 })
            #expect(folded == Set(Self.row(small, index).columns), "text \(Self.texts[index])")
        }
        #expect(Featurizer.text(HashedTextFeaturizer(bucketsLog2: 8)).outputDimension == 256)
    }

    @Test("standardizing gives zero mean and unit variance on the train rows")
    func standardizerOnTrain() throws {
        let rows = SyntheticTasks.numericRows(count: 200, dimension: 5, seed: 42)
        let inputs = rows.compactMap { row -> ExampleInput? in
            (row["input"] as? [Double]).map { .numeric($0.map { Float($0) }) }
        }
        #expect(inputs.count == 200)
        let standardizer = NumericStandardizer(fitting: inputs)
        let features = standardizer.features(for: inputs)
        #expect(features.rows == 200)
        #expect(features.columns == 5)
        for column in 0..<5 {
            let values = (0..<200).map { Double(features[$0, column]) }
            let mean = values.reduce(0, +) / 200
            let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / 200
            #expect(abs(mean) < 1e-4, "column \(column) mean \(mean)")
            #expect(approximatelyEqual(variance, 1, within: 1e-3), "column \(column) variance \(variance)")
        }
        #expect(Featurizer.numeric(standardizer).stateBytes == 5 * 2 * 4)
    }

    @Test("a constant feature gets deviation 1 instead of dividing by zero; new rows use train statistics")
    func standardizerConstantFeature() {
        let inputs: [ExampleInput] = [.numeric([1, 7]), .numeric([3, 7]), .numeric([5, 7])]
        let standardizer = NumericStandardizer(fitting: inputs)
        #expect(standardizer.mean == [3, 7])
        #expect(standardizer.standardDeviation[1] == 1)
        let expectedDeviation = Float((8.0 / 3.0).squareRoot())
        #expect(approximatelyEqual(standardizer.standardDeviation[0], expectedDeviation))
        let features = standardizer.features(for: [.numeric([3 + expectedDeviation, 9])])
        #expect(approximatelyEqual(features[0, 0], 1))
        #expect(approximatelyEqual(features[0, 1], 2))
    }
}

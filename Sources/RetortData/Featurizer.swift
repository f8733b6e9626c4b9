import Foundation
import RetortNumerics

/// Turns raw inputs into model features; its state is fitted on train rows only and travels with the model.
public enum Featurizer: Sendable, Equatable, Codable {
    /// Numeric inputs standardized with train means and standard deviations.
    case numeric(NumericStandardizer)
    /// Texts hashed into sparse n-gram features.
    case text(HashedTextFeaturizer)

    /// Features for `inputs` (each of the featurizer's kind).
    public func features(for inputs: [ExampleInput]) -> FeatureMatrix {
        switch self {
        case .numeric(let standardizer): .dense(standardizer.features(for: inputs))
        case .text(let hashed):
            .sparse(hashed.features(for: inputs.map { if case .text(let t) = $0 { t } else { "" } }))
        }
    }

    /// Feature dimension.
    public var outputDimension: Int {
        switch self {
        case .numeric(let standardizer): standardizer.mean.count
        case .text(let hashed): hashed.bucketCount
        }
    }

    /// Bytes of featurizer state that ship with the model (train means and deviations; hashing has none).
    public var stateBytes: Int {
        switch self {
        case .numeric(let standardizer): standardizer.mean.count * 2 * 4
        case .text: 0
        }
    }
}

/// Standardizes numeric inputs: `x'_j = (x_j − mean_j) / std_j`, statistics from the train split.
public struct NumericStandardizer: Sendable, Equatable, Codable {
    /// Train mean per feature.
    public var mean: [Float]
    /// Train standard deviation per feature (1 where a feature is constant).
    public var standardDeviation: [Float]

    /// A standardizer with given statistics.
    public init(mean: [Float], standardDeviation: [Float]) {
        self.mean = mean
        self.standardDeviation = standardDeviation
    }

    /// Fits mean and standard deviation on `inputs` (numeric rows of one length).
    public init(fitting inputs: [ExampleInput]) {
        let rows = inputs.compactMap { if case .numeric(let v) = $0 { v } else { nil } }
        let dimension = rows.first?.count ?? 0
        var mean = [Double](repeating: 0, count: dimension)
        for row in rows { for j in 0..<dimension { mean[j] += Double(row[j]) } }
        let n = Double(max(rows.count, 1))
        for j in 0..<dimension { mean[j] /= n }
        var variance = [Double](repeating: 0, count: dimension)
        for row in rows {
            for j in 0..<dimension {
                let d = Double(row[j]) - mean[j]
                variance[j] += d * d
            }
        }
        self.mean = mean.map { Float($0) }
        self.standardDeviation = variance.map { v in
            let deviation = (v / n).squareRoot()
            return deviation > 1e-8 ? Float(deviation) : 1
        }
    }

    /// The standardized `rows × dimension` matrix.
    public func features(for inputs: [ExampleInput]) -> Matrix {
        let dimension = mean.count
        var result = Matrix(rows: inputs.count, columns: dimension)
        result.storage.withUnsafeMutableBufferPointer { out in
            for (i, input) in inputs.enumerated() {
                guard case .numeric(let values) = input else { continue }
                for j in 0..<min(dimension, values.count) {
                    out[i * dimension + j] = (values[j] - mean[j]) / standardDeviation[j]
                }
            }
        }
        return result
    }
}

/// Hashed bag of n-grams: word unigrams and bigrams plus character n-grams of each word (with `<` `>` boundary
/// marks, as fastText does), hashed into `2^bucketsLog2` buckets; counts are L2-normalised per text, or divided by
/// the text's n-gram count (`mean`: a layer on top then averages its rows, fastText's bag).
///
/// Hashing is FNV-1a over Unicode scalars with a 64-bit finalizer, so a text maps to the same buckets on every
/// machine and run (Swift's `Hasher` is seeded per process and must not be used here).
public struct HashedTextFeaturizer: Sendable, Equatable, Codable {
    /// log2 of the number of buckets.
    public var bucketsLog2: Int
    /// Largest word n-gram (1 = unigrams only, 2 = with bigrams).
    public var maxWordNgram: Int
    /// Smallest character n-gram (0 disables character n-grams).
    public var minCharNgram: Int
    /// Largest character n-gram.
    public var maxCharNgram: Int
    /// How a text's counts are scaled.
    public var normalization: Normalization = .l2

    /// How a text's n-gram counts are scaled.
    public enum Normalization: String, Sendable, Codable, CaseIterable {
        /// Counts over their Euclidean norm (unit-length rows).
        case l2
        /// Counts over their sum (rows summing to 1: an average of the n-grams' embedding rows).
        case mean
    }

    /// A featurizer with `2^bucketsLog2` buckets, word 1–2-grams and character 3–5-grams by default.
    public init(
        bucketsLog2: Int, maxWordNgram: Int = 2, minCharNgram: Int = 3, maxCharNgram: Int = 5,
        normalization: Normalization = .l2
    ) {
        self.bucketsLog2 = bucketsLog2
        self.maxWordNgram = maxWordNgram
        self.minCharNgram = minCharNgram
        self.maxCharNgram = maxCharNgram
        self.normalization = normalization
    }

    enum CodingKeys: String, CodingKey {
        case bucketsLog2, maxWordNgram, minCharNgram, maxCharNgram, normalization
    }

    /// Decodes; a featurizer saved before `normalization` existed is `l2`.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        bucketsLog2 = try container.decode(Int.self, forKey: .bucketsLog2)
        maxWordNgram = try container.decode(Int.self, forKey: .maxWordNgram)
        minCharNgram = try container.decode(Int.self, forKey: .minCharNgram)
        maxCharNgram = try container.decode(Int.self, forKey: .maxCharNgram)
        normalization = try container.decodeIfPresent(Normalization.self, forKey: .normalization) ?? .l2
    }

    /// Number of buckets.
    public var bucketCount: Int { 1 << bucketsLog2 }

    /// Sparse features of `texts`, one CSR row per text.
    public func features(for texts: [String]) -> SparseMatrix {
        var offsets = [0]
        offsets.reserveCapacity(texts.count + 1)
        var columns: [Int32] = []
        var values: [Float] = []
        var scratch: [UInt32] = []
        for text in texts {
            scratch.removeAll(keepingCapacity: true)
            appendBuckets(of: text, to: &scratch)
            scratch.sort()
            let start = values.count
            var index = 0
            while index < scratch.count {
                let bucket = scratch[index]
                var count = 0
                while index < scratch.count && scratch[index] == bucket {
                    count += 1
                    index += 1
                }
                columns.append(Int32(bitPattern: bucket))
                values.append(Float(count))
            }
            var norm: Float = 0
            for k in start..<values.count { norm += normalization == .mean ? values[k] : values[k] * values[k] }
            if norm > 0 {
                let inverse = normalization == .mean ? 1 / norm : 1 / norm.squareRoot()
                for k in start..<values.count { values[k] *= inverse }
            }
            offsets.append(values.count)
        }
        return SparseMatrix(
            rows: texts.count, columns: bucketCount, rowOffsets: offsets, columnIndices: columns, values: values)
    }

    /// The bucket of every n-gram of `text` (with repeats), appended to `buckets`.
    public func appendBuckets(of text: String, to buckets: inout [UInt32]) {
        let mask = UInt64(bucketCount - 1)
        var words: [[UInt32]] = []
        var current: [UInt32] = []
        for scalar in text.unicodeScalars {
            if scalar.properties.isAlphabetic || scalar.properties.numericType != nil {
                for lowered in scalar.properties.lowercaseMapping.unicodeScalars { current.append(lowered.value) }
            } else if !current.isEmpty {
                words.append(current)
                current.removeAll(keepingCapacity: true)
            }
        }
        if !current.isEmpty { words.append(current) }
        var wordHashes: [UInt64] = []
        wordHashes.reserveCapacity(words.count)
        for word in words {
            let hash = Self.fnv(word[...], tag: 0x77)
            wordHashes.append(hash)
            buckets.append(UInt32(Self.finalize(hash) & mask))
            if minCharNgram > 0 && maxCharNgram >= minCharNgram {
                let marked = [UInt32(0x3C)] + word + [UInt32(0x3E)]
                for n in minCharNgram...maxCharNgram where n <= marked.count {
                    for start in 0...(marked.count - n) {
                        buckets.append(UInt32(Self.finalize(Self.fnv(marked[start..<(start + n)], tag: 0x63)) & mask))
                    }
                }
            }
        }
        if maxWordNgram >= 2 && wordHashes.count >= 2 {
            for i in 1..<wordHashes.count {
                let combined = (wordHashes[i - 1] &* 0x100_0000_01B3) ^ (wordHashes[i] &+ 0x62)
                buckets.append(UInt32(Self.finalize(combined) & mask))
            }
        }
    }

    static func fnv(_ scalars: ArraySlice<UInt32>, tag: UInt64) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325 ^ tag
        for scalar in scalars {
            hash ^= UInt64(scalar)
            hash = hash &* 0x100_0000_01B3
        }
        return hash
    }

    static func finalize(_ value: UInt64) -> UInt64 {
        var h = value
        h ^= h >> 33
        h = h &* 0xFF51_AFD7_ED55_8CCD
        h ^= h >> 33
        h = h &* 0xC4CE_B9FE_1A85_EC53
        h ^= h >> 33
        return h
    }
}

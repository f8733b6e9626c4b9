import RetortData
import RetortNumerics

/// The `nearest` student of structured tasks (DESIGN.md): it answers an input with the teacher's answer on the most
/// similar train input, by cosine similarity of L2-normalised hashed word and character n-grams. No training beyond
/// indexing; it is the floor any structured student must beat.
///
/// Train rows whose teacher answer is invalid are never used. Ties go to the earlier train row; an input that shares
/// no n-gram with any train input gets the first train row's answer (similarity 0 everywhere). Prediction costs
/// O(Σ postings of the input's buckets) multiply-adds plus one pass over the train rows for the arg-max.
public struct NearestAnswer: Sendable {
    /// The features both sides are compared in (normalisation is forced to L2, so a dot product is a cosine).
    public let featurizer: HashedTextFeaturizer
    /// The answers of the indexed train rows, in train order.
    public let answers: [StructuredAnswer]
    /// Inverted index, CSR by bucket: the rows having bucket `b` are `rows[offsets[b]..<offsets[b + 1]]`, with their
    /// feature values in `values`.
    let offsets: [Int]
    let rows: [Int32]
    let values: [Float]

    /// Indexes the train inputs `texts` whose teacher answer in `answers` is valid (non-nil).
    ///
    /// - Throws: when no train row has a valid answer, or the two arrays differ in length.
    public init(texts: [String], answers: [StructuredAnswer?], featurizer: HashedTextFeaturizer) throws(StudentError) {
        guard texts.count == answers.count else {
            throw StudentError("nearest: \(texts.count) train inputs but \(answers.count) answers; give one per input")
        }
        let kept = answers.indices.filter { answers[$0] != nil }
        guard !kept.isEmpty, kept.count <= Int(Int32.max) else {
            throw StudentError(
                "nearest: no train row has a valid teacher answer to retrieve; check the teacher's answers")
        }
        var featurizer = featurizer
        featurizer.normalization = .l2
        self.featurizer = featurizer
        self.answers = kept.compactMap { answers[$0] }
        let matrix = featurizer.features(for: kept.map { texts[$0] })
        // Transpose the train rows' CSR into a bucket-major index (a counting sort on the column indices).
        var counts = [Int](repeating: 0, count: featurizer.bucketCount + 1)
        for column in matrix.columnIndices { counts[Int(column) + 1] += 1 }
        for bucket in 0..<featurizer.bucketCount { counts[bucket + 1] += counts[bucket] }
        var next = counts
        var rows = [Int32](repeating: 0, count: matrix.nonzeroCount)
        var values = [Float](repeating: 0, count: matrix.nonzeroCount)
        for row in 0..<matrix.rows {
            for entry in matrix.rowOffsets[row]..<matrix.rowOffsets[row + 1] {
                let bucket = Int(matrix.columnIndices[entry])
                rows[next[bucket]] = Int32(row)
                values[next[bucket]] = matrix.values[entry]
                next[bucket] += 1
            }
        }
        offsets = counts
        self.rows = rows
        self.values = values
    }

    /// An index from its parts, as an export stores them (``load(from:)`` checks them first).
    init(
        featurizer: HashedTextFeaturizer, answers: [StructuredAnswer], offsets: [Int], rows: [Int32], values: [Float]
    ) {
        self.featurizer = featurizer
        self.answers = answers
        self.offsets = offsets
        self.rows = rows
        self.values = values
    }

    /// The index of the most similar train row for each of `texts` (into ``answers``) and its cosine similarity.
    public func nearest(_ texts: [String]) -> [(row: Int, similarity: Float)] {
        let queries = featurizer.features(for: texts)
        var scores = [Float](repeating: 0, count: answers.count)
        var result: [(row: Int, similarity: Float)] = []
        result.reserveCapacity(texts.count)
        for query in 0..<queries.rows {
            for index in scores.indices { scores[index] = 0 }
            for entry in queries.rowOffsets[query]..<queries.rowOffsets[query + 1] {
                let bucket = Int(queries.columnIndices[entry])
                let weight = queries.values[entry]
                for posting in offsets[bucket]..<offsets[bucket + 1] {
                    scores[Int(rows[posting])] += weight * values[posting]
                }
            }
            var best = 0
            for index in scores.indices where scores[index] > scores[best] { best = index }
            result.append((best, scores[best]))
        }
        return result
    }

    /// The retrieved answer for each of `texts`.
    public func answers(for texts: [String]) -> [StructuredAnswer] { nearest(texts).map { answers[$0.row] } }

    /// Bytes a stored copy needs: the index (4-byte row, 4-byte value per posting, 8-byte offset per bucket) and the
    /// answers as canonical JSON.
    public var sizeBytes: Int {
        offsets.count * 8 + rows.count * 8 + answers.reduce(0) { $0 + $1.canonicalJSON.utf8.count }
    }
}

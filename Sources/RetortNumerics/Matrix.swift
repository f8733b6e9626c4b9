/// A dense row-major matrix of `Float`.
///
/// Element `(i, j)` lives at `storage[i * columns + j]`. Value semantics: copies are cheap until written.
public struct Matrix: Sendable, Equatable, Codable {
    /// Number of rows.
    public let rows: Int
    /// Number of columns.
    public let columns: Int
    /// Row-major elements, `rows × columns` of them.
    public var storage: [Float]

    /// A `rows × columns` matrix filled with `value`.
    public init(rows: Int, columns: Int, repeating value: Float = 0) {
        precondition(rows >= 0 && columns >= 0, "matrix dimensions must be non-negative")
        self.rows = rows
        self.columns = columns
        self.storage = [Float](repeating: value, count: rows * columns)
    }

    /// A `rows × columns` matrix whose elements are left unset, for outputs a kernel overwrites completely (sgemm with
    /// `beta = 0`).
    init(uninitializedRows rows: Int, columns: Int) {
        precondition(rows >= 0 && columns >= 0, "matrix dimensions must be non-negative")
        self.rows = rows
        self.columns = columns
        self.storage = [Float](unsafeUninitializedCapacity: rows * columns) { _, count in count = rows * columns }
    }

    /// A matrix over existing row-major storage; `storage.count` must equal `rows × columns`.
    public init(rows: Int, columns: Int, storage: [Float]) {
        precondition(
            storage.count == rows * columns, "storage has \(storage.count) elements, expected \(rows * columns)")
        self.rows = rows
        self.columns = columns
        self.storage = storage
    }

    /// Element `(row, column)`.
    @inlinable
    public subscript(row: Int, column: Int) -> Float {
        get { storage[row * columns + column] }
        set { storage[row * columns + column] = newValue }
    }

    /// The rows at `indices`, in that order, as a new matrix.
    @inlinable
    public func gatheringRows(_ indices: some Collection<Int>) -> Matrix {
        var result = Matrix(rows: indices.count, columns: columns)
        guard columns > 0 else { return result }
        let columns = columns
        result.storage.withUnsafeMutableBufferPointer { out in
            storage.withUnsafeBufferPointer { source in
                guard let outBase = out.baseAddress, let sourceBase = source.baseAddress else { return }
                var target = 0
                for index in indices {
                    precondition(index >= 0 && index < rows, "row index out of range")
                    (outBase + target).update(from: sourceBase + index * columns, count: columns)
                    target += columns
                }
            }
        }
        return result
    }

    /// A `rows × columns` matrix of independent uniform draws from `[low, high)`, two 24-bit draws per 64 random
    /// bits, written straight into fresh storage (no zero fill first: a 2^21-row embedding is 256 MB).
    public init(rows: Int, columns: Int, uniformFrom low: Float, to high: Float, generator: inout SeededGenerator) {
        self.init(uninitializedRows: rows, columns: columns)
        let scale = (high - low) / Float(1 << 24)
        storage.withUnsafeMutableBufferPointer { values in
            var index = 0
            let count = values.count
            while index < count {
                let bits = generator.next()
                values[index] = low + Float(bits >> 40) * scale
                if index + 1 < count { values[index + 1] = low + Float((bits >> 8) & 0xFF_FFFF) * scale }
                index += 2
            }
        }
    }

    /// Row `index` as an array.
    public func row(_ index: Int) -> [Float] {
        Array(storage[(index * columns)..<((index + 1) * columns)])
    }

    /// The index of the largest element of each row (first one on ties).
    public func argmaxPerRow() -> [Int] {
        var result = [Int](repeating: 0, count: rows)
        storage.withUnsafeBufferPointer { values in
            for i in 0..<rows {
                var best = 0
                var bestValue = -Float.infinity
                let base = i * columns
                for j in 0..<columns where values[base + j] > bestValue {
                    bestValue = values[base + j]
                    best = j
                }
                result[i] = best
            }
        }
        return result
    }
}

/// A sparse matrix in compressed sparse row (CSR) form.
///
/// Row `i` holds the entries `columnIndices[k], values[k]` for `k` in `rowOffsets[i] ..< rowOffsets[i + 1]`,
/// column indices strictly increasing within a row.
public struct SparseMatrix: Sendable, Equatable {
    /// Number of rows.
    public let rows: Int
    /// Number of columns.
    public let columns: Int
    /// `rows + 1` offsets into `columnIndices` and `values`.
    public var rowOffsets: [Int]
    /// Column of each stored entry.
    public var columnIndices: [Int32]
    /// Value of each stored entry.
    public var values: [Float]

    /// A CSR matrix from its three arrays; checks their shapes.
    public init(rows: Int, columns: Int, rowOffsets: [Int], columnIndices: [Int32], values: [Float]) {
        precondition(rowOffsets.count == rows + 1, "rowOffsets must have rows + 1 entries")
        precondition(columnIndices.count == values.count, "one column index per value")
        precondition(rowOffsets.last == values.count, "the last offset must equal the number of values")
        self.rows = rows
        self.columns = columns
        self.rowOffsets = rowOffsets
        self.columnIndices = columnIndices
        self.values = values
    }

    /// Number of stored entries.
    public var nonzeroCount: Int { values.count }

    /// The rows at `indices`, in that order, as a new CSR matrix.
    @inlinable
    public func gatheringRows(_ indices: some Collection<Int>) -> SparseMatrix {
        var offsets = [0]
        offsets.reserveCapacity(indices.count + 1)
        var newColumns: [Int32] = []
        var newValues: [Float] = []
        for index in indices {
            let range = rowOffsets[index]..<rowOffsets[index + 1]
            newColumns.append(contentsOf: columnIndices[range])
            newValues.append(contentsOf: values[range])
            offsets.append(newValues.count)
        }
        return SparseMatrix(
            rows: indices.count, columns: columns, rowOffsets: offsets, columnIndices: newColumns, values: newValues)
    }

    /// The dense form (for tests and small matrices).
    public func densified() -> Matrix {
        var result = Matrix(rows: rows, columns: columns)
        for i in 0..<rows {
            for k in rowOffsets[i]..<rowOffsets[i + 1] {
                result[i, Int(columnIndices[k])] += values[k]
            }
        }
        return result
    }
}

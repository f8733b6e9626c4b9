/// Model input: dense rows (numeric tasks) or sparse CSR rows (hashed text features).
public enum FeatureMatrix: Sendable, Equatable {
    /// Dense row-major features.
    case dense(Matrix)
    /// Sparse CSR features.
    case sparse(SparseMatrix)

    /// Number of examples.
    public var rows: Int {
        switch self {
        case .dense(let matrix): matrix.rows
        case .sparse(let matrix): matrix.rows
        }
    }

    /// Input dimension.
    public var columns: Int {
        switch self {
        case .dense(let matrix): matrix.columns
        case .sparse(let matrix): matrix.columns
        }
    }

    /// The rows at `indices`, in that order.
    @inlinable
    public func gatheringRows(_ indices: some Collection<Int>) -> FeatureMatrix {
        switch self {
        case .dense(let matrix): .dense(matrix.gatheringRows(indices))
        case .sparse(let matrix): .sparse(matrix.gatheringRows(indices))
        }
    }

    /// Mean number of stored entries per row (the dimension for dense input).
    public var meanNonzerosPerRow: Double {
        switch self {
        case .dense(let matrix): Double(matrix.columns)
        case .sparse(let matrix): matrix.rows == 0 ? 0 : Double(matrix.nonzeroCount) / Double(matrix.rows)
        }
    }
}

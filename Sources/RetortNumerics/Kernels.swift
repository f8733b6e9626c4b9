import Foundation

/// Elementwise and row-wise kernels used by training and prediction.
public enum Kernels {
    /// `log Σ_j exp(values_j)`, computed stably.
    public static func logSumExp(_ values: some Collection<Float>) -> Float {
        Array(values).withUnsafeBufferPointer { logSumExp($0) }
    }

    /// `matrix_ij += bias_j` for every row (a rank-1 update `1·biasᵀ` through sger).
    public static func addRowVector(_ bias: [Float], to matrix: inout Matrix) throws(NumericsError) {
        precondition(bias.count == matrix.columns, "bias length must equal the number of columns")
        let ones = [Float](repeating: 1, count: matrix.rows)
        let (rows, columns) = (matrix.rows, matrix.columns)
        try matrix.storage.withUnsafeMutableBufferPointer { (a) throws(NumericsError) in
            try ones.withUnsafeBufferPointer { (x) throws(NumericsError) in
                try bias.withUnsafeBufferPointer { (y) throws(NumericsError) in
                    try BLAS.ger(
                        rows: rows, columns: columns, x: x, y: y, a: a,
                        lda: columns)
                }
            }
        }
    }

    /// `Σ_i matrix_ij` for each column `j` (sgemv with a ones vector).
    public static func columnSums(_ matrix: Matrix) throws(NumericsError) -> [Float] {
        var result = [Float](repeating: 0, count: matrix.columns)
        guard matrix.rows > 0 else { return result }
        let ones = [Float](repeating: 1, count: matrix.rows)
        try matrix.storage.withUnsafeBufferPointer { (a) throws(NumericsError) in
            try ones.withUnsafeBufferPointer { (x) throws(NumericsError) in
                try result.withUnsafeMutableBufferPointer { (y) throws(NumericsError) in
                    try BLAS.gemv(
                        .transposed, rows: matrix.rows, columns: matrix.columns, a: a, lda: matrix.columns,
                        x: x, y: y)
                }
            }
        }
        return result
    }
}

internal import CBLAS

/// LAPACK routines through LAPACKE; `info != 0` becomes a thrown ``NumericsError`` in ``check(_:_:)``.
public enum LAPACK {
    /// Eigen-decomposition of a symmetric `n × n` matrix (ssyevd): eigenvalues ascending, eigenvectors as columns.
    /// - Complexity: O(n³).
    public static func symmetricEigen(_ matrix: Matrix) throws(NumericsError) -> (values: [Float], vectors: Matrix) {
        guard matrix.rows == matrix.columns else {
            throw NumericsError(
                .shapeMismatch, "symmetricEigen needs a square matrix, got \(matrix.rows)×\(matrix.columns)")
        }
        let n = try blasInt(matrix.rows)
        var vectors = matrix
        var values = [Float](repeating: 0, count: matrix.rows)
        let info = vectors.storage.withUnsafeMutableBufferPointer { a in
            values.withUnsafeMutableBufferPointer { w in
                LAPACKE_ssyevd(
                    LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "V")), CChar(UInt8(ascii: "U")), n, a.baseAddress, n,
                    w.baseAddress)
            }
        }
        try check(info, "ssyevd")
        return (values, vectors)
    }

    static func check(_ info: Int32, _ routine: String) throws(NumericsError) {
        guard info == 0 else {
            let detail = info < 0 ? "argument \(-info) was illegal" : "did not converge (info \(info))"
            throw NumericsError(.lapackFailure, "LAPACK \(routine) failed: \(detail)")
        }
    }
}

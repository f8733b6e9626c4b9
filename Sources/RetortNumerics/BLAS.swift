internal import CBLAS

/// Whether an operand is used as stored or transposed.
public enum Transpose: Sendable {
    /// Use the matrix as stored.
    case none
    /// Use the transpose.
    case transposed

    var cblas: CBLAS_TRANSPOSE { self == .none ? CblasNoTrans : CblasTrans }
}

/// Converts a dimension to BLAS's 32-bit integer, throwing when it does not fit.
@usableFromInline
func blasInt(_ value: Int, _ what: StaticString = "dimension") throws(NumericsError) -> Int32 {
    guard let converted = Int32(exactly: value) else {
        throw NumericsError(.dimensionTooLarge, "\(what) \(value) exceeds the 32-bit range BLAS accepts; split the data")
    }
    return converted
}

/// Thin, typed wrappers over CBLAS (row-major). The only place that calls `cblas_*`.
public enum BLAS {
    /// `C ← alpha · op(A) · op(B) + beta · C` (sgemm), all row-major.
    ///
    /// `op(A)` is `m × k`, `op(B)` is `k × n`, `C` is `m × n`; `lda`, `ldb`, `ldc` are the stored row lengths.
    /// - Complexity: `2·m·n·k` FLOPs.
    public static func gemm(
        _ transposeA: Transpose, _ transposeB: Transpose, m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int, beta: Float = 0,
        c: UnsafeMutablePointer<Float>, ldc: Int
    ) throws(NumericsError) {
        let (m32, n32, k32) = (try blasInt(m), try blasInt(n), try blasInt(k))
        let (lda32, ldb32, ldc32) = (try blasInt(lda), try blasInt(ldb), try blasInt(ldc))
        guard m > 0, n > 0 else { return }
        cblas_sgemm(
            CblasRowMajor, transposeA.cblas, transposeB.cblas, m32, n32, k32, alpha, a, lda32, b, ldb32, beta, c,
            ldc32)
    }

    /// `y ← alpha · op(A) · x + beta · y` (sgemv), `A` stored row-major as `rows × columns`.
    public static func gemv(
        _ transpose: Transpose, rows: Int, columns: Int, alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
        x: UnsafePointer<Float>, beta: Float = 0, y: UnsafeMutablePointer<Float>
    ) throws(NumericsError) {
        let (rows32, columns32, lda32) = (try blasInt(rows), try blasInt(columns), try blasInt(lda))
        guard rows > 0, columns > 0 else { return }
        cblas_sgemv(CblasRowMajor, transpose.cblas, rows32, columns32, alpha, a, lda32, x, 1, beta, y, 1)
    }

    /// `A ← alpha · x · yᵀ + A` (sger), `A` stored row-major as `rows × columns`.
    public static func ger(
        rows: Int, columns: Int, alpha: Float = 1, x: UnsafePointer<Float>, y: UnsafePointer<Float>,
        a: UnsafeMutablePointer<Float>, lda: Int
    ) throws(NumericsError) {
        let (rows32, columns32, lda32) = (try blasInt(rows), try blasInt(columns), try blasInt(lda))
        guard rows > 0, columns > 0 else { return }
        cblas_sger(CblasRowMajor, rows32, columns32, alpha, x, 1, y, 1, a, lda32)
    }

    /// `y ← alpha · x + y` (saxpy) over `count` elements.
    public static func axpy(
        count: Int, alpha: Float, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>
    ) throws(NumericsError) {
        let count32 = try blasInt(count)
        cblas_saxpy(count32, alpha, x, 1, y, 1)
    }

    /// `x ← alpha · x` (sscal) over `count` elements.
    public static func scale(count: Int, alpha: Float, x: UnsafeMutablePointer<Float>) throws(NumericsError) {
        let count32 = try blasInt(count)
        cblas_sscal(count32, alpha, x, 1)
    }

    /// `xᵀ·y` (sdot) over `count` elements.
    public static func dot(count: Int, x: UnsafePointer<Float>, y: UnsafePointer<Float>) throws(NumericsError) -> Float
    {
        let count32 = try blasInt(count)
        return cblas_sdot(count32, x, 1, y, 1)
    }
}

/// The BLAS thread policy: the one place that sets how many threads OpenBLAS uses.
public enum BLASThreads {
    /// Threads OpenBLAS uses now.
    public static var current: Int { Int(openblas_get_num_threads()) }

    /// Cores OpenBLAS detected.
    public static var cores: Int { Int(openblas_get_num_procs()) }

    /// Sets the OpenBLAS thread count (clamped to at least 1).
    public static func set(_ count: Int) {
        openblas_set_num_threads(Int32(clamping: max(1, count)))
    }
}

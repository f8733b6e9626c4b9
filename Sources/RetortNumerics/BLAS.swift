internal import CBLAS
import Foundation

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
        throw NumericsError(
            .dimensionTooLarge, "\(what) \(value) exceeds the 32-bit range BLAS accepts; split the data")
    }
    return converted
}

/// Checks that a buffer holds at least `needed` elements before BLAS reads it.
@usableFromInline
func requireCount(_ count: Int, _ needed: Int, _ what: StaticString) throws(NumericsError) {
    guard count >= needed else {
        throw NumericsError(.shapeMismatch, "\(what) holds \(count) elements, the operation needs \(needed)")
    }
}

/// Thin, typed wrappers over CBLAS (row-major). The only place that calls `cblas_*`; every operand is a buffer whose
/// length is checked against the dimensions, so a shape mistake throws instead of reading out of bounds.
public enum BLAS {
    /// `C ← alpha · op(A) · op(B) + beta · C` (sgemm), all row-major.
    ///
    /// `op(A)` is `m × k`, `op(B)` is `k × n`, `C` is `m × n`; `lda`, `ldb`, `ldc` are the stored row lengths.
    /// - Complexity: `2·m·n·k` FLOPs.
    public static func gemm(
        _ transposeA: Transpose, _ transposeB: Transpose, m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafeBufferPointer<Float>, lda: Int, b: UnsafeBufferPointer<Float>, ldb: Int, beta: Float = 0,
        c: UnsafeMutableBufferPointer<Float>, ldc: Int
    ) throws(NumericsError) {
        let (m32, n32, k32) = (try blasInt(m), try blasInt(n), try blasInt(k))
        let (lda32, ldb32, ldc32) = (try blasInt(lda), try blasInt(ldb), try blasInt(ldc))
        guard m > 0, n > 0, k > 0 else { return }
        try requireCount(a.count, ((transposeA == .none ? m : k) - 1) * lda + (transposeA == .none ? k : m), "A")
        try requireCount(b.count, ((transposeB == .none ? k : n) - 1) * ldb + (transposeB == .none ? n : k), "B")
        try requireCount(c.count, (m - 1) * ldc + n, "C")
        guard let pa = a.baseAddress, let pb = b.baseAddress, let pc = c.baseAddress else { return }
        cblas_sgemm(
            CblasRowMajor, transposeA.cblas, transposeB.cblas, m32, n32, k32, alpha, pa, lda32, pb, ldb32, beta, pc,
            ldc32)
    }

    /// `y ← alpha · op(A) · x + beta · y` (sgemv), `A` stored row-major as `rows × columns`.
    public static func gemv(
        _ transpose: Transpose, rows: Int, columns: Int, alpha: Float = 1, a: UnsafeBufferPointer<Float>, lda: Int,
        x: UnsafeBufferPointer<Float>, beta: Float = 0, y: UnsafeMutableBufferPointer<Float>
    ) throws(NumericsError) {
        let (rows32, columns32, lda32) = (try blasInt(rows), try blasInt(columns), try blasInt(lda))
        guard rows > 0, columns > 0 else { return }
        try requireCount(a.count, (rows - 1) * lda + columns, "A")
        try requireCount(x.count, transpose == .none ? columns : rows, "x")
        try requireCount(y.count, transpose == .none ? rows : columns, "y")
        guard let pa = a.baseAddress, let px = x.baseAddress, let py = y.baseAddress else { return }
        cblas_sgemv(CblasRowMajor, transpose.cblas, rows32, columns32, alpha, pa, lda32, px, 1, beta, py, 1)
    }

    /// `A ← alpha · x · yᵀ + A` (sger), `A` stored row-major as `rows × columns`.
    public static func ger(
        rows: Int, columns: Int, alpha: Float = 1, x: UnsafeBufferPointer<Float>, y: UnsafeBufferPointer<Float>,
        a: UnsafeMutableBufferPointer<Float>, lda: Int
    ) throws(NumericsError) {
        let (rows32, columns32, lda32) = (try blasInt(rows), try blasInt(columns), try blasInt(lda))
        guard rows > 0, columns > 0 else { return }
        try requireCount(x.count, rows, "x")
        try requireCount(y.count, columns, "y")
        try requireCount(a.count, (rows - 1) * lda + columns, "A")
        guard let px = x.baseAddress, let py = y.baseAddress, let pa = a.baseAddress else { return }
        cblas_sger(CblasRowMajor, rows32, columns32, alpha, px, 1, py, 1, pa, lda32)
    }

    /// `y ← alpha · x + y` (saxpy) over all elements; `x` and `y` have the same length.
    public static func axpy(alpha: Float, x: UnsafeBufferPointer<Float>, y: UnsafeMutableBufferPointer<Float>)
        throws(NumericsError)
    {
        let count32 = try blasInt(y.count)
        try requireCount(x.count, y.count, "x")
        guard let px = x.baseAddress, let py = y.baseAddress else { return }
        cblas_saxpy(count32, alpha, px, 1, py, 1)
    }

    /// `x ← alpha · x` (sscal) over all elements.
    public static func scale(alpha: Float, x: UnsafeMutableBufferPointer<Float>) throws(NumericsError) {
        let count32 = try blasInt(x.count)
        guard let px = x.baseAddress else { return }
        cblas_sscal(count32, alpha, px, 1)
    }

    /// `xᵀ·y` (sdot); `x` and `y` have the same length.
    public static func dot(x: UnsafeBufferPointer<Float>, y: UnsafeBufferPointer<Float>) throws(NumericsError) -> Float
    {
        let count32 = try blasInt(x.count)
        try requireCount(y.count, x.count, "y")
        guard let px = x.baseAddress, let py = y.baseAddress else { return 0 }
        return cblas_sdot(count32, px, 1, py, 1)
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

/// This machine's speed, measured the way device latencies are scaled.
public enum MachineSpeed {
    /// sgemm FLOP/s on `threads` threads: `size³` products (`2·size³` FLOPs each), repeated for about `seconds`.
    public static func sgemmFlopsPerSecond(size n: Int = 256, threads: Int = 1, seconds: Double = 0.1) -> Double {
        let a = [Float](repeating: 0.5, count: n * n)
        var c = [Float](repeating: 0, count: n * n)
        let previous = BLASThreads.current
        BLASThreads.set(threads)
        defer { BLASThreads.set(previous) }
        var products = 0
        let start = DispatchTime.now().uptimeNanoseconds
        var elapsed: UInt64 = 0
        a.withUnsafeBufferPointer { pa in
            c.withUnsafeMutableBufferPointer { pc in
                repeat {
                    try? BLAS.gemm(.none, .none, m: n, n: n, k: n, a: pa, lda: n, b: pa, ldb: n, c: pc, ldc: n)
                    products += 1
                    elapsed = DispatchTime.now().uptimeNanoseconds - start
                } while Double(elapsed) < seconds * 1e9
            }
        }
        return Double(products) * 2 * Double(n * n * n) / (Double(elapsed) / 1e9)
    }
}

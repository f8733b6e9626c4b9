/// Matrix products: dense through sgemm, sparse by a CSR kernel.
extension Matrix {
    /// `alpha · op(a) · op(b) + beta · c`, written into `c` (sgemm).
    public static func multiply(
        _ a: Matrix, _ b: Matrix, transposeA: Transpose = .none, transposeB: Transpose = .none,
        alpha: Float = 1, beta: Float = 0, into c: inout Matrix
    ) throws(NumericsError) {
        let m = transposeA == .none ? a.rows : a.columns
        let k = transposeA == .none ? a.columns : a.rows
        let kB = transposeB == .none ? b.rows : b.columns
        let n = transposeB == .none ? b.columns : b.rows
        guard k == kB, c.rows == m, c.columns == n else {
            throw NumericsError(
                .shapeMismatch,
                "cannot multiply \(a.rows)×\(a.columns) by \(b.rows)×\(b.columns) into \(c.rows)×\(c.columns)")
        }
        guard m > 0, n > 0 else { return }
        if k == 0 {
            if beta == 0 { c.storage = [Float](repeating: 0, count: m * n) } else { try c.scale(by: beta) }
            return
        }
        try a.storage.withUnsafeBufferPointer { (pa) throws(NumericsError) in
            try b.storage.withUnsafeBufferPointer { (pb) throws(NumericsError) in
                try c.storage.withUnsafeMutableBufferPointer { (pc) throws(NumericsError) in
                    try BLAS.gemm(
                        transposeA, transposeB, m: m, n: n, k: k, alpha: alpha, a: pa, lda: a.columns,
                        b: pb, ldb: b.columns, beta: beta, c: pc, ldc: c.columns)
                }
            }
        }
    }

    /// `op(a) · op(b)` as a new matrix (sgemm).
    public static func product(
        _ a: Matrix, _ b: Matrix, transposeA: Transpose = .none, transposeB: Transpose = .none
    ) throws(NumericsError) -> Matrix {
        let m = transposeA == .none ? a.rows : a.columns
        let n = transposeB == .none ? b.columns : b.rows
        var c = Matrix(uninitializedRows: m, columns: n)
        try multiply(a, b, transposeA: transposeA, transposeB: transposeB, into: &c)
        return c
    }

    /// `self ← alpha · self` (sscal).
    public mutating func scale(by alpha: Float) throws(NumericsError) {
        try storage.withUnsafeMutableBufferPointer { (p) throws(NumericsError) in
            try BLAS.scale(alpha: alpha, x: p)
        }
    }

    /// `self ← self + alpha · other` (saxpy); shapes must match.
    public mutating func add(_ other: Matrix, scaledBy alpha: Float = 1) throws(NumericsError) {
        guard other.rows == rows, other.columns == columns else {
            throw NumericsError(.shapeMismatch, "cannot add \(other.rows)×\(other.columns) to \(rows)×\(columns)")
        }
        try storage.withUnsafeMutableBufferPointer { (y) throws(NumericsError) in
            try other.storage.withUnsafeBufferPointer { (x) throws(NumericsError) in
                try BLAS.axpy(alpha: alpha, x: x, y: y)
            }
        }
    }
}

extension SparseMatrix {
    /// `self · dense` for a dense `columns × n` matrix: a CSR kernel, `out_i += v_ik · dense_{j_k}` per stored entry.
    /// - Complexity: `2 · nnz · n` FLOPs.
    public func multiplied(by dense: Matrix) throws(NumericsError) -> Matrix {
        guard dense.rows == columns else {
            throw NumericsError(
                .shapeMismatch, "cannot multiply sparse \(rows)×\(columns) by \(dense.rows)×\(dense.columns)")
        }
        let n = dense.columns
        var result = Matrix(rows: rows, columns: n)
        result.storage.withUnsafeMutableBufferPointer { out in
            dense.storage.withUnsafeBufferPointer { weights in
                columnIndices.withUnsafeBufferPointer { cols in
                    values.withUnsafeBufferPointer { vals in
                        for i in 0..<rows {
                            let target = i * n
                            for k in rowOffsets[i]..<rowOffsets[i + 1] {
                                let source = Int(cols[k]) * n
                                let v = vals[k]
                                for j in 0..<n { out[target + j] += v * weights[source + j] }
                            }
                        }
                    }
                }
            }
        }
        return result
    }

    /// `selfᵀ · dense` restricted to the columns of `self` that hold an entry: returns those columns (ascending)
    /// and the matching rows of the product. Gradients of a sparse-input layer touch only these rows.
    /// - Complexity: `2 · nnz · n` FLOPs plus a sort of the touched columns.
    public func transposeMultipliedTouched(by dense: Matrix) throws(NumericsError) -> (columns: [Int32], rows: Matrix) {
        guard dense.rows == rows else {
            throw NumericsError(
                .shapeMismatch, "cannot multiply sparse transpose \(columns)×\(rows) by \(dense.rows)×\(dense.columns)")
        }
        // A dense column → slot map (one Int32 per column) instead of a hash map: this runs once per minibatch.
        var slot = [Int32](repeating: -1, count: columns)
        var touched: [Int32] = []
        for column in columnIndices where slot[Int(column)] < 0 {
            slot[Int(column)] = 0
            touched.append(column)
        }
        touched.sort()
        for (position, column) in touched.enumerated() { slot[Int(column)] = Int32(position) }
        let n = dense.columns
        var result = Matrix(rows: touched.count, columns: n)
        result.storage.withUnsafeMutableBufferPointer { out in
            dense.storage.withUnsafeBufferPointer { g in
                columnIndices.withUnsafeBufferPointer { cols in
                    values.withUnsafeBufferPointer { vals in
                        for i in 0..<rows {
                            let source = i * n
                            for k in rowOffsets[i]..<rowOffsets[i + 1] {
                                let target = Int(slot[Int(cols[k])]) * n
                                let v = vals[k]
                                for j in 0..<n { out[target + j] += v * g[source + j] }
                            }
                        }
                    }
                }
            }
        }
        return (touched, result)
    }
}

import Foundation

/// Elementwise and row-wise kernels used by training and prediction.
public enum Kernels {
    /// Row-wise softmax of `logits / temperature`, in place: `q_ij = exp(z_ij/T − m_i) / Σ_j exp(z_ij/T − m_i)`
    /// with `m_i = max_j z_ij/T` (the log-sum-exp shift, so no overflow).
    public static func softmaxRows(_ matrix: inout Matrix, temperature: Float = 1) {
        let columns = matrix.columns
        let inverse = 1 / temperature
        matrix.storage.withUnsafeMutableBufferPointer { values in
            for i in 0..<matrix.rows {
                let base = i * columns
                var maximum = -Float.infinity
                for j in 0..<columns { maximum = max(maximum, values[base + j] * inverse) }
                var total: Float = 0
                for j in 0..<columns {
                    let e = expf(values[base + j] * inverse - maximum)
                    values[base + j] = e
                    total += e
                }
                let scale = 1 / total
                for j in 0..<columns { values[base + j] *= scale }
            }
        }
    }

    /// `log Σ_j exp(values_j)`, computed stably.
    public static func logSumExp(_ values: some Collection<Float>) -> Float {
        guard let maximum = values.max(), maximum.isFinite else { return values.max() ?? -Float.infinity }
        var total: Float = 0
        for value in values { total += expf(value - maximum) }
        return maximum + logf(total)
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

    /// `max(0, x)` in place, eight lanes at a time (a data-dependent branch would mispredict on half the entries,
    /// and the scalar select does not vectorize).
    public static func relu(_ matrix: inout Matrix) {
        matrix.storage.withUnsafeMutableBufferPointer { values in
            let count = values.count
            guard let base = values.baseAddress else { return }
            let raw = UnsafeMutableRawPointer(base)
            var i = 0
            while i + 8 <= count {
                var lanes = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
                lanes.replace(with: 0, where: lanes .< 0)
                raw.storeBytes(of: lanes, toByteOffset: i * 4, as: SIMD8<Float>.self)
                i += 8
            }
            while i < count {
                base[i] = max(base[i], 0)
                i += 1
            }
        }
    }

    /// `gradient_ij ← 0` where `activation_ij ≤ 0` (the ReLU derivative, applied in place, eight lanes at a time).
    public static func reluBackward(_ gradient: inout Matrix, activation: Matrix) {
        precondition(gradient.storage.count == activation.storage.count, "gradient and activation shapes differ")
        let count = gradient.storage.count
        gradient.storage.withUnsafeMutableBufferPointer { g in
            activation.storage.withUnsafeBufferPointer { a in
                guard let gBase = g.baseAddress, let aBase = a.baseAddress else { return }
                let (gRaw, aRaw) = (UnsafeMutableRawPointer(gBase), UnsafeRawPointer(aBase))
                var i = 0
                while i + 8 <= count {
                    var lanes = gRaw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
                    let active = aRaw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
                    lanes.replace(with: 0, where: active .<= 0)
                    gRaw.storeBytes(of: lanes, toByteOffset: i * 4, as: SIMD8<Float>.self)
                    i += 8
                }
                while i < count {
                    if aBase[i] <= 0 { gBase[i] = 0 }
                    i += 1
                }
            }
        }
    }
}

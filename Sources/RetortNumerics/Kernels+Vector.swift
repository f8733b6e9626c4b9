import Foundation

#if arch(x86_64)
    import _Builtin_intrinsics.intel
#endif

/// Elementwise kernels four lanes at a time (one SSE register, the x86-64 baseline the release build targets).
///
/// Swift's `Float.squareRoot()` and `max` keep scalar semantics here (a branch to `sqrtf` for errno, NaN ordering),
/// so their loops neither vectorize nor pipeline; these use the SSE instructions directly on x86-64 and the portable
/// SIMD operations elsewhere.
extension Kernels {
    /// Lane-wise `√x` (`sqrtps`).
    @inline(__always)
    static func squareRoot(_ x: SIMD4<Float>) -> SIMD4<Float> {
        #if arch(x86_64)
            _mm_sqrt_ps(x)
        #else
            x.squareRoot()
        #endif
    }

    /// Lane-wise `max(a, b)` (`maxps`; `b` where either is NaN).
    @inline(__always)
    static func maximum(_ a: SIMD4<Float>, _ b: SIMD4<Float>) -> SIMD4<Float> {
        #if arch(x86_64)
            _mm_max_ps(a, b)
        #else
            a.replacing(with: b, where: .!(a .> b))
        #endif
    }

    /// Lane-wise `min(a, b)` (`minps`; `b` where either is NaN).
    @inline(__always)
    static func minimum(_ a: SIMD4<Float>, _ b: SIMD4<Float>) -> SIMD4<Float> {
        #if arch(x86_64)
            _mm_min_ps(a, b)
        #else
            a.replacing(with: b, where: .!(a .< b))
        #endif
    }

    /// `a` where `condition > 0`, else 0 (`cmpltps` + `andps`).
    @inline(__always)
    static func keepingPositive(_ a: SIMD4<Float>, where condition: SIMD4<Float>) -> SIMD4<Float> {
        #if arch(x86_64)
            _mm_and_ps(a, _mm_cmplt_ps(SIMD4<Float>(), condition))
        #else
            a.replacing(with: 0, where: .!(condition .> 0))
        #endif
    }

    /// `exp(x)` for four lanes (Cephes `expf`): `x = k·ln 2 + r` with `|r| ≤ ln 2 / 2`, a degree-6 polynomial for
    /// `exp(r)` and `2^k` built in the exponent bits; relative error under 2e-7. Below −87 the result is 0, above 88
    /// it is `exp(88)`; NaN lanes give NaN.
    @inline(__always)
    static func exp(_ x: SIMD4<Float>) -> SIMD4<Float> {
        let clamped = maximum(minimum(x, SIMD4(repeating: 88)), SIMD4(repeating: -87))
        // Adding 1.5·2²³ rounds to the nearest integer k and leaves k in the low mantissa bits (no lane conversions).
        let shifted = clamped * 1.442_695_04 + 12_582_912
        let k = shifted - 12_582_912
        let r = clamped - k * 0.693_359_375 + k * 2.121_944_4e-4
        var p = SIMD4<Float>(repeating: 1.987_569_15e-4)
        p = p * r + 1.398_199_95e-3
        p = p * r + 8.333_451_9e-3
        p = p * r + 4.166_579_59e-2
        p = p * r + 0.166_666_655
        p = p * r + 0.500_000_01
        p = p * (r * r) + r + 1
        let bits = (unsafeBitCast(shifted, to: SIMD4<Int32>.self) &- 0x4B40_0000 &+ 127) &<< 23
        var result = p * unsafeBitCast(bits, to: SIMD4<Float>.self)
        result.replace(with: 0, where: x .< -87)
        result.replace(with: .nan, where: x .!= x)
        return result
    }

    /// Row-wise softmax of `logits / temperature`, in place: `q_ij = exp(z_ij/T − m_i) / Σ_j exp(z_ij/T − m_i)`
    /// with `m_i = max_j z_ij/T` (the log-sum-exp shift, so no overflow); each row in three vectorized passes
    /// (maximum; shift, exponentiate and sum; scale).
    public static func softmaxRows(_ matrix: inout Matrix, temperature: Float = 1) {
        let (rows, columns) = (matrix.rows, matrix.columns)
        guard columns > 0 else { return }
        let inverse = 1 / temperature
        let body = columns & ~3
        matrix.storage.withUnsafeMutableBufferPointer { values in
            guard let start = values.baseAddress else { return }
            for i in 0..<rows {
                let row = start + i * columns
                let raw = UnsafeMutableRawPointer(row)
                var shift = maximum(of: UnsafePointer(row), count: columns) * inverse
                if !shift.isFinite { shift = 0 }
                var sums = SIMD4<Float>()
                var j = 0
                while j < body {
                    let e = exp(raw.loadUnaligned(fromByteOffset: j * 4, as: SIMD4<Float>.self) * inverse - shift)
                    raw.storeBytes(of: e, toByteOffset: j * 4, as: SIMD4<Float>.self)
                    sums += e
                    j += 4
                }
                var total = sums.sum()
                while j < columns {
                    row[j] = expf(row[j] * inverse - shift)
                    total += row[j]
                    j += 1
                }
                let scale = 1 / total
                j = 0
                while j < body {
                    let e = raw.loadUnaligned(fromByteOffset: j * 4, as: SIMD4<Float>.self)
                    raw.storeBytes(of: e * scale, toByteOffset: j * 4, as: SIMD4<Float>.self)
                    j += 4
                }
                while j < columns {
                    row[j] *= scale
                    j += 1
                }
            }
        }
    }

    /// The largest of `count` values from `base` (−∞ for none), four lanes at a time.
    @inline(__always)
    static func maximum(of base: UnsafePointer<Float>, count: Int) -> Float {
        let raw = UnsafeRawPointer(base)
        var lanes = SIMD4<Float>(repeating: -.infinity)
        var j = 0
        while j + 4 <= count {
            lanes = maximum(raw.loadUnaligned(fromByteOffset: j * 4, as: SIMD4<Float>.self), lanes)
            j += 4
        }
        var largest = lanes.max()
        while j < count {
            largest = max(largest, base[j])
            j += 1
        }
        return largest
    }

    /// `log Σ_j exp(values_j)`, shifted by the maximum, four lanes at a time.
    public static func logSumExp(_ values: UnsafeBufferPointer<Float>) -> Float {
        guard let base = values.baseAddress, !values.isEmpty else { return -.infinity }
        let raw = UnsafeRawPointer(base)
        let (count, body) = (values.count, values.count & ~3)
        let largest = maximum(of: base, count: count)
        guard largest.isFinite else { return largest }
        var sums = SIMD4<Float>()
        var j = 0
        while j < body {
            sums += exp(raw.loadUnaligned(fromByteOffset: j * 4, as: SIMD4<Float>.self) - largest)
            j += 4
        }
        var total = sums.sum()
        while j < count {
            total += expf(base[j] - largest)
            j += 1
        }
        return largest + logf(total)
    }

    /// `q_ij ← q_ij² / Σ_j q_ij²` per row: from softmax(z/2), softmax(z).
    public static func squareAndNormalizeRows(_ matrix: inout Matrix) {
        let columns = matrix.columns
        guard columns > 0 else { return }
        matrix.storage.withUnsafeMutableBufferPointer { values in
            for i in 0..<matrix.rows {
                let base = i * columns
                var total: Float = 0
                for j in base..<(base + columns) {
                    values[j] *= values[j]
                    total += values[j]
                }
                let scale = 1 / total
                for j in base..<(base + columns) { values[j] *= scale }
            }
        }
    }

    /// `exp(x)` for eight lanes (two halves through the four-lane kernel).
    public static func exp(_ x: SIMD8<Float>) -> SIMD8<Float> {
        SIMD8(lowHalf: exp(x.lowHalf), highHalf: exp(x.highHalf))
    }

    /// `values_i ← exp(values_i)` in place, four lanes at a time (`expf` on the tail).
    public static func exponentiate(_ values: UnsafeMutableBufferPointer<Float>) {
        guard let base = values.baseAddress else { return }
        let raw = UnsafeMutableRawPointer(base)
        let count = values.count
        var i = 0
        while i + 4 <= count {
            let lanes = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD4<Float>.self)
            raw.storeBytes(of: exp(lanes), toByteOffset: i * 4, as: SIMD4<Float>.self)
            i += 4
        }
        while i < count {
            base[i] = expf(base[i])
            i += 1
        }
    }

    /// `matrix_ij ← matrix_ij + bias_j`, then `max(0, ·)` when `relu` (one fused pass over a layer's output).
    public static func addBias(_ bias: [Float], to matrix: inout Matrix, relu: Bool) {
        precondition(bias.count == matrix.columns, "bias length must equal the number of columns")
        let (rows, columns) = (matrix.rows, matrix.columns)
        let body = columns & ~3
        matrix.storage.withUnsafeMutableBufferPointer { values in
            bias.withUnsafeBufferPointer { b in
                guard let start = values.baseAddress, let biasBase = b.baseAddress else { return }
                let biasRaw = UnsafeRawPointer(biasBase)
                let floor = relu ? SIMD4<Float>() : SIMD4(repeating: -.infinity)
                for i in 0..<rows {
                    let row = start + i * columns
                    let raw = UnsafeMutableRawPointer(row)
                    var j = 0
                    while j < body {
                        let sum =
                            raw.loadUnaligned(fromByteOffset: j * 4, as: SIMD4<Float>.self)
                            + biasRaw.loadUnaligned(fromByteOffset: j * 4, as: SIMD4<Float>.self)
                        raw.storeBytes(of: relu ? maximum(sum, floor) : sum, toByteOffset: j * 4, as: SIMD4<Float>.self)
                        j += 4
                    }
                    while j < columns {
                        row[j] += biasBase[j]
                        if relu { row[j] = max(row[j], 0) }
                        j += 1
                    }
                }
            }
        }
    }

    /// `max(0, x)` in place (a data-dependent branch would mispredict on half the entries).
    public static func relu(_ matrix: inout Matrix) {
        matrix.storage.withUnsafeMutableBufferPointer { values in
            guard let base = values.baseAddress else { return }
            let raw = UnsafeMutableRawPointer(base)
            let count = values.count
            var i = 0
            while i + 4 <= count {
                let lanes = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD4<Float>.self)
                raw.storeBytes(of: maximum(lanes, SIMD4()), toByteOffset: i * 4, as: SIMD4<Float>.self)
                i += 4
            }
            while i < count {
                base[i] = max(base[i], 0)
                i += 1
            }
        }
    }

    /// `gradient_ij ← 0` where `activation_ij ≤ 0` (the ReLU derivative, applied in place).
    public static func reluBackward(_ gradient: inout Matrix, activation: Matrix) {
        precondition(gradient.storage.count == activation.storage.count, "gradient and activation shapes differ")
        let count = gradient.storage.count
        gradient.storage.withUnsafeMutableBufferPointer { g in
            activation.storage.withUnsafeBufferPointer { a in
                guard let gBase = g.baseAddress, let aBase = a.baseAddress else { return }
                let (gRaw, aRaw) = (UnsafeMutableRawPointer(gBase), UnsafeRawPointer(aBase))
                var i = 0
                while i + 4 <= count {
                    let lanes = gRaw.loadUnaligned(fromByteOffset: i * 4, as: SIMD4<Float>.self)
                    let active = aRaw.loadUnaligned(fromByteOffset: i * 4, as: SIMD4<Float>.self)
                    gRaw.storeBytes(
                        of: keepingPositive(lanes, where: active), toByteOffset: i * 4, as: SIMD4<Float>.self)
                    i += 4
                }
                while i < count {
                    if aBase[i] <= 0 { gBase[i] = 0 }
                    i += 1
                }
            }
        }
    }

    /// One Adam step on `count` parameters: `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`,
    /// `w ← w − stepSize·m / (√v + ε)`, where `stepSize` carries the bias corrections.
    public static func adamStep(
        weights w: UnsafeMutablePointer<Float>, firstMoments m: UnsafeMutablePointer<Float>,
        secondMoments v: UnsafeMutablePointer<Float>, gradient g: UnsafePointer<Float>, count: Int,
        beta1 b1: Float, beta2 b2: Float, epsilon: Float, stepSize: Float
    ) {
        let (wRaw, mRaw, vRaw, gRaw) = (
            UnsafeMutableRawPointer(w), UnsafeMutableRawPointer(m), UnsafeMutableRawPointer(v), UnsafeRawPointer(g)
        )
        var i = 0
        while i + 4 <= count {
            let byte = i * 4
            let gi = gRaw.loadUnaligned(fromByteOffset: byte, as: SIMD4<Float>.self)
            let mi = b1 * mRaw.loadUnaligned(fromByteOffset: byte, as: SIMD4<Float>.self) + (1 - b1) * gi
            let vi = b2 * vRaw.loadUnaligned(fromByteOffset: byte, as: SIMD4<Float>.self) + (1 - b2) * gi * gi
            let wi =
                wRaw.loadUnaligned(fromByteOffset: byte, as: SIMD4<Float>.self) - stepSize * mi
                / (squareRoot(vi) + epsilon)
            mRaw.storeBytes(of: mi, toByteOffset: byte, as: SIMD4<Float>.self)
            vRaw.storeBytes(of: vi, toByteOffset: byte, as: SIMD4<Float>.self)
            wRaw.storeBytes(of: wi, toByteOffset: byte, as: SIMD4<Float>.self)
            i += 4
        }
        while i < count {
            m[i] = b1 * m[i] + (1 - b1) * g[i]
            v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i]
            w[i] -= stepSize * m[i] / (v[i].squareRoot() + epsilon)
            i += 1
        }
    }
}

import Foundation
import RetortNumerics

/// The activations of one adapted block that its backward pass reads (`n` positions).
struct LoRABlockTape {
    /// Block input `x` (`n × H`), and `a₁ = rmsNorm(x)`.
    var input: Matrix, attentionInput: Matrix
    /// Queries (`n × H`) and keys (`n × kvSize`) after RoPE, values (`n × kvSize`).
    var query: Matrix, key: Matrix, value: Matrix
    /// Softmax attention weights, `heads × n × n` (row `i` zero past column `i`).
    var probabilities: [Float]
    /// Attention context before the output projection (`n × H`).
    var context: Matrix
    /// Residual after attention (`n × H`), and `a₂ = rmsNorm` of it.
    var middle: Matrix, feedForwardInput: Matrix
    /// Gate pre-activation and up projection (`n × F`), and `silu(gate) ⊙ up`.
    var gate: Matrix, up: Matrix, hidden: Matrix
    /// `x·Aᵀ` (`n × rank`) of each adapted projection, indexed by ``LoRATarget/slot``.
    var down: [Matrix?]
}

/// Gradients of the loss with respect to every adapter's `A` and `B`, in ``LoRAAdapters/pairs`` order.
struct LoRAGradients {
    var a: [Matrix]
    var b: [Matrix]

    /// Zero gradients shaped like `adapters`.
    init(zeroFor adapters: LoRAAdapters) {
        a = adapters.pairs.map { Matrix(rows: $0.a.rows, columns: $0.a.columns) }
        b = adapters.pairs.map { Matrix(rows: $0.b.rows, columns: $0.b.columns) }
    }

    /// Sets every gradient to zero.
    mutating func zero() {
        for i in a.indices {
            a[i].storage.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
            b[i].storage.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
        }
    }
}

extension LoRATarget {
    /// Position in ``allCases``.
    var slot: Int {
        switch self {
        case .query: 0
        case .key: 1
        case .value: 2
        case .output: 3
        case .gate: 4
        case .up: 5
        case .down: 6
        }
    }
}

extension LlamaDecoder {
    /// The residual stream (`tokens × H`, no norm applied) after the first `lowerBlocks` blocks, positions from 0:
    /// what LoRA training caches for the frozen blocks.
    func residual(_ tokens: [Int32], lowerBlocks: Int) throws -> Matrix {
        var x = embeddings.gatheringRows(tokens.map { Int($0) })
        let (cos, sin) = rotations(positions: 0..<tokens.count)
        for index in 0..<lowerBlocks {
            _ = try adaptedBlock(index, x: &x, cos: cos, sin: sin, adapters: nil, recording: false)
        }
        return x
    }

    /// Logits (`tokens × vocab`) of `tokens` at every position with `adapters` applied un-merged
    /// (`x·Wᵀ + s·(x·Aᵀ)·Bᵀ` in the adapted blocks): the reference that ``LoRAAdapters/merged(into:)`` must match.
    func logits(tokens: [Int32], adapters: LoRAAdapters) throws -> Matrix {
        let first = adapters.firstLayer
        var x = try residual(tokens, lowerBlocks: first)
        let (cos, sin) = rotations(positions: 0..<tokens.count)
        for index in first..<layers.count {
            _ = try adaptedBlock(index, x: &x, cos: cos, sin: sin, adapters: adapters, recording: false)
        }
        return try Matrix.product(rmsNorm(x, outputNorm), output ?? embeddings, transposeB: .transposed)
    }

    /// `x·Wᵀ` for `target`'s weight of block `index`, plus `s·(x·Aᵀ)·Bᵀ` when adapted (then `x·Aᵀ` goes to `down`).
    func adaptedProjection(
        _ x: Matrix, _ target: LoRATarget, block index: Int, adapters: LoRAAdapters?, down: inout [Matrix?]
    ) throws -> Matrix {
        var y = try Matrix.product(x, target.weight(layers[index]), transposeB: .transposed)
        if let adapters, let pair = adapters.pair(layer: index, target: target) {
            let xa = try Matrix.product(x, pair.a, transposeB: .transposed)
            try Matrix.multiply(xa, pair.b, transposeB: .transposed, alpha: adapters.config.scale, beta: 1, into: &y)
            down[target.slot] = xa
        }
        return y
    }

    /// Block `index` on the residual stream `x` (positions `0..<n`, RoPE tables `cos`/`sin`), with `adapters`
    /// un-merged; the tape of its activations when `recording`.
    func adaptedBlock(
        _ index: Int, x: inout Matrix, cos: [Float], sin: [Float], adapters: LoRAAdapters?, recording: Bool
    ) throws -> LoRABlockTape? {
        let layer = layers[index]
        var down = [Matrix?](repeating: nil, count: LoRATarget.allCases.count)
        let input = x
        let a1 = rmsNorm(x, layer.attentionNorm)
        var q = try adaptedProjection(a1, .query, block: index, adapters: adapters, down: &down)
        var k = try adaptedProjection(a1, .key, block: index, adapters: adapters, down: &down)
        let v = try adaptedProjection(a1, .value, block: index, adapters: adapters, down: &down)
        rotate(&q, cos: cos, sin: sin)
        rotate(&k, cos: cos, sin: sin)
        var probabilities: [Float] = []
        let context = try causalAttention(q, keys: k, values: v, probabilities: &probabilities)
        try x.add(try adaptedProjection(context, .output, block: index, adapters: adapters, down: &down))
        let middle = x
        let a2 = rmsNorm(x, layer.feedForwardNorm)
        let gate = try adaptedProjection(a2, .gate, block: index, adapters: adapters, down: &down)
        let up = try adaptedProjection(a2, .up, block: index, adapters: adapters, down: &down)
        var hidden = gate
        Self.swiGLU(&hidden, up)
        try x.add(try adaptedProjection(hidden, .down, block: index, adapters: adapters, down: &down))
        guard recording else { return nil }
        return LoRABlockTape(
            input: input, attentionInput: a1, query: q, key: k, value: v, probabilities: probabilities,
            context: context, middle: middle, feedForwardInput: a2, gate: gate, up: up, hidden: hidden, down: down)
    }

    /// `C[c…] ← alpha·op(A[a…])·op(B[b…]) + beta·C[c…]` (sgemm) on views of row-major arrays starting at the given
    /// offsets: how the per-head attention products address one head's columns.
    static func gemm(
        _ transposeA: Transpose, _ transposeB: Transpose, m: Int, n: Int, k: Int, alpha: Float = 1,
        _ a: [Float], at aOffset: Int, lda: Int, _ b: [Float], at bOffset: Int, ldb: Int, beta: Float = 0,
        into c: inout [Float], at cOffset: Int, ldc: Int
    ) throws {
        try a.withUnsafeBufferPointer { ap in
            try b.withUnsafeBufferPointer { bp in
                try c.withUnsafeMutableBufferPointer { cp in
                    try BLAS.gemm(
                        transposeA, transposeB, m: m, n: n, k: k, alpha: alpha,
                        a: UnsafeBufferPointer(rebasing: ap[aOffset...]), lda: lda,
                        b: UnsafeBufferPointer(rebasing: bp[bOffset...]), ldb: ldb, beta: beta,
                        c: UnsafeMutableBufferPointer(rebasing: cp[cOffset...]), ldc: ldc)
                }
            }
        }
    }

    /// Causal grouped-query attention from position 0 (`n × H` queries, `n × kvSize` keys and values), keeping the
    /// softmax weights (`heads × n × n`) for the backward pass.
    func causalAttention(
        _ q: Matrix, keys k: Matrix, values v: Matrix, probabilities: inout [Float]
    ) throws -> Matrix {
        let (n, h, d, kv) = (q.rows, config.hiddenSize, config.headSize, config.kvSize)
        let group = config.heads / config.kvHeads
        let scale = 1 / Float(d).squareRoot()
        var context = [Float](repeating: 0, count: n * h)
        probabilities = [Float](repeating: 0, count: config.heads * n * n)
        for head in 0..<config.heads {
            let (shared, p) = ((head / group) * d, head * n * n)
            try Self.gemm(
                .none, .transposed, m: n, n: n, k: d, alpha: scale, q.storage, at: head * d, lda: h, k.storage,
                at: shared, ldb: kv, into: &probabilities, at: p, ldc: n)
            probabilities.withUnsafeMutableBufferPointer { all in
                Self.causalSoftmax(
                    UnsafeMutableBufferPointer(rebasing: all[p..<(p + n * n)]), rows: n, columns: n, start: 0)
            }
            try Self.gemm(
                .none, .none, m: n, n: d, k: n, probabilities, at: p, lda: n, v.storage, at: shared, ldb: kv,
                into: &context, at: head * d, ldc: h)
        }
        return Matrix(rows: n, columns: h, storage: context)
    }

    /// Gradient of `rmsNorm(x, w)` with respect to `x` given the output gradient `dy`, per row
    /// `dx = r·w⊙dy − (r³/H)·x·Σ(dy⊙w⊙x)` with `r = 1/√(mean(x²) + ε)`.
    func rmsNormBackward(_ dy: Matrix, input x: Matrix, _ weight: [Float]) -> Matrix {
        var dx = Matrix(rows: x.rows, columns: x.columns)
        let (columns, epsilon) = (x.columns, config.rmsEpsilon)
        dx.storage.withUnsafeMutableBufferPointer { out in
            x.storage.withUnsafeBufferPointer { xs in
                dy.storage.withUnsafeBufferPointer { gs in
                    weight.withUnsafeBufferPointer { w in
                        for r in 0..<x.rows {
                            let row = r * columns
                            var total: Float = 0
                            var dot: Float = 0
                            for j in 0..<columns {
                                total += xs[row + j] * xs[row + j]
                                dot += gs[row + j] * w[j] * xs[row + j]
                            }
                            let scale = 1 / (total / Float(columns) + epsilon).squareRoot()
                            let correction = scale * scale * scale / Float(columns) * dot
                            for j in 0..<columns {
                                out[row + j] = scale * w[j] * gs[row + j] - correction * xs[row + j]
                            }
                        }
                    }
                }
            }
        }
        return dx
    }

    /// Backward through one projection: `dX += dY·W` (when `inputGradient`), and for an adapted one
    /// `dB += s·dYᵀ·(X·Aᵀ)`, `dA += s·(dY·B)ᵀ·X`, `dX += s·(dY·B)·A`.
    func projectionBackward(
        _ dy: Matrix, input x: Matrix, _ target: LoRATarget, block index: Int, tape: LoRABlockTape,
        adapters: LoRAAdapters, gradients: inout LoRAGradients, inputGradient: Bool, into dx: inout Matrix
    ) throws {
        if inputGradient { try Matrix.multiply(dy, target.weight(layers[index]), beta: 1, into: &dx) }
        guard let p = adapters.pairIndex(layer: index, target: target), let xa = tape.down[target.slot] else { return }
        let pair = adapters.pairs[p]
        let scale = adapters.config.scale
        let dyb = try Matrix.product(dy, pair.b)
        if inputGradient { try Matrix.multiply(dyb, pair.a, alpha: scale, beta: 1, into: &dx) }
        try Matrix.multiply(dy, xa, transposeA: .transposed, alpha: scale, beta: 1, into: &gradients.b[p])
        try Matrix.multiply(dyb, x, transposeA: .transposed, alpha: scale, beta: 1, into: &gradients.a[p])
    }

    /// Backward through block `index`: adds the adapters' gradients to `gradients` and returns the gradient with
    /// respect to the block's input (zero when `inputGradient` is false: the lowest adapted block).
    func adaptedBlockBackward(
        _ index: Int, tape: LoRABlockTape, outputGradient dOut: Matrix, cos: [Float], sin: [Float],
        adapters: LoRAAdapters, gradients: inout LoRAGradients, inputGradient: Bool
    ) throws -> Matrix {
        let layer = layers[index]
        let (n, h, f, kv) = (dOut.rows, config.hiddenSize, config.feedForwardSize, config.kvSize)
        func back(_ dy: Matrix, _ x: Matrix, _ target: LoRATarget, always: Bool, into dx: inout Matrix) throws {
            try projectionBackward(
                dy, input: x, target, block: index, tape: tape, adapters: adapters, gradients: &gradients,
                inputGradient: always || inputGradient, into: &dx)
        }
        // SwiGLU MLP: x_out = middle + down(silu(gate) ⊙ up).
        var dHidden = Matrix(rows: n, columns: f)
        try back(dOut, tape.hidden, .down, always: true, into: &dHidden)
        var dGate = Matrix(rows: n, columns: f)
        var dUp = Matrix(rows: n, columns: f)
        for i in 0..<(n * f) {
            let g = tape.gate.storage[i]
            let sigmoid = 1 / (1 + expf(-g))
            let dh = dHidden.storage[i]
            dUp.storage[i] = dh * g * sigmoid
            dGate.storage[i] = dh * tape.up.storage[i] * sigmoid * (1 + g * (1 - sigmoid))
        }
        var dA2 = Matrix(rows: n, columns: h)
        try back(dGate, tape.feedForwardInput, .gate, always: true, into: &dA2)
        try back(dUp, tape.feedForwardInput, .up, always: true, into: &dA2)
        var dMiddle = dOut
        try dMiddle.add(rmsNormBackward(dA2, input: tape.middle, layer.feedForwardNorm))
        // Attention: middle = input + output(context).
        var dContext = Matrix(rows: n, columns: h)
        try back(dMiddle, tape.context, .output, always: true, into: &dContext)
        var (dQ, dK, dV) = (Matrix(rows: n, columns: h), Matrix(rows: n, columns: kv), Matrix(rows: n, columns: kv))
        try attentionBackward(dContext, tape: tape, query: &dQ, key: &dK, value: &dV)
        let inverseSin = sin.map { -$0 }
        rotate(&dQ, cos: cos, sin: inverseSin)
        rotate(&dK, cos: cos, sin: inverseSin)
        var dA1 = Matrix(rows: n, columns: h)
        try back(dQ, tape.attentionInput, .query, always: false, into: &dA1)
        try back(dK, tape.attentionInput, .key, always: false, into: &dA1)
        try back(dV, tape.attentionInput, .value, always: false, into: &dA1)
        guard inputGradient else { return dMiddle }
        try dMiddle.add(rmsNormBackward(dA1, input: tape.input, layer.attentionNorm))
        return dMiddle
    }

    /// Backward through causal softmax attention per query head `h` of key/value group `g`:
    /// `dP = dO_h·V_gᵀ`, `dV_g += P_hᵀ·dO_h`, `dS = P ⊙ (dP − rowsum(P ⊙ dP))`, `dQ_h = c·dS·K_g`,
    /// `dK_g += c·dSᵀ·Q_h` with `c = 1/√d` (gradients with respect to the rotated queries and keys).
    func attentionBackward(
        _ dContext: Matrix, tape: LoRABlockTape, query dQ: inout Matrix, key dK: inout Matrix, value dV: inout Matrix
    ) throws {
        let (n, h, d, kv) = (dContext.rows, config.hiddenSize, config.headSize, config.kvSize)
        let group = config.heads / config.kvHeads
        let scale = 1 / Float(d).squareRoot()
        var dS = [Float](repeating: 0, count: n * n)
        let dO = dContext.storage
        for head in 0..<config.heads {
            let (shared, p) = ((head / group) * d, head * n * n)
            try Self.gemm(
                .none, .transposed, m: n, n: n, k: d, dO, at: head * d, lda: h, tape.value.storage, at: shared,
                ldb: kv, into: &dS, at: 0, ldc: n)
            try Self.gemm(
                .transposed, .none, m: n, n: d, k: n, tape.probabilities, at: p, lda: n, dO, at: head * d, ldb: h,
                beta: 1, into: &dV.storage, at: shared, ldc: kv)
            tape.probabilities.withUnsafeBufferPointer { pp in
                dS.withUnsafeMutableBufferPointer { ds in
                    for i in 0..<n {
                        let row = i * n
                        var dot: Float = 0
                        for j in 0...i { dot += pp[p + row + j] * ds[row + j] }
                        for j in 0...i { ds[row + j] = pp[p + row + j] * (ds[row + j] - dot) }
                        for j in (i + 1)..<n { ds[row + j] = 0 }
                    }
                }
            }
            try Self.gemm(
                .none, .none, m: n, n: d, k: n, alpha: scale, dS, at: 0, lda: n, tape.key.storage, at: shared,
                ldb: kv, into: &dQ.storage, at: head * d, ldc: h)
            try Self.gemm(
                .transposed, .none, m: n, n: d, k: n, alpha: scale, dS, at: 0, lda: n, tape.query.storage,
                at: head * d, ldb: h, beta: 1, into: &dK.storage, at: shared, ldc: kv)
        }
    }

    /// Summed cross-entropy of the last `targets.count` positions of the top residual stream `x` (`n × H`), position
    /// `n − T + t` predicting `targets[t]`, and (when `gradientScale` is set) `gradientScale` times its gradient with
    /// respect to `x` (zero on the rows before). Logits are computed at those `T` positions only.
    ///
    /// Where `soft[t]` is not empty, the target of position `t` is `(1 − softWeight)` × one-hot(`targets[t]`) +
    /// `softWeight` × `soft[t]` (token-level distillation, ``SlmDistillation``): the loss `logsumexp(z) − Σ q_k z_k`,
    /// the gradient `softmax(z) − q`.
    func headLoss(
        _ x: Matrix, targets: [Int32], soft: [SlmDistillation.Soft]? = nil, softWeight: Float = 0,
        gradientScale: Float?
    ) throws -> (loss: Double, gradient: Matrix?) {
        let (n, h, t) = (x.rows, config.hiddenSize, targets.count)
        let rows = Matrix(rows: t, columns: h, storage: Array(x.storage[((n - t) * h)..<(n * h)]))
        let head = output ?? embeddings
        var logits = try Matrix.product(rmsNorm(rows, outputNorm), head, transposeB: .transposed)
        let vocabulary = logits.columns
        var loss = 0.0
        // One pass of expf per row gives both the log-sum-exp (the loss) and the softmax (the gradient).
        logits.storage.withUnsafeMutableBufferPointer { values in
            for r in 0..<t {
                let row = r * vocabulary
                var largest = -Float.infinity
                for j in 0..<vocabulary { largest = max(largest, values[row + j]) }
                var total: Float = 0
                let distribution = soft.map { $0[r] } ?? []
                let hard: Float = distribution.isEmpty ? 1 : 1 - softWeight
                var chosen = hard * values[row + Int(targets[r])]
                for (token, probability) in distribution {
                    chosen += softWeight * probability * values[row + Int(token)]
                }
                for j in 0..<vocabulary {
                    let e = expf(values[row + j] - largest)
                    values[row + j] = e
                    total += e
                }
                loss += Double(largest + logf(total) - chosen)
                let inverse = 1 / total
                for j in 0..<vocabulary { values[row + j] *= inverse }
                values[row + Int(targets[r])] -= hard
                for (token, probability) in distribution { values[row + Int(token)] -= softWeight * probability }
            }
        }
        guard let gradientScale else { return (loss, nil) }
        let dNormed = try Matrix.product(logits, head)
        let dRows = rmsNormBackward(dNormed, input: rows, outputNorm)
        var dx = Matrix(rows: n, columns: h)
        for i in 0..<(t * h) { dx.storage[(n - t) * h + i] = gradientScale * dRows.storage[i] }
        return (loss, dx)
    }

    /// Summed target cross-entropy of one example whose lower-block residual (`prompt + target.dropLast()`) is
    /// `cached`, through the adapted blocks with `adapters` (with `soft` targets mixed in at `softWeight`, see
    /// ``headLoss(_:targets:soft:softWeight:gradientScale:)``); adds `gradientScale` times the adapters' gradient to
    /// `gradients` when set.
    func adaptedLoss(
        cached: Matrix, targets: [Int32], soft: [SlmDistillation.Soft]? = nil, softWeight: Float = 0,
        adapters: LoRAAdapters, gradientScale: Float?, gradients: inout LoRAGradients
    ) throws -> Double {
        let n = cached.rows
        let (cos, sin) = rotations(positions: 0..<n)
        var x = cached
        let blocks = adapters.firstLayer..<layers.count
        var tapes: [LoRABlockTape] = []
        for index in blocks {
            let tape = try adaptedBlock(
                index, x: &x, cos: cos, sin: sin, adapters: adapters, recording: gradientScale != nil)
            if let tape { tapes.append(tape) }
        }
        let (loss, gradient) = try headLoss(
            x, targets: targets, soft: soft, softWeight: softWeight, gradientScale: gradientScale)
        guard var d = gradient else { return loss }
        for (index, tape) in zip(blocks, tapes).reversed() {
            d = try adaptedBlockBackward(
                index, tape: tape, outputGradient: d, cos: cos, sin: sin, adapters: adapters,
                gradients: &gradients, inputGradient: index > blocks.lowerBound)
        }
        return loss
    }
}

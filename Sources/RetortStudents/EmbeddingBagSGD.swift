import RetortNumerics

/// Plain SGD for an embedding bag, fastText's way: no optimizer state, and per step only the embedding rows of the
/// step's n-grams change.
///
/// For a batch of `b` examples with sparse inputs `x_i` (values `v_ik` at buckets `j_ik`), embedding `E` (`buckets × d`,
/// bias `c`) and output layer `W` (`d × K`, bias `a`):
/// `h_i = c + Σ_k v_ik·E[j_ik]` (sparse gather), `Z = H·W + a` (sgemm), `G = ∂L/∂Z` (the distillation loss, a mean
/// over the batch), `∂L/∂H = G·Wᵀ` (sgemm, before `W` moves), then `W ← W − η·Hᵀ·G` (sgemm into `W`),
/// `a ← a − η·1ᵀG`, `c ← c − η·1ᵀ∂L/∂H`, and `E[j_ik] ← E[j_ik] − η·v_ik·∂L/∂h_i` for every stored entry (sparse
/// scatter). With `b = 1` this is fastText's per-example update (fastText has no biases; here they train as well).
struct EmbeddingBagSGD {
    let dimension: Int
    let classes: Int
    /// `b × d` hidden vectors, then reused for nothing else.
    var hidden = Matrix(rows: 0, columns: 0)
    /// `b × K` logits, replaced by `∂L/∂Z` in place.
    var logits = Matrix(rows: 0, columns: 0)
    /// `b × d` `∂L/∂H`.
    var hiddenGradient = Matrix(rows: 0, columns: 0)
    /// `b × K` tempered teacher rows of the batch.
    var targets = Matrix(rows: 0, columns: 0)
    var scratch = Matrix(rows: 0, columns: 0)
    var labels: [Int] = []
    /// `b` ones (column sums through sgemv).
    var ones: [Float] = []

    init(dimension: Int, classes: Int) {
        self.dimension = dimension
        self.classes = classes
    }

    /// Buffers for a batch of `count` (reallocated only when the batch size changes, i.e. the last batch).
    mutating func reserve(_ count: Int) {
        guard hidden.rows != count else { return }
        hidden = Matrix(rows: count, columns: dimension)
        logits = Matrix(rows: count, columns: classes)
        hiddenGradient = Matrix(rows: count, columns: dimension)
        targets = Matrix(rows: count, columns: classes)
        ones = [Float](repeating: 1, count: count)
    }

    /// One SGD step at rate `rate` on the examples `rows` of `features`.
    mutating func step(
        _ network: inout DenseNetwork, features: SparseMatrix, rows: ArraySlice<Int>, temperedTargets: Matrix,
        hardLabels: [Int], loss: DistillationLoss, rate: Float
    ) throws(NumericsError) {
        let (d, k, b) = (dimension, classes, rows.count)
        guard b > 0 else { return }
        guard network.layers.count == 2, network.layers[0].outputDimension == d,
            network.layers[1].outputDimension == k, network.layers[0].inputDimension == features.columns
        else {
            throw NumericsError(.shapeMismatch, "SGD trains an embedding bag (one embedding, one output layer)")
        }
        reserve(b)
        labels.removeAll(keepingCapacity: true)
        // h_i = c + Σ_k v_ik·E[j_ik]; the teacher rows and labels of the batch alongside.
        features.rowOffsets.withUnsafeBufferPointer { offsets in
            features.columnIndices.withUnsafeBufferPointer { columns in
                features.values.withUnsafeBufferPointer { values in
                    network.layers[0].weights.storage.withUnsafeBufferPointer { embedding in
                        network.layers[0].bias.withUnsafeBufferPointer { bias in
                            hidden.storage.withUnsafeMutableBufferPointer { h in
                                guard let e = embedding.baseAddress, let c = bias.baseAddress,
                                    let out = h.baseAddress
                                else { return }
                                for (i, row) in rows.enumerated() {
                                    let target = out + i * d
                                    target.update(from: c, count: d)
                                    for entry in offsets[row]..<offsets[row + 1] {
                                        let source = e + Int(columns[entry]) * d
                                        let v = values[entry]
                                        for j in 0..<d { target[j] += v * source[j] }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        temperedTargets.storage.withUnsafeBufferPointer { source in
            targets.storage.withUnsafeMutableBufferPointer { destination in
                guard let from = source.baseAddress, let to = destination.baseAddress else { return }
                for (i, row) in rows.enumerated() { (to + i * k).update(from: from + row * k, count: k) }
            }
        }
        for row in rows { labels.append(hardLabels[row]) }
        // Z = H·W + a, then G = ∂L/∂Z in place.
        try Matrix.multiply(hidden, network.layers[1].weights, into: &logits)
        Kernels.addBias(network.layers[1].bias, to: &logits, relu: false)
        loss.gradient(replacing: &logits, scratch: &scratch, temperedTargets: targets, hardLabels: labels)
        // ∂L/∂H = G·Wᵀ with W as it was, then W ← W − η·Hᵀ·G.
        try Matrix.multiply(logits, network.layers[1].weights, transposeB: .transposed, into: &hiddenGradient)
        try Matrix.multiply(
            hidden, logits, transposeA: .transposed, alpha: -rate, beta: 1, into: &network.layers[1].weights)
        try subtractColumnSums(of: logits, times: rate, from: &network.layers[1].bias)
        try subtractColumnSums(of: hiddenGradient, times: rate, from: &network.layers[0].bias)
        // E[j_ik] ← E[j_ik] − η·v_ik·∂L/∂h_i: only the rows of this batch's n-grams.
        features.rowOffsets.withUnsafeBufferPointer { offsets in
            features.columnIndices.withUnsafeBufferPointer { columns in
                features.values.withUnsafeBufferPointer { values in
                    hiddenGradient.storage.withUnsafeBufferPointer { g in
                        network.layers[0].weights.storage.withUnsafeMutableBufferPointer { embedding in
                            guard let e = embedding.baseAddress, let gradient = g.baseAddress else { return }
                            for (i, row) in rows.enumerated() {
                                let source = gradient + i * d
                                for entry in offsets[row]..<offsets[row + 1] {
                                    let target = e + Int(columns[entry]) * d
                                    let scale = -rate * values[entry]
                                    for j in 0..<d { target[j] += scale * source[j] }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// `bias ← bias − rate · 1ᵀ·matrix` (sgemv).
    func subtractColumnSums(of matrix: Matrix, times rate: Float, from bias: inout [Float]) throws(NumericsError) {
        try matrix.storage.withUnsafeBufferPointer { (a) throws(NumericsError) in
            try ones.withUnsafeBufferPointer { (x) throws(NumericsError) in
                try bias.withUnsafeMutableBufferPointer { (y) throws(NumericsError) in
                    try BLAS.gemv(
                        .transposed, rows: matrix.rows, columns: matrix.columns, alpha: -rate, a: a,
                        lda: matrix.columns, x: x, beta: 1, y: y)
                }
            }
        }
    }
}

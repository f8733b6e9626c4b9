import Foundation
import RetortNumerics

/// The shape of a Llama-architecture decoder, from a GGUF file's `llama.*` metadata.
public struct LlamaConfig: Sendable, Equatable {
    /// Transformer blocks (`llama.block_count`).
    public var layers: Int
    /// Width `H` of the residual stream (`llama.embedding_length`).
    public var hiddenSize: Int
    /// Width of the SwiGLU hidden layer (`llama.feed_forward_length`).
    public var feedForwardSize: Int
    /// Query heads (`llama.attention.head_count`).
    public var heads: Int
    /// Key/value heads (`llama.attention.head_count_kv`; fewer than `heads` for grouped-query attention).
    public var kvHeads: Int
    /// RoPE base `θ` (`llama.rope.freq_base`, default 10000).
    public var ropeBase: Double
    /// RMSNorm `ε` (`llama.attention.layer_norm_rms_epsilon`).
    public var rmsEpsilon: Float
    /// Longest sequence (`llama.context_length`).
    public var contextLength: Int
    /// Rows of the token table.
    public var vocabularySize: Int

    /// Width of one head.
    public var headSize: Int { hiddenSize / heads }
    /// Width of the keys (and values) of all key/value heads.
    public var kvSize: Int { kvHeads * headSize }
}

/// A Llama-architecture decoder (SmolLM2, Llama, ...) run on the CPU through OpenBLAS, weights dequantized to fp32
/// matrices on load (`out × in`, as the GGUF stores them; sgemm reads them transposed).
///
/// Per block: RMSNorm, Q/K/V projections (grouped-query: query head `h` reads key/value head `h / (heads / kvHeads)`),
/// RoPE on Q and K, causal softmax attention over the KV cache, output projection and residual; RMSNorm, SwiGLU
/// (`down(silu(gate·x) ⊙ up·x)`) and residual. Then the final RMSNorm and the LM head (the token table when the file has
/// no `output.weight`). RoPE rotates *adjacent* pairs `(2i, 2i+1)` of each head by `pos·θ^(−2i/d)`: llama.cpp's
/// converter permutes Hugging Face's Q/K rows so that its rotate-half pairs `(i, i+d/2)` become adjacent ones.
public struct LlamaDecoder: Sendable {
    /// One transformer block's weights.
    public struct Layer: Sendable, Equatable {
        /// RMSNorm scale before attention.
        public var attentionNorm: [Float]
        /// `H × H`, `kvSize × H`, `kvSize × H`, `H × H`.
        public var query: Matrix, key: Matrix, value: Matrix, output: Matrix
        /// RMSNorm scale before the feed-forward block.
        public var feedForwardNorm: [Float]
        /// `F × H`, `F × H`, `H × F`.
        public var gate: Matrix, up: Matrix, down: Matrix
    }

    /// Keys and values of the positions seen so far, per layer (`positions × kvSize`, row-major).
    public struct Cache: Sendable {
        /// Keys (after RoPE) per layer.
        public var keys: [[Float]]
        /// Values per layer.
        public var values: [[Float]]
        /// Positions held.
        public var count: Int

        /// An empty cache for `layers` layers.
        public init(layers: Int) {
            keys = Array(repeating: [], count: layers)
            values = Array(repeating: [], count: layers)
            count = 0
        }
    }

    /// The configuration.
    public let config: LlamaConfig
    /// `vocab × H` token table.
    public var embeddings: Matrix
    /// The blocks, input side first.
    public var layers: [Layer]
    /// Final RMSNorm scale.
    public var outputNorm: [Float]
    /// `vocab × H` LM head; `nil` when tied to ``embeddings``.
    public var output: Matrix?
    /// End-of-sequence id from the file's tokenizer metadata (generation stops there).
    public var eos: Int32?

    /// Loads a `general.architecture = "llama"` GGUF file (F32/F16/BF16/Q4_0/Q4_1/Q8_0 tensors).
    public init(gguf: GGUFFile) throws(StudentError) {
        let architecture = try gguf.string("general.architecture")
        guard architecture == "llama" else {
            throw StudentError(
                "general.architecture is \"\(architecture)\"; the decoder runs \"llama\" models only", file: gguf.file)
        }
        func positive(_ key: String) throws(StudentError) -> Int {
            let value = try gguf.integer(key)
            guard (1...(1 << 24)).contains(value) else {
                throw StudentError("metadata \"\(key)\" is \(value), expected 1 to 16777216", file: gguf.file)
            }
            return value
        }
        guard let table = gguf.tensor("token_embd.weight"), table.dimensions.count == 2 else {
            throw StudentError("no 2-D tensor \"token_embd.weight\"; is this a Llama model?", file: gguf.file)
        }
        let hidden = try positive("llama.embedding_length")
        let heads = try positive("llama.attention.head_count")
        let kvHeads =
            gguf.metadata["llama.attention.head_count_kv"] == nil
            ? heads : try positive("llama.attention.head_count_kv")
        let config = LlamaConfig(
            layers: try positive("llama.block_count"), hiddenSize: hidden,
            feedForwardSize: try positive("llama.feed_forward_length"), heads: heads, kvHeads: kvHeads,
            ropeBase: gguf.metadata["llama.rope.freq_base"] == nil ? 10000 : try gguf.double("llama.rope.freq_base"),
            rmsEpsilon: Float(try gguf.double("llama.attention.layer_norm_rms_epsilon")),
            contextLength: try positive("llama.context_length"), vocabularySize: table.dimensions[1])
        guard hidden % heads == 0, heads % kvHeads == 0, config.headSize % 2 == 0 else {
            throw StudentError(
                "embedding_length \(hidden), head_count \(heads) and head_count_kv \(kvHeads) do not fit: H must split "
                    + "into heads of even width and the heads into key/value groups", file: gguf.file)
        }
        if let rope = gguf.metadata["llama.rope.dimension_count"]?.integer, rope != config.headSize {
            throw StudentError(
                "llama.rope.dimension_count \(rope) differs from the head width \(config.headSize); partial RoPE is "
                    + "not supported", file: gguf.file)
        }
        let (h, f, kv, v) = (hidden, config.feedForwardSize, config.kvSize, config.vocabularySize)
        func vector(_ name: String) throws(StudentError) -> [Float] {
            try gguf.matrix(name, rows: 1, columns: h).storage
        }
        self.config = config
        embeddings = try gguf.matrix("token_embd.weight", rows: v, columns: h)
        var layers: [Layer] = []
        for i in 0..<config.layers {
            let p = "blk.\(i)."
            layers.append(
                Layer(
                    attentionNorm: try vector(p + "attn_norm.weight"),
                    query: try gguf.matrix(p + "attn_q.weight", rows: h, columns: h),
                    key: try gguf.matrix(p + "attn_k.weight", rows: kv, columns: h),
                    value: try gguf.matrix(p + "attn_v.weight", rows: kv, columns: h),
                    output: try gguf.matrix(p + "attn_output.weight", rows: h, columns: h),
                    feedForwardNorm: try vector(p + "ffn_norm.weight"),
                    gate: try gguf.matrix(p + "ffn_gate.weight", rows: f, columns: h),
                    up: try gguf.matrix(p + "ffn_up.weight", rows: f, columns: h),
                    down: try gguf.matrix(p + "ffn_down.weight", rows: h, columns: f)))
        }
        self.layers = layers
        outputNorm = try vector("output_norm.weight")
        output = gguf.tensor("output.weight") == nil ? nil : try gguf.matrix("output.weight", rows: v, columns: h)
        eos = gguf.metadata["tokenizer.ggml.eos_token_id"]?.integer.flatMap { (0..<v).contains($0) ? Int32($0) : nil }
    }

    /// Reads the GGUF file at `url` and loads it.
    public init(url: URL) throws(StudentError) {
        try self.init(gguf: try GGUFFile(url: url))
    }

    /// Parameters: token table, blocks (matrices and norms), final norm and an untied LM head.
    public var parameterCount: Int {
        let (h, f, kv) = (config.hiddenSize, config.feedForwardSize, config.kvSize)
        let block = 2 * h * h + 2 * kv * h + 3 * h * f + 2 * h
        return (output == nil ? 1 : 2) * config.vocabularySize * h + config.layers * block + h
    }

    /// FLOPs (2 per multiply-add) to prefill `promptTokens` tokens (logits for the last one only) and then run
    /// `generatedTokens` decode steps (logits each): every token costs `2·(block matrices)` per block, attention at
    /// position `t` (0-based) costs `4·(t+1)·H` per block (scores and weighted sum), and each logits row `2·vocab·H`.
    public func flops(promptTokens: Int, generatedTokens: Int) -> Int {
        let (h, f, kv) = (config.hiddenSize, config.feedForwardSize, config.kvSize)
        let matrices = 2 * (2 * h * h + 2 * kv * h + 3 * h * f) * config.layers
        let head = 2 * config.vocabularySize * h
        let tokens = promptTokens + generatedTokens
        let attention = 4 * h * config.layers * (tokens * (tokens + 1) / 2)
        return tokens * matrices + attention + (promptTokens > 0 ? head : 0) + generatedTokens * head
    }

    /// Logits (`tokens × vocab`) at every position of `tokens` from an empty cache: what training needs.
    public func logits(tokens: [Int32]) throws(StudentError) -> Matrix {
        var cache = Cache(layers: config.layers)
        let hidden = try hiddenStates(tokens, cache: &cache)
        return try project(hidden)
    }

    /// Runs `tokens` after what `cache` holds (one batched pass: every projection an sgemm over all the tokens) and
    /// returns the logits of the last one.
    public func prefill(_ tokens: [Int32], cache: inout Cache) throws(StudentError) -> [Float] {
        let hidden = try hiddenStates(tokens, cache: &cache)
        let last = Matrix(
            rows: 1, columns: config.hiddenSize,
            storage: Array(hidden.storage.suffix(config.hiddenSize)))
        return try project(last).storage
    }

    /// One incremental decode step: `token` at position `cache.count`; returns its logits.
    public func step(_ token: Int32, cache: inout Cache) throws(StudentError) -> [Float] {
        try prefill([token], cache: &cache)
    }

    /// Greedy decoding: the ids generated after `prompt` (at most `maxTokens`, stopping before ``eos`` or any of
    /// `stop`, and at the context length).
    public func generate(prompt: [Int32], maxTokens: Int, stop: Set<Int32> = []) throws(StudentError) -> [Int32] {
        guard !prompt.isEmpty, maxTokens > 0 else { return [] }
        var cache = Cache(layers: config.layers)
        var logits = try prefill(prompt, cache: &cache)
        var out: [Int32] = []
        let stops = stop.union(eos.map { [$0] } ?? [])
        while true {
            let next = Int32(Self.argmax(logits))
            if stops.contains(next) { break }
            out.append(next)
            if out.count == maxTokens || cache.count >= config.contextLength { break }
            logits = try step(next, cache: &cache)
        }
        return out
    }

    static func argmax(_ values: [Float]) -> Int {
        var best = 0
        for i in values.indices where values[i] > values[best] { best = i }
        return best
    }

    /// The final-normed hidden states (`tokens × H`) of `tokens` placed after the cache's positions; appends their keys
    /// and values to the cache.
    public func hiddenStates(_ tokens: [Int32], cache: inout Cache) throws(StudentError) -> Matrix {
        let (n, start) = (tokens.count, cache.count)
        guard n > 0 else { throw StudentError("no tokens to run") }
        guard start + n <= config.contextLength else {
            throw StudentError(
                "\(start + n) positions exceed the model's context length \(config.contextLength); shorten the input")
        }
        if let bad = tokens.first(where: { $0 < 0 || Int($0) >= config.vocabularySize }) {
            throw StudentError("token id \(bad) is outside the vocabulary of \(config.vocabularySize)")
        }
        var x = embeddings.gatheringRows(tokens.map { Int($0) })
        let (cos, sin) = rotations(positions: start..<(start + n))
        do {
            for (index, layer) in layers.enumerated() {
                let a = rmsNorm(x, layer.attentionNorm)
                var q = try Self.linear(a, layer.query)
                var k = try Self.linear(a, layer.key)
                let v = try Self.linear(a, layer.value)
                rotate(&q, cos: cos, sin: sin)
                rotate(&k, cos: cos, sin: sin)
                cache.keys[index] += k.storage
                cache.values[index] += v.storage
                let context = try attention(q, keys: cache.keys[index], values: cache.values[index], start: start)
                try Self.linear(context, layer.output, addingTo: &x)
                try feedForward(&x, layer)
            }
        } catch {
            throw StudentError("decoder forward pass failed: \(error)")
        }
        cache.count += n
        return rmsNorm(x, outputNorm)
    }

    /// A block's feed-forward half on every row of `x`, added to it: RMSNorm, then `down(silu(gate·a) ⊙ up·a)`.
    func feedForward(_ x: inout Matrix, _ layer: Layer) throws {
        let a = rmsNorm(x, layer.feedForwardNorm)
        var g = try Self.linear(a, layer.gate)
        let u = try Self.linear(a, layer.up)
        Self.swiGLU(&g, u)
        try Self.linear(g, layer.down, addingTo: &x)
    }

    /// `a · wᵀ` (`a.rows × w.rows`): every row of `a` through the `out × in` weights `w`. A single row (a decode
    /// step) runs as sgemv, which streams `w` once, where OpenBLAS's sgemm packs all of `w` for that one row: on
    /// SmolLM2-135M a decode step took about 2.5× as long through sgemm.
    static func linear(_ a: Matrix, _ w: Matrix) throws(NumericsError) -> Matrix {
        guard a.rows == 1 else { return try Matrix.product(a, w, transposeB: .transposed) }
        var y = Matrix(rows: 1, columns: w.rows)
        try rowTimes(a, w, beta: 0, into: &y)
        return y
    }

    /// `x ← x + a · wᵀ`, a single row through sgemv as in ``linear(_:_:)``.
    static func linear(_ a: Matrix, _ w: Matrix, addingTo x: inout Matrix) throws(NumericsError) {
        guard a.rows == 1 else {
            try Matrix.multiply(a, w, transposeB: .transposed, beta: 1, into: &x)
            return
        }
        guard x.rows == 1, x.columns == w.rows else {
            throw NumericsError(
                .shapeMismatch, "cannot multiply 1×\(a.columns) by \(w.columns)×\(w.rows) into \(x.rows)×\(x.columns)")
        }
        try rowTimes(a, w, beta: 1, into: &x)
    }

    /// `y ← w · aᵀ + beta · y` for the one row `a` (sgemv; BLAS checks every length).
    private static func rowTimes(_ a: Matrix, _ w: Matrix, beta: Float, into y: inout Matrix) throws(NumericsError) {
        try w.storage.withUnsafeBufferPointer { (wp) throws(NumericsError) in
            try a.storage.withUnsafeBufferPointer { (ap) throws(NumericsError) in
                try y.storage.withUnsafeMutableBufferPointer { (yp) throws(NumericsError) in
                    try BLAS.gemv(
                        .none, rows: w.rows, columns: w.columns, a: wp, lda: w.columns, x: ap, beta: beta, y: yp)
                }
            }
        }
    }

    /// Logits (`rows × vocab`) of final-normed hidden states through the LM head.
    public func project(_ hidden: Matrix) throws(StudentError) -> Matrix {
        do {
            return try Self.linear(hidden, output ?? embeddings)
        } catch {
            throw StudentError("decoder LM head failed: \(error)")
        }
    }

    /// `x / √(mean(x²) + ε) · w` per row.
    func rmsNorm(_ x: Matrix, _ weight: [Float]) -> Matrix {
        var out = x
        let (columns, epsilon) = (x.columns, config.rmsEpsilon)
        out.storage.withUnsafeMutableBufferPointer { values in
            weight.withUnsafeBufferPointer { w in
                for r in 0..<x.rows {
                    let row = r * columns
                    var total: Float = 0
                    for j in 0..<columns { total += values[row + j] * values[row + j] }
                    let scale = 1 / (total / Float(columns) + epsilon).squareRoot()
                    for j in 0..<columns { values[row + j] = values[row + j] * scale * w[j] }
                }
            }
        }
        return out
    }

    /// cos and sin of `pos·θ^(−2i/d)` for each position and pair `i` (`positions × d/2`).
    func rotations(positions: Range<Int>) -> (cos: [Float], sin: [Float]) {
        let half = config.headSize / 2
        var cos = [Float](repeating: 0, count: positions.count * half)
        var sin = cos
        for (row, position) in positions.enumerated() {
            for i in 0..<half {
                let angle = Double(position) * Foundation.pow(config.ropeBase, -2 * Double(i) / Double(config.headSize))
                cos[row * half + i] = Float(Foundation.cos(angle))
                sin[row * half + i] = Float(Foundation.sin(angle))
            }
        }
        return (cos, sin)
    }

    /// Rotates the adjacent pairs `(2i, 2i+1)` of every head of every row (row `r` at the `r`-th position).
    func rotate(_ x: inout Matrix, cos: [Float], sin: [Float]) {
        let (columns, d) = (x.columns, config.headSize)
        let half = d / 2
        x.storage.withUnsafeMutableBufferPointer { values in
            for r in 0..<x.rows {
                for head in 0..<(columns / d) {
                    let base = r * columns + head * d
                    for i in 0..<half {
                        let (c, s) = (cos[r * half + i], sin[r * half + i])
                        let (a, b) = (values[base + 2 * i], values[base + 2 * i + 1])
                        values[base + 2 * i] = a * c - b * s
                        values[base + 2 * i + 1] = a * s + b * c
                    }
                }
            }
        }
    }

    /// Causal attention of `q` (`n × H`, rows at positions `start..<start+n`) over the cached keys and values
    /// (`(start+n) × kvSize`): per head `softmax(Q_h·K_gᵀ/√d)·V_g` with row `i` seeing positions `≤ start+i`.
    func attention(_ q: Matrix, keys: [Float], values: [Float], start: Int) throws(NumericsError) -> Matrix {
        let (n, h, d, kv) = (q.rows, config.hiddenSize, config.headSize, config.kvSize)
        let total = start + n
        let group = config.heads / config.kvHeads
        let scale = 1 / Float(d).squareRoot()
        if n == 1 { return try attentionRow(q, keys: keys, values: values, positions: total, scale: scale) }
        var context = Matrix(rows: n, columns: h)
        var scores = Matrix(rows: n, columns: total)
        for head in 0..<config.heads {
            let shared = (head / group) * d
            try q.storage.withUnsafeBufferPointer { (qp) throws(NumericsError) in
                try keys.withUnsafeBufferPointer { (kp) throws(NumericsError) in
                    try scores.storage.withUnsafeMutableBufferPointer { (sp) throws(NumericsError) in
                        try BLAS.gemm(
                            .none, .transposed, m: n, n: total, k: d, alpha: scale,
                            a: UnsafeBufferPointer(rebasing: qp[(head * d)...]), lda: h,
                            b: UnsafeBufferPointer(rebasing: kp[shared...]), ldb: kv, c: sp, ldc: total)
                        Self.causalSoftmax(sp, rows: n, columns: total, start: start)
                    }
                }
            }
            try scores.storage.withUnsafeBufferPointer { (sp) throws(NumericsError) in
                try values.withUnsafeBufferPointer { (vp) throws(NumericsError) in
                    try context.storage.withUnsafeMutableBufferPointer { (cp) throws(NumericsError) in
                        try BLAS.gemm(
                            .none, .none, m: n, n: d, k: total, a: sp, lda: total,
                            b: UnsafeBufferPointer(rebasing: vp[shared...]), ldb: kv,
                            c: UnsafeMutableBufferPointer(rebasing: cp[(head * d)...]), ldc: h)
                    }
                }
            }
        }
        return context
    }

    /// ``attention(_:keys:values:start:)`` of one query row, which sees all `total` positions (a decode step): per
    /// head two sgemv calls, `K_g·q_h` and `V_gᵀ·s`, instead of two sgemm calls of one row.
    private func attentionRow(
        _ q: Matrix, keys: [Float], values: [Float], positions total: Int, scale: Float
    ) throws(NumericsError) -> Matrix {
        let (h, d, kv) = (config.hiddenSize, config.headSize, config.kvSize)
        let group = config.heads / config.kvHeads
        var context = Matrix(rows: 1, columns: h)
        var scores = [Float](repeating: 0, count: total)
        for head in 0..<config.heads {
            let shared = (head / group) * d
            try q.storage.withUnsafeBufferPointer { (qp) throws(NumericsError) in
                try keys.withUnsafeBufferPointer { (kp) throws(NumericsError) in
                    try scores.withUnsafeMutableBufferPointer { (sp) throws(NumericsError) in
                        try BLAS.gemv(
                            .none, rows: total, columns: d, alpha: scale,
                            a: UnsafeBufferPointer(rebasing: kp[shared...]), lda: kv,
                            x: UnsafeBufferPointer(rebasing: qp[(head * d)..<((head + 1) * d)]), y: sp)
                        Self.causalSoftmax(sp, rows: 1, columns: total, start: total - 1)
                    }
                }
            }
            try scores.withUnsafeBufferPointer { (sp) throws(NumericsError) in
                try values.withUnsafeBufferPointer { (vp) throws(NumericsError) in
                    try context.storage.withUnsafeMutableBufferPointer { (cp) throws(NumericsError) in
                        try BLAS.gemv(
                            .transposed, rows: total, columns: d, a: UnsafeBufferPointer(rebasing: vp[shared...]),
                            lda: kv, x: sp,
                            y: UnsafeMutableBufferPointer(rebasing: cp[(head * d)..<((head + 1) * d)]))
                    }
                }
            }
        }
        return context
    }

    /// Row `i` softmax over its first `start + i + 1` entries, the rest zero.
    static func causalSoftmax(_ s: UnsafeMutableBufferPointer<Float>, rows: Int, columns: Int, start: Int) {
        for i in 0..<rows {
            let row = i * columns
            let seen = start + i + 1
            var largest = -Float.infinity
            for j in 0..<seen { largest = max(largest, s[row + j]) }
            var total: Float = 0
            for j in 0..<seen {
                let e = expf(s[row + j] - largest)
                s[row + j] = e
                total += e
            }
            let inverse = 1 / total
            for j in 0..<seen { s[row + j] *= inverse }
            for j in seen..<columns { s[row + j] = 0 }
        }
    }

    /// `g ← silu(g) ⊙ u`.
    static func swiGLU(_ g: inout Matrix, _ u: Matrix) {
        g.storage.withUnsafeMutableBufferPointer { gp in
            u.storage.withUnsafeBufferPointer { up in
                for i in 0..<gp.count { gp[i] = gp[i] / (1 + expf(-gp[i])) * up[i] }
            }
        }
    }
}

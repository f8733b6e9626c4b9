import Foundation
import RetortNumerics

/// The shape of a BERT-family encoder, from a Hugging Face `config.json`.
public struct BertConfig: Sendable, Equatable, Codable {
    /// Width `H` of every token vector.
    public var hiddenSize: Int
    /// Transformer layers.
    public var layers: Int
    /// Attention heads (`H` divisible by it).
    public var heads: Int
    /// Width of the feed-forward layer.
    public var intermediateSize: Int
    /// Positions the position table holds.
    public var maxPositions: Int
    /// Rows of the word table.
    public var vocabularySize: Int
    /// Layer-norm `ε`.
    public var layerNormEpsilon: Float

    /// A configuration from its fields.
    public init(
        hiddenSize: Int, layers: Int, heads: Int, intermediateSize: Int, maxPositions: Int, vocabularySize: Int,
        layerNormEpsilon: Float = 1e-12
    ) {
        (self.hiddenSize, self.layers, self.heads, self.intermediateSize) = (
            hiddenSize, layers, heads, intermediateSize
        )
        (self.maxPositions, self.vocabularySize, self.layerNormEpsilon) = (
            maxPositions, vocabularySize, layerNormEpsilon
        )
    }

    /// Reads `config.json`; only BERT-style absolute-position encoders with GELU are accepted.
    public init(file: URL) throws(StudentError) {
        guard let data = try? Data(contentsOf: file),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { throw StudentError("cannot read config.json as a JSON object", file: file.path) }
        func int(_ key: String) throws(StudentError) -> Int {
            guard let value = object[key] as? Int, (1...(1 << 24)).contains(value) else {
                throw StudentError(
                    "config.json needs \"\(key)\" as a whole number in [1, 16777216], got \(object[key] ?? "nothing")",
                    file: file.path)
            }
            return value
        }
        let activation = object["hidden_act"] as? String ?? "gelu"
        guard activation == "gelu" else {
            throw StudentError(
                "hidden_act \"\(activation)\" is not supported; Retort runs gelu (erf) encoders", file: file.path)
        }
        if let kind = object["position_embedding_type"] as? String, kind != "absolute" {
            throw StudentError("position_embedding_type \"\(kind)\" is not supported (absolute only)", file: file.path)
        }
        self.init(
            hiddenSize: try int("hidden_size"), layers: try int("num_hidden_layers"),
            heads: try int("num_attention_heads"), intermediateSize: try int("intermediate_size"),
            maxPositions: try int("max_position_embeddings"), vocabularySize: try int("vocab_size"),
            layerNormEpsilon: Float(object["layer_norm_eps"] as? Double ?? 1e-12))
        guard hiddenSize % heads == 0 else {
            throw StudentError(
                "hidden_size \(hiddenSize) is not divisible by num_attention_heads \(heads)", file: file.path)
        }
    }
}

/// A BERT-family encoder run on the CPU through OpenBLAS: embeddings (word + position + token type 0, layer norm),
/// then per layer self-attention (`Q, K, V = X·Wᵀ + b` as three sgemms over every token of a batch, per sentence and
/// head `softmax(Q_h·K_hᵀ/√d)·V_h`), output projection, residual and layer norm, and the GELU feed-forward block with
/// its residual and layer norm; sentence vectors are the mean of the token vectors (then L2-normalised when the
/// model folder's modules.json lists a Normalize step, as sentence-transformers does).
///
/// Linear weights keep PyTorch's `out × in` layout; sgemm reads them transposed, so nothing is copied on load.
public struct BertEncoder: Sendable {
    /// An affine map `y = x·Wᵀ + b`, `W` stored `out × in`.
    public struct Linear: Sendable, Equatable {
        /// `out × in`.
        public var weight: Matrix
        /// `out` biases.
        public var bias: [Float]

        func callAsFunction(_ x: Matrix) throws(NumericsError) -> Matrix {
            var y = try Matrix.product(x, weight, transposeB: .transposed)
            Kernels.addBias(bias, to: &y, relu: false)
            return y
        }
    }

    /// Layer norm's scale and shift.
    public struct Norm: Sendable, Equatable {
        /// Scale `γ`.
        public var gamma: [Float]
        /// Shift `β`.
        public var beta: [Float]
    }

    /// One transformer layer.
    public struct Layer: Sendable, Equatable {
        /// Attention projections.
        public var query: Linear, key: Linear, value: Linear, attentionOutput: Linear
        /// Norm after attention.
        public var attentionNorm: Norm
        /// Feed-forward up and down projections.
        public var intermediate: Linear, output: Linear
        /// Norm after the feed-forward block.
        public var outputNorm: Norm
    }

    /// The configuration (its `layers` is the number kept).
    public private(set) var config: BertConfig
    /// Stored precision of the weight matrices (biases and norms stay fp32).
    public private(set) var precision: Precision = .fp32
    /// `vocab × H`.
    public var wordEmbeddings: Matrix
    /// `positions × H`.
    public var positionEmbeddings: Matrix
    /// Token type 0's vector.
    public var tokenTypeEmbedding: [Float]
    /// Norm of the embedding sum.
    public var embeddingNorm: Norm
    /// The layers kept, input side first.
    public var layers: [Layer]
    /// Whether sentence vectors are L2-normalised after pooling.
    public var normalizes: Bool

    /// Loads `config.json`, `model.safetensors` (names with or without a `bert.` prefix) and modules.json (for the
    /// Normalize step) from a Hugging Face model folder.
    public init(folder: URL) throws(StudentError) {
        let config = try BertConfig(file: folder.appendingPathComponent("config.json"))
        let weightsURL = folder.appendingPathComponent("model.safetensors")
        guard let data = try? Data(contentsOf: weightsURL, options: .mappedIfSafe) else {
            throw StudentError("cannot read model.safetensors; the encoder folder needs one", file: weightsURL.path)
        }
        let tensors = try Safetensors.decode(data, file: weightsURL.path).tensors
        func tensor(_ name: String, _ shape: [Int]) throws(StudentError) -> [Float] {
            guard let found = tensors[name] ?? tensors["bert." + name] else {
                throw StudentError("missing tensor \"\(name)\"; is this a BERT-family model?", file: weightsURL.path)
            }
            guard found.shape == shape, let values = found.floats() else {
                throw StudentError(
                    "tensor \"\(name)\" has shape \(found.shape) \(found.dtype.rawValue), expected \(shape) F32 or F16",
                    file: weightsURL.path)
            }
            return values
        }
        var precision = Precision.fp32
        func matrix(_ name: String, _ rows: Int, _ columns: Int) throws(StudentError) -> Matrix {
            // Retort's own int8 exports: I8 codes and one F32 scale per row.
            if let codes = (tensors[name] ?? tensors["bert." + name]).flatMap({ $0.int8s() }) {
                guard codes.count == rows * columns, let scales = tensors[name + "_scale"]?.floats(),
                    scales.count == rows
                else {
                    throw StudentError(
                        "tensor \"\(name)\" is I8 but not [\(rows), \(columns)] with an F32 \(name)_scale of \(rows)",
                        file: weightsURL.path)
                }
                precision = .int8
                var values = [Float](repeating: 0, count: rows * columns)
                for r in 0..<rows {
                    for c in 0..<columns { values[r * columns + c] = Float(codes[r * columns + c]) * scales[r] }
                }
                return Matrix(rows: rows, columns: columns, storage: values)
            }
            if (tensors[name] ?? tensors["bert." + name])?.dtype == .f16 { precision = .fp16 }
            return Matrix(rows: rows, columns: columns, storage: try tensor(name, [rows, columns]))
        }
        func linear(_ name: String, out: Int, in input: Int) throws(StudentError) -> Linear {
            Linear(weight: try matrix(name + ".weight", out, input), bias: try tensor(name + ".bias", [out]))
        }
        func norm(_ name: String, _ width: Int) throws(StudentError) -> Norm {
            Norm(gamma: try tensor(name + ".weight", [width]), beta: try tensor(name + ".bias", [width]))
        }
        let (h, i) = (config.hiddenSize, config.intermediateSize)
        self.config = config
        wordEmbeddings = try matrix("embeddings.word_embeddings.weight", config.vocabularySize, h)
        positionEmbeddings = try matrix("embeddings.position_embeddings.weight", config.maxPositions, h)
        let types =
            tensors["embeddings.token_type_embeddings.weight"]
            ?? tensors["bert.embeddings.token_type_embeddings.weight"]
        tokenTypeEmbedding =
            types.flatMap { $0.floats() }.map { Array($0.prefix(h)) } ?? [Float](repeating: 0, count: h)
        embeddingNorm = try norm("embeddings.LayerNorm", h)
        var layers: [Layer] = []
        for index in 0..<config.layers {
            let prefix = "encoder.layer.\(index)."
            layers.append(
                Layer(
                    query: try linear(prefix + "attention.self.query", out: h, in: h),
                    key: try linear(prefix + "attention.self.key", out: h, in: h),
                    value: try linear(prefix + "attention.self.value", out: h, in: h),
                    attentionOutput: try linear(prefix + "attention.output.dense", out: h, in: h),
                    attentionNorm: try norm(prefix + "attention.output.LayerNorm", h),
                    intermediate: try linear(prefix + "intermediate.dense", out: i, in: h),
                    output: try linear(prefix + "output.dense", out: h, in: i),
                    outputNorm: try norm(prefix + "output.LayerNorm", h)))
        }
        self.layers = layers
        var normalizes = false
        if let modules = try? Data(contentsOf: folder.appendingPathComponent("modules.json")),
            let list = try? JSONSerialization.jsonObject(with: modules) as? [[String: Any]]
        {
            normalizes = list.contains { ($0["type"] as? String)?.hasSuffix("Normalize") == true }
        }
        self.normalizes = normalizes
        self.precision = precision
    }

    /// The named tensors of an export at this encoder's precision (int8 matrices as I8 codes with an F32
    /// `<name>_scale` per row, fp16 as F16, the rest F32), the position table cut to its first `positions` rows.
    public func exportTensors(positions: Int) -> [String: Tensor] {
        var tensors: [String: Tensor] = [:]
        func put(_ name: String, _ m: Matrix) {
            switch precision {
            case .fp32: tensors[name] = Tensor(m.storage, shape: [m.rows, m.columns])
            case .fp16: tensors[name] = Tensor(m.storage.map { Float16($0) }, shape: [m.rows, m.columns])
            case .int8:
                var codes = [Int8](repeating: 0, count: m.storage.count)
                var scales = [Float](repeating: 1, count: m.rows)
                for r in 0..<m.rows {
                    let row = (r * m.columns)..<((r + 1) * m.columns)
                    let largest = m.storage[row].reduce(0) { max($0, abs($1)) }
                    scales[r] = largest > 0 ? largest / 127 : 1
                    for index in row {
                        codes[index] = Int8(max(-127, min(127, (m.storage[index] / scales[r]).rounded())))
                    }
                }
                tensors[name] = Tensor(codes, shape: [m.rows, m.columns])
                tensors[name + "_scale"] = Tensor(scales, shape: [m.rows])
            }
        }
        func put(_ name: String, _ vector: [Float]) { tensors[name] = Tensor(vector, shape: [vector.count]) }
        func put(_ name: String, _ linear: Linear) {
            put(name + ".weight", linear.weight)
            put(name + ".bias", linear.bias)
        }
        func put(_ name: String, _ norm: Norm) {
            put(name + ".weight", norm.gamma)
            put(name + ".bias", norm.beta)
        }
        let h = config.hiddenSize
        let kept = min(positions, positionEmbeddings.rows)
        put("embeddings.word_embeddings.weight", wordEmbeddings)
        put(
            "embeddings.position_embeddings.weight",
            Matrix(rows: kept, columns: h, storage: Array(positionEmbeddings.storage.prefix(kept * h))))
        tensors["embeddings.token_type_embeddings.weight"] = Tensor(tokenTypeEmbedding, shape: [1, h])
        put("embeddings.LayerNorm", embeddingNorm)
        for (index, layer) in layers.enumerated() {
            let p = "encoder.layer.\(index)."
            put(p + "attention.self.query", layer.query)
            put(p + "attention.self.key", layer.key)
            put(p + "attention.self.value", layer.value)
            put(p + "attention.output.dense", layer.attentionOutput)
            put(p + "attention.output.LayerNorm", layer.attentionNorm)
            put(p + "intermediate.dense", layer.intermediate)
            put(p + "output.dense", layer.output)
            put(p + "output.LayerNorm", layer.outputNorm)
        }
        return tensors
    }

    /// Bytes of ``exportTensors(positions:)`` at `precision`, without building them: weight matrices at the
    /// precision's width (plus one F32 scale per row at int8), vectors and norms F32.
    public func exportBytes(positions: Int, at precision: Precision) -> Int {
        let (h, i) = (config.hiddenSize, config.intermediateSize)
        func matrix(_ rows: Int, _ columns: Int) -> Int {
            rows * columns * precision.bytesPerWeight + (precision == .int8 ? rows * 4 : 0)
        }
        let embeddings =
            matrix(config.vocabularySize, h) + matrix(min(positions, positionEmbeddings.rows), h) + 3 * h * 4
        let perLayer = 4 * matrix(h, h) + matrix(i, h) + matrix(h, i) + (4 * h + i + h) * 4 + 4 * h * 4
        return embeddings + layers.count * perLayer
    }

    /// config.json of an export with `positions` positions (what ``init(folder:)`` reads back).
    public func configJSON(positions: Int) throws -> Data {
        let object: [String: Any] = [
            "architectures": ["BertModel"], "model_type": "bert", "hidden_act": "gelu",
            "hidden_size": config.hiddenSize, "num_hidden_layers": layers.count, "num_attention_heads": config.heads,
            "intermediate_size": config.intermediateSize,
            "max_position_embeddings": min(positions, positionEmbeddings.rows),
            "vocab_size": config.vocabularySize, "type_vocab_size": 1,
            "layer_norm_eps": Double(config.layerNormEpsilon), "position_embedding_type": "absolute",
        ]
        return try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
    }

    /// The first `count` layers only (the embeddings and those layers' weights are what the truncated model keeps).
    public func truncated(toLayers count: Int) -> BertEncoder {
        var copy = self
        copy.layers = Array(layers.prefix(max(0, min(count, layers.count))))
        copy.config.layers = copy.layers.count
        return copy
    }

    /// Every weight matrix (embedding tables included) converted to `target`: fp16 rounded to nearest, or int8
    /// symmetric per output channel (per row of the `out × in` matrices and of the embedding tables); the forward pass
    /// then uses exactly the converted values. Biases and norms stay fp32.
    public func converted(to target: Precision) -> BertEncoder {
        guard target != precision, target != .fp32 else { return self }
        func convert(_ m: Matrix) -> Matrix {
            var out = m
            switch target {
            case .fp32: break
            case .fp16: out.storage = m.storage.map { Float(Float16($0)) }
            case .int8:
                for r in 0..<m.rows {
                    let row = (r * m.columns)..<((r + 1) * m.columns)
                    let largest = m.storage[row].reduce(0) { max($0, abs($1)) }
                    let scale = largest > 0 ? largest / 127 : 1
                    for index in row {
                        out.storage[index] = max(-127, min(127, (m.storage[index] / scale).rounded())) * scale
                    }
                }
            }
            return out
        }
        func convert(_ l: Linear) -> Linear { Linear(weight: convert(l.weight), bias: l.bias) }
        var copy = self
        copy.precision = target
        copy.wordEmbeddings = convert(wordEmbeddings)
        copy.positionEmbeddings = convert(positionEmbeddings)
        copy.layers = layers.map {
            Layer(
                query: convert($0.query), key: convert($0.key), value: convert($0.value),
                attentionOutput: convert($0.attentionOutput), attentionNorm: $0.attentionNorm,
                intermediate: convert($0.intermediate), output: convert($0.output), outputNorm: $0.outputNorm)
        }
        return copy
    }

    /// Parameters kept (embedding tables, the kept layers, norms and biases).
    public var parameterCount: Int {
        let h = config.hiddenSize
        let perLayer = 4 * (h * h + h) + 2 * h * config.intermediateSize + config.intermediateSize + h + 4 * h
        return (config.vocabularySize + config.maxPositions + 1) * h + 2 * h + layers.count * perLayer
    }

    /// Multiply-adds × 2 for one sentence of `tokens` tokens: per layer `8·H²` (Q, K, V, output) `+ 4·H·I`
    /// (feed-forward) per token, plus `4·n·H` per token for the attention scores and the weighted sum.
    public func flops(tokens n: Int) -> Int {
        let (h, i) = (config.hiddenSize, config.intermediateSize)
        return layers.count * n * (8 * h * h + 4 * h * i + 4 * n * h)
    }

    /// Sentence vectors (`sentences × H`) after each layer count in `depths` (0 = the embeddings alone), from one pass
    /// through the deepest; batches of `batchSize` sentences share each sgemm.
    public func embed(_ sequences: [[Int32]], depths: [Int], batchSize: Int = 64) throws(NumericsError) -> [Int: Matrix]
    {
        let h = config.hiddenSize
        let deepest = depths.max() ?? layers.count
        precondition(deepest <= layers.count, "cannot pool after layer \(deepest) of \(layers.count)")
        var pooled: [Int: Matrix] = [:]
        for depth in depths { pooled[depth] = Matrix(rows: sequences.count, columns: h) }
        var start = 0
        while start < sequences.count {
            let batch = Array(sequences[start..<min(start + batchSize, sequences.count)])
            let lengths = batch.map(\.count)
            var x = embeddings(batch)
            for depth in 0...deepest {
                if depth > 0 { x = try layer(layers[depth - 1], x, lengths: lengths) }
                guard var vectors = pooled.removeValue(forKey: depth) else { continue }
                var offset = 0
                for (index, length) in lengths.enumerated() {
                    let target = (start + index) * h
                    var norm: Float = 0
                    for j in 0..<h {
                        var total: Float = 0
                        for t in offset..<(offset + length) { total += x.storage[t * h + j] }
                        let mean = total / Float(max(length, 1))
                        vectors.storage[target + j] = mean
                        norm += mean * mean
                    }
                    if normalizes && norm > 0 {
                        let scale = 1 / max(norm.squareRoot(), 1e-12)
                        for j in 0..<h { vectors.storage[target + j] *= scale }
                    }
                    offset += length
                }
                pooled[depth] = vectors
            }
            start += batchSize
        }
        return pooled
    }

    /// Word + position + token-type vectors of every token of the batch, layer-normed (`tokens × H`).
    func embeddings(_ batch: [[Int32]]) -> Matrix {
        let h = config.hiddenSize
        var x = Matrix(rows: batch.reduce(0) { $0 + $1.count }, columns: h)
        var row = 0
        for sequence in batch {
            for (position, token) in sequence.enumerated() {
                let word = Int(token) * h
                let place = min(position, config.maxPositions - 1) * h
                for j in 0..<h {
                    x.storage[row * h + j] =
                        wordEmbeddings.storage[word + j] + positionEmbeddings.storage[place + j] + tokenTypeEmbedding[j]
                }
                row += 1
            }
        }
        layerNorm(&x, embeddingNorm)
        return x
    }

    /// One transformer layer over the batch's tokens (`lengths` sentences, contiguous rows of `x`).
    func layer(_ layer: Layer, _ x: Matrix, lengths: [Int]) throws(NumericsError) -> Matrix {
        let h = config.hiddenSize
        let headWidth = h / config.heads
        let (q, k, v) = (try layer.query(x), try layer.key(x), try layer.value(x))
        var context = Matrix(rows: x.rows, columns: h)
        let scale = 1 / Float(headWidth).squareRoot()
        var offset = 0
        for n in lengths {
            guard n > 0 else { continue }
            var s = Matrix(rows: n, columns: n)
            for head in 0..<config.heads {
                let column = offset * h + head * headWidth
                try q.storage.withUnsafeBufferPointer { (qp) throws(NumericsError) in
                    try k.storage.withUnsafeBufferPointer { (kp) throws(NumericsError) in
                        try s.storage.withUnsafeMutableBufferPointer { (sp) throws(NumericsError) in
                            try BLAS.gemm(
                                .none, .transposed, m: n, n: n, k: headWidth, alpha: scale,
                                a: UnsafeBufferPointer(rebasing: qp[column...]), lda: h,
                                b: UnsafeBufferPointer(rebasing: kp[column...]), ldb: h, c: sp, ldc: n)
                        }
                    }
                }
                Kernels.softmaxRows(&s)
                try s.storage.withUnsafeBufferPointer { (sp) throws(NumericsError) in
                    try v.storage.withUnsafeBufferPointer { (vp) throws(NumericsError) in
                        try context.storage.withUnsafeMutableBufferPointer { (cp) throws(NumericsError) in
                            try BLAS.gemm(
                                .none, .none, m: n, n: headWidth, k: n, a: sp, lda: n,
                                b: UnsafeBufferPointer(rebasing: vp[column...]), ldb: h,
                                c: UnsafeMutableBufferPointer(rebasing: cp[column...]), ldc: h)
                        }
                    }
                }
            }
            offset += n
        }
        var attended = try layer.attentionOutput(context)
        try attended.add(x)
        layerNorm(&attended, layer.attentionNorm)
        var hidden = try layer.intermediate(attended)
        Self.gelu(&hidden)
        var output = try layer.output(hidden)
        try output.add(attended)
        layerNorm(&output, layer.outputNorm)
        return output
    }

    /// Row-wise `(x − mean) / √(var + ε) · γ + β`, in place.
    func layerNorm(_ x: inout Matrix, _ norm: Norm) {
        let h = x.columns
        let epsilon = config.layerNormEpsilon
        x.storage.withUnsafeMutableBufferPointer { values in
            for r in 0..<x.rows {
                let base = r * h
                var mean: Float = 0
                for j in 0..<h { mean += values[base + j] }
                mean /= Float(h)
                var variance: Float = 0
                for j in 0..<h {
                    let d = values[base + j] - mean
                    variance += d * d
                }
                let inverse = 1 / (variance / Float(h) + epsilon).squareRoot()
                for j in 0..<h { values[base + j] = (values[base + j] - mean) * inverse * norm.gamma[j] + norm.beta[j] }
            }
        }
    }

    /// `GELU(x) = x · Φ(x) = x/2 · (1 + erf(x/√2))`, in place.
    static func gelu(_ x: inout Matrix) {
        x.storage.withUnsafeMutableBufferPointer { values in
            for i in values.indices {
                let value = values[i]
                values[i] = 0.5 * value * (1 + erff(value * 0.707_106_77))
            }
        }
    }
}

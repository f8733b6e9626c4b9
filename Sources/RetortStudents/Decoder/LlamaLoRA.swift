import Foundation
import RetortNumerics

/// A projection of a Llama block that a LoRA adapter can wrap.
public enum LoRATarget: String, Sendable, Codable, CaseIterable {
    /// The query projection (`H × H`).
    case query
    /// The key projection (`kvSize × H`).
    case key
    /// The value projection (`kvSize × H`).
    case value
    /// The attention output projection (`H × H`).
    case output
    /// The SwiGLU gate projection (`F × H`).
    case gate
    /// The SwiGLU up projection (`F × H`).
    case up
    /// The SwiGLU down projection (`H × F`).
    case down

    /// The GGUF name of the wrapped weight inside a block (`attn_q`, `ffn_down`, ...).
    public var tensorName: String {
        switch self {
        case .query: "attn_q"
        case .key: "attn_k"
        case .value: "attn_v"
        case .output: "attn_output"
        case .gate: "ffn_gate"
        case .up: "ffn_up"
        case .down: "ffn_down"
        }
    }

    /// `(out, in)` of the wrapped weight for a decoder of `config`.
    func shape(_ config: LlamaConfig) -> (rows: Int, columns: Int) {
        let (h, f, kv) = (config.hiddenSize, config.feedForwardSize, config.kvSize)
        switch self {
        case .query, .output: return (h, h)
        case .key, .value: return (kv, h)
        case .gate, .up: return (f, h)
        case .down: return (h, f)
        }
    }

    /// The wrapped weight of `layer`.
    func weight(_ layer: LlamaDecoder.Layer) -> Matrix {
        switch self {
        case .query: layer.query
        case .key: layer.key
        case .value: layer.value
        case .output: layer.output
        case .gate: layer.gate
        case .up: layer.up
        case .down: layer.down
        }
    }

    /// `layer` with the wrapped weight replaced by `weight`.
    func replacing(_ layer: inout LlamaDecoder.Layer, with weight: Matrix) {
        switch self {
        case .query: layer.query = weight
        case .key: layer.key = weight
        case .value: layer.value = weight
        case .output: layer.output = weight
        case .gate: layer.gate = weight
        case .up: layer.up = weight
        case .down: layer.down = weight
        }
    }
}

/// How to LoRA-fine-tune a ``LlamaDecoder``: adapters of rank `rank` on the `targets` projections of the top `depth`
/// blocks (`y = x·Wᵀ + (alpha/rank)·(x·Aᵀ)·Bᵀ`, `A` `rank × in` seeded uniform in `±1/√in`, `B` `out × rank` zero), and
/// the Adam schedule that trains them.
public struct LoRAConfig: Sendable, Codable, Equatable {
    /// Adapter rank `r`.
    public var rank: Int
    /// Scale numerator: the adapter's output is multiplied by `alpha / rank`.
    public var alpha: Double
    /// Number of top blocks adapted (1 … layers); the blocks below stay frozen and their output is cached.
    public var depth: Int
    /// Adapted projections, in ``LoRATarget/allCases`` order once normalized.
    public var targets: [LoRATarget]
    /// Passes over the training examples.
    public var epochs: Int
    /// Adam step size.
    public var learningRate: Double
    /// Examples per Adam step (gradients summed over the batch's target tokens, then averaged).
    public var batchSize: Int
    /// When set, train on at most this many examples drawn with `seed`.
    public var maxTrainRows: Int?
    /// Seed of `A`'s initialization, the subsample and the shuffling order.
    public var seed: UInt64

    /// The projections adapted when none are named: every one but the key projection. On SmolLM2-135M-Instruct
    /// (ha-extract-en, 512 rows, rank 8, depth 2, 2 epochs) adding the key projection changed nothing measurable
    /// (loss 0.609 vs 0.621, +8% parameters) while query and value alone trained far worse (loss 1.52): the MLP
    /// projections carry most of the gain.
    public static let defaultTargets: [LoRATarget] = [.query, .value, .output, .gate, .up, .down]

    /// A configuration; the defaults are the ones measured on SmolLM2-135M-Instruct (a learning rate of 0.005 reached
    /// a lower loss in 2 epochs than 0.002: 0.44 vs 0.62).
    public init(
        rank: Int = 8, alpha: Double = 16, depth: Int = 2, targets: [LoRATarget] = LoRAConfig.defaultTargets,
        epochs: Int = 2, learningRate: Double = 5e-3, batchSize: Int = 8, maxTrainRows: Int? = nil, seed: UInt64 = 1
    ) {
        self.rank = rank
        self.alpha = alpha
        self.depth = depth
        self.targets = targets
        self.epochs = epochs
        self.learningRate = learningRate
        self.batchSize = batchSize
        self.maxTrainRows = maxTrainRows
        self.seed = seed
    }

    /// `alpha / rank`.
    public var scale: Float { Float(alpha / Double(rank)) }

    /// The targets without repeats, in ``LoRATarget/allCases`` order.
    var orderedTargets: [LoRATarget] { LoRATarget.allCases.filter(targets.contains) }

    /// Checks the configuration against a decoder of `layers` blocks; every problem in one message.
    func validate(layers: Int, file: String? = nil) throws(StudentError) {
        var problems: [String] = []
        if rank < 1 { problems.append("rank is \(rank); use 1 or more (8 is typical)") }
        if !(alpha.isFinite && alpha > 0) { problems.append("alpha is \(alpha); use a positive number (2·rank)") }
        if !(1...max(1, layers)).contains(depth) { problems.append("depth is \(depth); use 1 to \(layers)") }
        if targets.isEmpty { problems.append("no targets; name at least one of \(Self.targetNames)") }
        if epochs < 0 { problems.append("epochs is \(epochs); use 0 or more") }
        if !(learningRate.isFinite && learningRate > 0) {
            problems.append("learningRate is \(learningRate); use a positive number such as 0.002")
        }
        if batchSize < 1 { problems.append("batchSize is \(batchSize); use 1 or more") }
        if let rows = maxTrainRows, rows < 1 {
            problems.append("maxTrainRows is \(rows); use 1 or more, or leave it out")
        }
        guard problems.isEmpty else {
            throw StudentError("bad LoRA configuration: " + problems.joined(separator: "; "), file: file)
        }
    }

    static var targetNames: String { LoRATarget.allCases.map(\.rawValue).joined(separator: ", ") }
}

/// Trained (or freshly initialized) LoRA adapters for the top ``LoRAConfig/depth`` blocks of a ``LlamaDecoder``.
public struct LoRAAdapters: Sendable {
    /// One adapter: `A` (`rank × in`) and `B` (`out × rank`) of one projection of one block.
    struct Pair: Sendable, Equatable {
        var layer: Int
        var target: LoRATarget
        var a: Matrix
        var b: Matrix
    }

    /// The configuration the adapters were built with.
    public let config: LoRAConfig
    /// The decoder shape the adapters fit.
    public let decoder: LlamaConfig
    /// Layer-major, targets in ``LoRAConfig/orderedTargets`` order.
    var pairs: [Pair]

    /// Fresh adapters: `A` uniform in `±1/√in` from `config.seed`, `B` zero (so the adapted decoder starts equal to
    /// the frozen one).
    init(config: LoRAConfig, decoder: LlamaConfig) throws(StudentError) {
        try config.validate(layers: decoder.layers)
        self.config = config
        self.decoder = decoder
        var generator = SeededGenerator(seed: config.seed ^ 0x4C6F_5241)
        var pairs: [Pair] = []
        for layer in Self.layers(config: config, decoder: decoder) {
            for target in config.orderedTargets {
                let (out, inputs) = target.shape(decoder)
                let bound = 1 / Float(inputs).squareRoot()
                pairs.append(
                    Pair(
                        layer: layer, target: target,
                        a: Matrix(
                            rows: config.rank, columns: inputs, uniformFrom: -bound, to: bound, generator: &generator),
                        b: Matrix(rows: out, columns: config.rank)))
            }
        }
        self.pairs = pairs
    }

    /// The adapted block indices: the top `depth` ones.
    static func layers(config: LoRAConfig, decoder: LlamaConfig) -> Range<Int> {
        (decoder.layers - config.depth)..<decoder.layers
    }

    /// The first adapted block.
    var firstLayer: Int { decoder.layers - config.depth }

    /// The adapter of `target` in `layer`, if adapted.
    func pair(layer: Int, target: LoRATarget) -> Pair? {
        let targets = config.orderedTargets
        guard layer >= firstLayer, layer < decoder.layers, let t = targets.firstIndex(of: target) else { return nil }
        return pairs[(layer - firstLayer) * targets.count + t]
    }

    /// Index into ``pairs`` of `target` in `layer`, if adapted.
    func pairIndex(layer: Int, target: LoRATarget) -> Int? {
        let targets = config.orderedTargets
        guard layer >= firstLayer, layer < decoder.layers, let t = targets.firstIndex(of: target) else { return nil }
        return (layer - firstLayer) * targets.count + t
    }

    /// Trainable parameters: `rank·(in + out)` per adapter.
    public var parameterCount: Int { pairs.reduce(0) { $0 + $1.a.storage.count + $1.b.storage.count } }

    /// `decoder` with every adapted weight replaced by `W + (alpha/rank)·B·A` (one sgemm each), so prefill, step and
    /// generation run at the frozen model's speed.
    /// - Throws: ``StudentError`` when `decoder` is not the shape the adapters were made for.
    public func merged(into decoder: LlamaDecoder) throws(StudentError) -> LlamaDecoder {
        guard decoder.config == self.decoder else {
            throw StudentError(
                "the adapters were trained for a decoder with \(self.decoder.layers) blocks of width "
                    + "\(self.decoder.hiddenSize), not this one (\(decoder.config.layers) blocks of width "
                    + "\(decoder.config.hiddenSize)); merge them into the model they were trained on")
        }
        var result = decoder
        let scale = config.scale
        do {
            for pair in pairs {
                var weight = pair.target.weight(result.layers[pair.layer])
                try Matrix.multiply(pair.b, pair.a, alpha: scale, beta: 1, into: &weight)
                pair.target.replacing(&result.layers[pair.layer], with: weight)
            }
        } catch {
            throw StudentError("merging the LoRA adapters failed: \(error)")
        }
        return result
    }

    /// The name of `pair`'s tensor: `blk.29.attn_q.lora_a` or `.lora_b`.
    static func tensorName(layer: Int, target: LoRATarget, matrix: String) -> String {
        "blk.\(layer).\(target.tensorName).\(matrix)"
    }

    /// The adapters as safetensors tensors (`blk.<layer>.<attn_q|...>.lora_a` of shape `[rank, in]` and `.lora_b` of
    /// shape `[out, rank]`), F32 for `.fp32`, F16 (rounded to nearest) for `.fp16`.
    /// - Throws: ``StudentError`` for `.int8`: adapters are stored as floats.
    public func tensors(precision: Precision) throws(StudentError) -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        func tensor(_ m: Matrix) -> Tensor {
            precision == .fp32
                ? Tensor(m.storage, shape: [m.rows, m.columns])
                : Tensor(m.storage.map { Float16($0) }, shape: [m.rows, m.columns])
        }
        guard precision != .int8 else {
            throw StudentError("LoRA adapters are stored as fp32 or fp16, not int8; choose one of those")
        }
        for pair in pairs {
            out[Self.tensorName(layer: pair.layer, target: pair.target, matrix: "lora_a")] = tensor(pair.a)
            out[Self.tensorName(layer: pair.layer, target: pair.target, matrix: "lora_b")] = tensor(pair.b)
        }
        return out
    }

    /// Adapters loaded from ``tensors(precision:)``'s tensors and their configuration, checked against a decoder of
    /// shape `decoder`: every adapter the configuration names must be there with its shape, and no LoRA tensor may
    /// name a block outside the top `depth` or a projection outside the targets.
    /// - Parameter file: where the tensors came from, for messages.
    public init(tensors: [String: Tensor], config: LoRAConfig, decoder: LlamaConfig, file: String) throws(StudentError)
    {
        try config.validate(layers: decoder.layers, file: file)
        let adapted = Self.layers(config: config, decoder: decoder)
        for name in tensors.keys.sorted() where name.hasSuffix(".lora_a") || name.hasSuffix(".lora_b") {
            let parts = name.split(separator: ".")
            guard parts.count == 4, parts[0] == "blk", let layer = Int(parts[1]),
                let target = LoRATarget.allCases.first(where: { $0.tensorName == parts[2] })
            else {
                throw StudentError(
                    "tensor \"\(name)\" is not a LoRA adapter name; expected blk.<layer>.<attn_q|attn_k|attn_v|"
                        + "attn_output|ffn_gate|ffn_up|ffn_down>.lora_a or .lora_b", file: file)
            }
            guard adapted.contains(layer) else {
                throw StudentError(
                    "tensor \"\(name)\" adapts block \(layer), outside the top \(config.depth) blocks "
                        + "(\(adapted.lowerBound) to \(adapted.upperBound - 1)) of this \(decoder.layers)-block model; "
                        + "check the configuration's depth and the model", file: file)
            }
            guard config.targets.contains(target) else {
                throw StudentError(
                    "tensor \"\(name)\" adapts \(target.rawValue), which the configuration's targets "
                        + "(\(config.orderedTargets.map(\.rawValue).joined(separator: ", "))) leave out", file: file)
            }
        }
        func matrix(_ name: String, rows: Int, columns: Int) throws(StudentError) -> Matrix {
            guard let tensor = tensors[name] else {
                throw StudentError(
                    "tensor \"\(name)\" is missing; the configuration (rank \(config.rank), depth \(config.depth), "
                        + "targets \(config.orderedTargets.map(\.rawValue).joined(separator: ", "))) needs it",
                    file: file)
            }
            guard tensor.shape == [rows, columns] else {
                throw StudentError(
                    "tensor \"\(name)\" has shape \(tensor.shape), expected [\(rows), \(columns)] for rank "
                        + "\(config.rank) on this model", file: file)
            }
            guard let values = tensor.floats(), values.allSatisfy(\.isFinite) else {
                throw StudentError(
                    "tensor \"\(name)\" must hold finite F32 or F16 values, found \(tensor.dtype.rawValue)"
                        + (tensor.floats() == nil ? "" : " with NaN or infinity"), file: file)
            }
            return Matrix(rows: rows, columns: columns, storage: values)
        }
        var pairs: [Pair] = []
        for layer in adapted {
            for target in config.orderedTargets {
                let (out, inputs) = target.shape(decoder)
                let a = try matrix(
                    Self.tensorName(layer: layer, target: target, matrix: "lora_a"), rows: config.rank, columns: inputs)
                let b = try matrix(
                    Self.tensorName(layer: layer, target: target, matrix: "lora_b"), rows: out, columns: config.rank)
                pairs.append(Pair(layer: layer, target: target, a: a, b: b))
            }
        }
        self.config = config
        self.decoder = decoder
        self.pairs = pairs
    }

    /// The metadata key under which ``safetensors(precision:)`` stores the configuration as JSON.
    public static let configMetadataKey = "retort.lora.config"

    /// One safetensors file: the tensors of ``tensors(precision:)`` and the configuration as JSON in the metadata.
    public func safetensors(precision: Precision) throws(StudentError) -> Data {
        let tensors = try tensors(precision: precision)
        do {
            let json = try JSONEncoder().encode(config)
            return try Safetensors.encode(
                tensors, metadata: [Self.configMetadataKey: String(decoding: json, as: UTF8.self)])
        } catch {
            throw StudentError("encoding the LoRA adapters failed: \(error)")
        }
    }

    /// Adapters read back from ``safetensors(precision:)``'s bytes for a decoder of shape `decoder`.
    public init(safetensors data: Data, decoder: LlamaConfig, file: String) throws(StudentError) {
        let (tensors, metadata) = try Safetensors.decode(data, file: file)
        guard let json = metadata[Self.configMetadataKey] else {
            throw StudentError(
                "no \"\(Self.configMetadataKey)\" metadata; this is not a Retort LoRA adapter file", file: file)
        }
        let config: LoRAConfig
        do {
            config = try JSONDecoder().decode(LoRAConfig.self, from: Data(json.utf8))
        } catch {
            throw StudentError(
                "the \"\(Self.configMetadataKey)\" metadata is not a LoRA configuration: \(error)", file: file)
        }
        try self.init(tensors: tensors, config: config, decoder: decoder, file: file)
    }
}

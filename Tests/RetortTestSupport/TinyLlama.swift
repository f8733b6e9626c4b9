import Foundation
import RetortNumerics
import RetortStudents

// Tiny GGUF models for tests: a writer, a byte-level tokenizer's metadata and a random Llama of SmolLM2's architecture,
// small enough for CI, for the decoder's and the `slm` student's tests and for searches with an `slm` candidate.

/// A GGUF writer for tests: metadata in order, tensors as raw bytes (quantized by the helpers below).
public struct GGUFWriter {
    /// Metadata keys and values, in file order.
    public var metadata: [(String, GGUFFile.Value)] = []
    /// Tensors with their dimensions (GGUF order: innermost first), type and encoded bytes.
    public var tensors: [(name: String, dimensions: [Int], type: GGUFFile.TensorType, bytes: [UInt8])] = []
    /// Tensor data alignment.
    public var alignment = 32
    /// GGUF version.
    public var version: UInt32 = 3

    /// An empty file: no metadata, no tensors.
    public init() {}

    /// The file's bytes.
    public func encoded() -> Data {
        var out: [UInt8] = Array("GGUF".utf8)
        func int<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
        func string(_ s: String) {
            int(UInt64(s.utf8.count))
            out += Array(s.utf8)
        }
        func code(_ v: GGUFFile.Value) -> UInt32 {
            switch v {
            case .uint8: 0
            case .int8: 1
            case .uint16: 2
            case .int16: 3
            case .uint32: 4
            case .int32: 5
            case .float32: 6
            case .bool: 7
            case .string: 8
            case .array: 9
            case .uint64: 10
            case .int64: 11
            case .float64: 12
            }
        }
        func value(_ v: GGUFFile.Value) {
            switch v {
            case .uint8(let x): int(x)
            case .int8(let x): int(x)
            case .uint16(let x): int(x)
            case .int16(let x): int(x)
            case .uint32(let x): int(x)
            case .int32(let x): int(x)
            case .float32(let x): int(x.bitPattern)
            case .bool(let x): int(UInt8(x ? 1 : 0))
            case .string(let x): string(x)
            case .array(let xs):
                int(xs.first.map(code) ?? 4)
                int(UInt64(xs.count))
                for x in xs { value(x) }
            case .uint64(let x): int(x)
            case .int64(let x): int(x)
            case .float64(let x): int(x.bitPattern)
            }
        }
        int(version)
        int(UInt64(tensors.count))
        int(UInt64(metadata.count))
        for (key, v) in metadata {
            string(key)
            int(code(v))
            value(v)
        }
        var offset = 0
        var offsets: [Int] = []
        for tensor in tensors {
            offsets.append(offset)
            offset = (offset + tensor.bytes.count + alignment - 1) / alignment * alignment
        }
        for (tensor, at) in zip(tensors, offsets) {
            string(tensor.name)
            int(UInt32(tensor.dimensions.count))
            for d in tensor.dimensions { int(UInt64(d)) }
            int(tensor.type.rawValue)
            int(UInt64(at))
        }
        while out.count % alignment != 0 { out.append(0) }
        let start = out.count
        for (tensor, at) in zip(tensors, offsets) {
            while out.count < start + at { out.append(0) }
            out += tensor.bytes
        }
        return Data(out)
    }

    /// Adds a tensor of `values`, encoded as `type`.
    public mutating func add(_ name: String, _ values: [Float], dimensions: [Int], as type: GGUFFile.TensorType) {
        tensors.append((name, dimensions, type, quantize(values, type)))
    }
}

/// `x` as little-endian IEEE half-precision bytes.
public func halfBytes(_ x: Float) -> [UInt8] {
    let bits = Float16(x).bitPattern
    return [UInt8(bits & 0xFF), UInt8(bits >> 8)]
}

/// Round-to-nearest quantization the way ggml's reference quantizers do it (Q8_0: `d = amax/127`; Q4_1:
/// `d = (max − min)/15`, `m = min`), F16 and F32 as such.
public func quantize(_ values: [Float], _ type: GGUFFile.TensorType) -> [UInt8] {
    var out: [UInt8] = []
    switch type {
    case .f32:
        for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { out += $0 } }
    case .f16:
        for v in values { out += halfBytes(v) }
    case .q8_0:
        for block in stride(from: 0, to: values.count, by: 32) {
            let xs = values[block..<(block + 32)]
            let d = (xs.map(abs).max() ?? 0) / 127
            out += halfBytes(d)
            let stored = Float(Float16(d))
            for x in xs { out.append(UInt8(bitPattern: Int8(stored == 0 ? 0 : (x / stored).rounded()))) }
        }
    case .q4_1:
        for block in stride(from: 0, to: values.count, by: 32) {
            let xs = Array(values[block..<(block + 32)])
            let (low, high) = (xs.min() ?? 0, xs.max() ?? 0)
            let d = (high - low) / 15
            out += halfBytes(d) + halfBytes(low)
            let (sd, sm) = (Float(Float16(d)), Float(Float16(low)))
            let q = xs.map { sd == 0 ? 0 : UInt8(max(0, min(15, (($0 - sm) / sd).rounded()))) }
            for j in 0..<16 { out.append(q[j] | q[j + 16] << 4) }
        }
    default:
        fatalError("the test writer does not quantize \(type)")
    }
    return out
}

/// A byte-level tokenizer's GGUF metadata (all 256 byte symbols, merges for JSON punctuation and a few words, the
/// ChatML control tokens) and its vocabulary size.
public func schemaTokenizerMetadata() -> (metadata: [(String, GGUFFile.Value)], vocabulary: Int) {
    let bytes = BPETokenizer.byteScalars.map { String(Character($0)) }
    let merges = [
        "{ \"", "\" :", "\": \"", "\" ,", "\", \"", "\" }", "i n", "in t", "e n", "en t", "int ent", "H a", "Ha s",
        "Has s", "T u", "Tu r", "Tur n", "O n", "O f", "Of f", "t r", "u e", "tr ue", "Ã ©",
    ]
    let merged = merges.map { $0.replacingOccurrences(of: " ", with: "") }
    let special = ["<|im_start|>", "<|im_end|>"]
    let tokens = bytes + merged + special
    let metadata: [(String, GGUFFile.Value)] = [
        ("tokenizer.ggml.model", .string("gpt2")), ("tokenizer.ggml.pre", .string("smollm")),
        ("tokenizer.ggml.tokens", .array(tokens.map { .string($0) })),
        (
            "tokenizer.ggml.token_type",
            .array(Array(repeating: .int32(1), count: bytes.count + merged.count) + [.int32(3), .int32(3)])
        ),
        ("tokenizer.ggml.merges", .array(merges.map { .string($0) })),
        ("tokenizer.ggml.bos_token_id", .uint32(UInt32(tokens.count - 2))),
        ("tokenizer.ggml.eos_token_id", .uint32(UInt32(tokens.count - 1))),
    ]
    return (metadata, tokens.count)
}

/// The tensor types of a tiny Llama's weights.
public struct TinyLlamaTypes: Sendable {
    /// Token table, Q/K/V/O, gate/up/down.
    public var embeddings, query, key, value, output, gate, up, down: GGUFFile.TensorType

    /// Every weight in F32.
    public static let f32 = TinyLlamaTypes(
        embeddings: .f32, query: .f32, key: .f32, value: .f32, output: .f32, gate: .f32, up: .f32, down: .f32)
    /// F16, Q8_0 and Q4_1 mixed, as quantized files mix them.
    public static let mixed = TinyLlamaTypes(
        embeddings: .q8_0, query: .q4_1, key: .q8_0, value: .f16, output: .q4_1, gate: .q4_1, up: .q8_0, down: .q4_1)
}

/// A random Llama of SmolLM2's architecture, small (2 blocks, H = 32, 4 heads of 8, 2 key/value heads, F = 64) with
/// `vocabulary` tokens, weights of `types`, `metadata` added to the model's; with `untied`, an F32 LM head of its own.
public func tinyLlamaWriter(
    seed: UInt64, vocabulary: Int, contextLength: Int = 256, types: TinyLlamaTypes = .f32,
    metadata: [(String, GGUFFile.Value)] = [], untied: Bool = false
) -> GGUFWriter {
    var generator = SeededGenerator(seed: seed)
    func random(_ count: Int, _ low: Float = -0.5, _ high: Float = 0.5) -> [Float] {
        Matrix(rows: 1, columns: count, uniformFrom: low, to: high, generator: &generator).storage
    }
    var w = GGUFWriter()
    w.metadata =
        [
            ("general.architecture", .string("llama")), ("llama.block_count", .uint32(2)),
            ("llama.context_length", .uint32(UInt32(contextLength))), ("llama.embedding_length", .uint32(32)),
            ("llama.feed_forward_length", .uint32(64)), ("llama.attention.head_count", .uint32(4)),
            ("llama.attention.head_count_kv", .uint32(2)),
            ("llama.attention.layer_norm_rms_epsilon", .float32(1e-5)),
        ] + metadata
    w.add("token_embd.weight", random(vocabulary * 32, -1, 1), dimensions: [32, vocabulary], as: types.embeddings)
    for i in 0..<2 {
        let p = "blk.\(i)."
        w.add(p + "attn_norm.weight", random(32, 0.5, 1.5), dimensions: [32], as: .f32)
        w.add(p + "attn_q.weight", random(32 * 32), dimensions: [32, 32], as: types.query)
        w.add(p + "attn_k.weight", random(16 * 32), dimensions: [32, 16], as: types.key)
        w.add(p + "attn_v.weight", random(16 * 32), dimensions: [32, 16], as: types.value)
        w.add(p + "attn_output.weight", random(32 * 32), dimensions: [32, 32], as: types.output)
        w.add(p + "ffn_norm.weight", random(32, 0.5, 1.5), dimensions: [32], as: .f32)
        w.add(p + "ffn_gate.weight", random(64 * 32), dimensions: [32, 64], as: types.gate)
        w.add(p + "ffn_up.weight", random(64 * 32), dimensions: [32, 64], as: types.up)
        w.add(p + "ffn_down.weight", random(32 * 64), dimensions: [64, 32], as: types.down)
    }
    w.add("output_norm.weight", random(32, 0.5, 1.5), dimensions: [32], as: .f32)
    if untied {
        w.add("output.weight", random(vocabulary * 32, -1, 1), dimensions: [32, vocabulary], as: .f32)
    }
    return w
}

/// A random F32 Llama (``tinyLlamaWriter(seed:vocabulary:contextLength:types:metadata:untied:)``) with `vocabulary`
/// tokens, as a GGUF writer to add metadata to.
public func schemaLlamaWriter(seed: UInt64, vocabulary: Int, contextLength: Int = 256) -> GGUFWriter {
    tinyLlamaWriter(seed: seed, vocabulary: vocabulary, contextLength: contextLength)
}

/// One GGUF file holding a tiny random Llama (``schemaLlamaWriter(seed:vocabulary:contextLength:)``) and the byte-level
/// tokenizer of ``schemaTokenizerMetadata()`` with the ChatML tokens: what an `slm` student reads, small enough for CI.
public func tinySlmFile(seed: UInt64 = 5) throws -> URL {
    let tokenizer = schemaTokenizerMetadata()
    var w = schemaLlamaWriter(seed: seed, vocabulary: tokenizer.vocabulary)
    w.metadata += tokenizer.metadata
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("retort-slm-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    let url = folder.appendingPathComponent("tiny.gguf")
    try w.encoded().write(to: url)
    return url
}

import Foundation
import RetortNumerics
import RetortTestSupport
import Testing

@testable import RetortStudents

/// Where `make models` puts SmolLM2-135M-Instruct.
let smolLMFile = repositoryRoot.appendingPathComponent(".build-models/SmolLM2-135M-Instruct/model.gguf")
let smolLMPresent = FileManager.default.fileExists(atPath: smolLMFile.path)

/// A random Llama of SmolLM2's architecture, small: 2 blocks, H = 32, 4 heads of 8, 2 key/value heads, F = 64,
/// vocabulary 40; weights in F32, F16, Q8_0 and Q4_1.
func tinyLlama(seed: UInt64 = 11, untied: Bool = false, contextLength: Int = 64) -> GGUFWriter {
    tinyLlamaWriter(
        seed: seed, vocabulary: 40, contextLength: contextLength, types: .mixed,
        metadata: [("llama.rope.freq_base", .float32(10000)), ("tokenizer.ggml.eos_token_id", .uint32(39))],
        untied: untied)
}

/// A byte-level vocabulary (256 byte symbols in byte order), six merges and two control tokens.
func tinyTokenizerFile() throws -> GGUFFile {
    let bytes = BPETokenizer.byteScalars.map { GGUFFile.Value.string(String(Character($0))) }
    let merged = ["Ġt", "he", "Ġthe", "ll", "hell", "hello"].map { GGUFFile.Value.string($0) }
    let special = ["<|im_start|>", "<|im_end|>"].map { GGUFFile.Value.string($0) }
    var w = GGUFWriter()
    w.metadata = [
        ("tokenizer.ggml.model", .string("gpt2")), ("tokenizer.ggml.pre", .string("smollm")),
        ("tokenizer.ggml.tokens", .array(bytes + merged + special)),
        ("tokenizer.ggml.token_type", .array(Array(repeating: .int32(1), count: 262) + [.int32(3), .int32(3)])),
        (
            "tokenizer.ggml.merges",
            .array(["Ġ t", "h e", "Ġt he", "l l", "he ll", "hell o"].map { GGUFFile.Value.string($0) })
        ),
        ("tokenizer.ggml.bos_token_id", .uint32(262)), ("tokenizer.ggml.eos_token_id", .uint32(263)),
    ]
    return try GGUFFile.read(w.encoded(), file: "tiny-tokenizer.gguf")
}

func maxGap(_ a: some Collection<Float>, _ b: some Collection<Float>) -> Float {
    zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
}

@Suite struct DecoderTests {
    @Test("GGUF reader: every metadata type (arrays, nested arrays) and F32/F16 tensors round-trip; alignment honoured")
    func readerRoundTrip() throws {
        var w = GGUFWriter()
        w.alignment = 64
        w.metadata = [
            ("general.alignment", .uint32(64)), ("u8", .uint8(200)), ("i8", .int8(-3)), ("u16", .uint16(65000)),
            ("i16", .int16(-300)), ("u32", .uint32(4_000_000_000)), ("i32", .int32(-7)), ("f32", .float32(0.25)),
            ("yes", .bool(true)), ("name", .string("tiny ✓")), ("u64", .uint64(1 << 40)), ("i64", .int64(-(1 << 40))),
            ("f64", .float64(-1.5)), ("list", .array([.string("a"), .string(""), .string("ĠΩ")])),
            ("nested", .array([.array([.int32(1), .int32(2)]), .array([.int32(3)])])),
        ]
        let values: [Float] = (0..<48).map { Float($0) * 0.5 - 7 }
        w.add("a", values, dimensions: [16, 3], as: .f32)
        w.add("b", values, dimensions: [48], as: .f16)
        let file = try GGUFFile.read(w.encoded())
        #expect(file.version == 3 && file.alignment == 64 && file.dataOffset % 64 == 0)
        #expect(file.metadataKeys == w.metadata.map(\.0))
        for (key, value) in w.metadata { #expect(file.metadata[key] == value, "\(key)") }
        #expect(file.metadata["u32"]?.integer == 4_000_000_000 && file.metadata["f32"]?.double == 0.25)
        #expect(try file.floats("a") == values && file.floats("b") == values)  // all exact in F16
        #expect(file.tensor("a")?.dimensions == [16, 3] && (file.tensor("b")?.offset ?? 1) % 64 == 0)
        #expect(try file.matrix("a", rows: 3, columns: 16).row(2) == Array(values[32..<48]))
        #expect(throws: StudentError.self) { try file.matrix("a", rows: 16, columns: 3) }
        #expect(throws: StudentError.self) { try file.floats("missing") }
    }

    @Test("GGUF dequantization: Q4_0, Q4_1 and Q8_0 blocks against values worked out by hand")
    func dequantizeBlocks() throws {
        // Q4_1: d = 0.5, m = −1, low nibble j, high nibble 15 − j: x_j = j/2 − 1, x_{j+16} = (15 − j)/2 − 1.
        let q41 = halfBytes(0.5) + halfBytes(-1) + (0..<16).map { UInt8($0) | UInt8(15 - $0) << 4 }
        // Q8_0: d = 0.25, codes −16 ... 15.
        let q80 = halfBytes(0.25) + (0..<32).map { UInt8(bitPattern: Int8($0 - 16)) }
        // Q4_0: d = 2, low nibble j, high nibble 0: x_j = (j − 8)·2, x_{j+16} = −16.
        let q40 = halfBytes(2) + (0..<16).map { UInt8($0) }
        var w = GGUFWriter()
        w.tensors = [("q41", [32], .q4_1, q41), ("q80", [32], .q8_0, q80), ("q40", [32], .q4_0, q40)]
        let file = try GGUFFile.read(w.encoded())
        #expect(try file.floats("q41") == (0..<16).map { Float($0) / 2 - 1 } + (0..<16).map { Float(15 - $0) / 2 - 1 })
        #expect(try file.floats("q80") == (0..<32).map { Float($0 - 16) * 0.25 })
        #expect(try file.floats("q40") == (0..<16).map { Float($0 - 8) * 2 } + Array(repeating: -16, count: 16))
        // And the writer's quantizers round-trip within half a step.
        var generator = SeededGenerator(seed: 3)
        let values = Matrix(rows: 1, columns: 256, uniformFrom: -2, to: 2, generator: &generator).storage
        var q = GGUFWriter()
        q.add("q8", values, dimensions: [64, 4], as: .q8_0)
        q.add("q4", values, dimensions: [64, 4], as: .q4_1)
        let back = try GGUFFile.read(q.encoded())
        #expect(maxGap(try back.floats("q8"), values) <= 2.0 / 127 / 2 + 0.002)
        #expect(maxGap(try back.floats("q4"), values) <= 4.0 / 15 / 2 + 0.01)
    }

    @Test("GGUF reader: bad magic, old version, every truncation, unknown types and damaged bytes are errors")
    func badFiles() throws {
        let good = tinyLlama().encoded()
        func message(_ data: Data) -> String? {
            do {
                _ = try GGUFFile.read(data, file: "bad.gguf")
                return nil
            } catch { return error.description }
        }
        #expect(
            message(Data("GGUX".utf8) + good.dropFirst(4))?.contains("bad.gguf: not a GGUF file: bad magic") == true)
        var old = good
        old[4] = 1
        #expect(message(old)?.contains("version 1") == true)
        for length in stride(from: 0, to: good.count, by: 97) {
            #expect(message(good.prefix(length))?.contains("truncated") == true || length < 4, "length \(length)")
        }
        #expect(message(good.prefix(good.count - 1))?.contains("truncated: tensor") == true)
        var unknownValue = GGUFWriter()
        unknownValue.metadata = [("k", .uint8(1))]
        var data = unknownValue.encoded()
        data[4 + 4 + 16 + 9] = 13  // the value type of "k" (after the 8-byte length and the key)
        #expect(message(data)?.contains("unknown value type 13") == true)
        var unknownTensor = GGUFWriter()
        unknownTensor.tensors = [("t", [32], .f32, Array(repeating: 0, count: 128))]
        data = unknownTensor.encoded()
        data[4 + 4 + 16 + 9 + 4 + 8] = 99  // the type of "t"
        #expect(message(data)?.contains("unknown type 99") == true)
        var kQuant = GGUFWriter()
        kQuant.tensors = [("k", [256], .q6_K, Array(repeating: 0, count: 210))]
        #expect(throws: StudentError.self) { try GGUFFile.read(kQuant.encoded()).floats("k") }
        // Damaged bytes anywhere in the header: an error or a file, never a trap.
        var generator = SeededGenerator(seed: 5)
        let header = try GGUFFile.read(good).dataOffset
        for _ in 0..<400 {
            var damaged = good
            for _ in 0..<3 {
                damaged[Int.random(in: 0..<header, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
            }
            if let file = try? GGUFFile.read(damaged) { _ = try? LlamaDecoder(gguf: file) }
        }
    }

    @Test("tiny Llama: incremental decode through the KV cache gives the full prefill's logits at every position")
    func cacheMatchesPrefill() throws {
        let decoder = try LlamaDecoder(gguf: GGUFFile.read(tinyLlama().encoded()))
        #expect(
            decoder.config
                == LlamaConfig(
                    layers: 2, hiddenSize: 32, feedForwardSize: 64, heads: 4, kvHeads: 2, ropeBase: 10000,
                    rmsEpsilon: 1e-5,
                    contextLength: 64, vocabularySize: 40))
        let tokens: [Int32] = [3, 17, 17, 0, 39, 8, 25, 12, 5]
        let full = try decoder.logits(tokens: tokens)
        #expect(full.rows == tokens.count && full.columns == 40)
        var cache = LlamaDecoder.Cache(layers: 2)
        let first = try decoder.prefill(Array(tokens.prefix(4)), cache: &cache)
        #expect(maxGap(first, full.row(3)) < 1e-5)
        for t in 4..<tokens.count {
            let logits = try decoder.step(tokens[t], cache: &cache)
            #expect(maxGap(logits, full.row(t)) < 1e-5, "position \(t)")
        }
        #expect(cache.count == tokens.count && cache.keys[1].count == tokens.count * 16)
        // Prefill in two chunks: the second chunk attends to the cached first.
        var chunked = LlamaDecoder.Cache(layers: 2)
        _ = try decoder.prefill(Array(tokens.prefix(5)), cache: &chunked)
        #expect(maxGap(try decoder.prefill(Array(tokens.suffix(4)), cache: &chunked), full.row(8)) < 1e-5)
        // Greedy generation is argmax of each step, stops at the context length and never emits eos (39).
        let generated = try decoder.generate(prompt: tokens, maxTokens: 100)
        #expect(generated.count <= 64 - tokens.count + 1 && !generated.contains(39))
        if let next = generated.first { #expect(Int(next) == LlamaDecoder.argmax(full.row(8))) }
        #expect(try decoder.generate(prompt: tokens, maxTokens: 3) == Array(generated.prefix(3)))
        #expect(throws: StudentError.self) { try decoder.logits(tokens: [40]) }
        #expect(throws: StudentError.self) { try decoder.logits(tokens: Array(repeating: 1, count: 65)) }
    }

    @Test("tiny Llama: logits match a plain-loop float64 forward pass with Hugging Face's rotate-half RoPE")
    func matchesPlainLoops() throws {
        let decoder = try LlamaDecoder(gguf: GGUFFile.read(tinyLlama(untied: true).encoded()))
        let tokens: [Int32] = [5, 0, 33, 33, 12, 7]
        let c = decoder.config
        let (h, d, group) = (c.hiddenSize, c.headSize, c.heads / c.kvHeads)
        func times(_ x: [Double], _ w: Matrix) -> [Double] {
            (0..<w.rows).map { r in (0..<w.columns).reduce(0) { $0 + x[$1] * Double(w[r, $1]) } }
        }
        func norm(_ x: [Double], _ w: [Float]) -> [Double] {
            let scale = 1 / ((x.reduce(0) { $0 + $1 * $1 } / Double(x.count)) + Double(c.rmsEpsilon)).squareRoot()
            return x.indices.map { x[$0] * scale * Double(w[$0]) }
        }
        // GGUF keeps each head's rows as pairs (2i, 2i+1); Hugging Face's order is (i, i + d/2): undo, then rotate
        // half against half.
        func rope(_ x: [Double], position: Int) -> [Double] {
            var out = x
            for head in 0..<(x.count / d) {
                let b = head * d
                let hf = (0..<d).map { j in x[b + (j < d / 2 ? 2 * j : 2 * (j - d / 2) + 1)] }
                for j in 0..<d {
                    let angle = Double(position) * pow(c.ropeBase, -2 * Double(j % (d / 2)) / Double(d))
                    let rotated = j < d / 2 ? -hf[j + d / 2] : hf[j - d / 2]
                    out[b + j] = hf[j] * cos(angle) + rotated * sin(angle)
                }
            }
            return out
        }
        var x = tokens.map { t in decoder.embeddings.row(Int(t)).map(Double.init) }
        for layer in decoder.layers {
            let a = x.map { norm($0, layer.attentionNorm) }
            let q = a.enumerated().map { rope(times($1, layer.query), position: $0) }
            let k = a.enumerated().map { rope(times($1, layer.key), position: $0) }
            let v = a.map { times($0, layer.value) }
            for t in tokens.indices {
                var context = [Double](repeating: 0, count: h)
                for head in 0..<c.heads {
                    let g = head / group
                    let scores = (0...t).map { s in
                        (0..<d).reduce(0) { $0 + q[t][head * d + $1] * k[s][g * d + $1] } / Double(d).squareRoot()
                    }
                    let e = scores.map { exp($0 - (scores.max() ?? 0)) }
                    for s in 0...t {
                        for j in 0..<d { context[head * d + j] += e[s] / e.reduce(0, +) * v[s][g * d + j] }
                    }
                }
                x[t] = zip(x[t], times(context, layer.output)).map(+)
            }
            for t in tokens.indices {
                let f = norm(x[t], layer.feedForwardNorm)
                let (gate, up) = (times(f, layer.gate), times(f, layer.up))
                x[t] = zip(x[t], times(zip(gate, up).map { $0 / (1 + exp(-$0)) * $1 }, layer.down)).map(+)
            }
        }
        let head = try #require(decoder.output)
        let expected = x.map { times(norm($0, decoder.outputNorm), head) }
        let logits = try decoder.logits(tokens: tokens)
        for t in tokens.indices {
            #expect(maxGap(logits.row(t), expected[t].map(Float.init)) < 1e-4, "position \(t)")
        }
    }

    @Test("tiny Llama: logits at position t do not depend on later tokens; an untied head is used")
    func causality() throws {
        let decoder = try LlamaDecoder(gguf: GGUFFile.read(tinyLlama().encoded()))
        let a = try decoder.logits(tokens: [1, 2, 3, 4, 5, 6])
        let b = try decoder.logits(tokens: [1, 2, 3, 30, 31, 32])
        for t in 0..<3 { #expect(maxGap(a.row(t), b.row(t)) < 1e-6) }
        #expect(maxGap(a.row(3), b.row(3)) > 1e-3)
        let untied = try LlamaDecoder(gguf: GGUFFile.read(tinyLlama(untied: true).encoded()))
        #expect(untied.output != nil && decoder.output == nil)
        #expect(untied.parameterCount == decoder.parameterCount + 40 * 32)
        #expect(maxGap(try untied.logits(tokens: [1, 2, 3]).row(2), a.row(2)) > 1e-3)
        // parameterCount counts exactly the file's elements.
        let file = try GGUFFile.read(tinyLlama().encoded())
        #expect(decoder.parameterCount == file.tensorInfos.reduce(0) { $0 + $1.elementCount })
        // FLOPs: one token = 2·(block matrices) per block + 4·H for attending to itself + the head.
        let perToken = 2 * (2 * 32 * 32 + 2 * 16 * 32 + 3 * 32 * 64) * 2
        #expect(decoder.flops(promptTokens: 1, generatedTokens: 0) == perToken + 4 * 32 * 2 + 2 * 40 * 32)
    }

    @Test("RoPE: adjacent pairs rotate by pos·θ^(−2i/d), so query·key depends only on the relative position")
    func ropeRelative() throws {
        let decoder = try LlamaDecoder(gguf: GGUFFile.read(tinyLlama().encoded()))
        var generator = SeededGenerator(seed: 9)
        let q = Matrix(rows: 1, columns: 32, uniformFrom: -1, to: 1, generator: &generator)
        let k = Matrix(rows: 1, columns: 32, uniformFrom: -1, to: 1, generator: &generator)
        func rotated(_ x: Matrix, _ position: Int) -> Matrix {
            var y = x
            let (cos, sin) = decoder.rotations(positions: position..<(position + 1))
            decoder.rotate(&y, cos: cos, sin: sin)
            return y
        }
        func dot(_ a: Matrix, _ b: Matrix, head: Int) -> Float {
            (0..<8).reduce(0) { $0 + a.storage[head * 8 + $1] * b.storage[head * 8 + $1] }
        }
        for head in 0..<4 {
            let near = dot(rotated(q, 7), rotated(k, 3), head: head)
            let far = dot(rotated(q, 47), rotated(k, 43), head: head)
            #expect(abs(near - far) < 1e-4, "head \(head)")
        }
        // Pair (0, 1) of a head at position 1 turns by exactly 1 radian; pair (2, 3) by θ^(−2/8) = 0.1 radian.
        let unit = Matrix(rows: 1, columns: 32, storage: (0..<32).map { $0 % 2 == 0 ? 1 : 0 })
        let turned = rotated(unit, 1)
        #expect(abs(turned.storage[0] - Foundation.cos(1)) < 1e-6 && abs(turned.storage[1] - Foundation.sin(1)) < 1e-6)
        #expect(abs(turned.storage[3] - Foundation.sin(0.1)) < 1e-6)
    }

    @Test("byte-level BPE: the smollm pre-tokenizer, merges by rank, special tokens and decoding")
    func tokenizer() throws {
        let tokenizer = try BPETokenizer(gguf: tinyTokenizerFile())
        #expect(BPETokenizer.byteScalars[32] == "Ġ" && BPETokenizer.byteScalars[10] == "Ċ")
        #expect(BPETokenizer.byteScalars[0] == "\u{100}" && BPETokenizer.byteScalars[173] == "Ń")
        func split(_ text: String, digits: Bool) -> [String] {
            var pieces: [Substring] = []
            if digits { return tokenizer.pretokenize(Substring(text)).map(String.init) }
            BPETokenizer.gpt2Split(Substring(text), into: &pieces)
            return pieces.map(String.init)
        }
        #expect(
            split("Hello  world's\n\n x 42", digits: false) == ["Hello", " ", " world", "'s", "\n\n", " x", " 42"])
        #expect(
            split("Hello  world's\n\n x 42", digits: true) == [
                "Hello", " ", " world", "'s", "\n\n", " x", " ", "4", "2",
            ])
        #expect(split("a+=b;  \t", digits: false) == ["a", "+=", "b", ";", "  \t"])
        #expect(split("don't 'RE' we'll", digits: false) == ["don", "'t", " '", "RE", "'", " we", "'ll"])
        #expect(split("\tx\n", digits: false) == ["\t", "x", "\n"])
        #expect(split("Zürich ²½ 東京", digits: true) == ["Zürich", " ", "²", "½", " 東京"])
        let hello = try #require(tokenizer.id(of: "hello"))
        let the = try #require(tokenizer.id(of: "Ġthe"))
        #expect(tokenizer.encode("hello the 12<|im_end|>") == [hello, the, 32, 49, 50, 263])
        #expect(tokenizer.encode("<|im_start|>hello", addBOS: true) == [262, 262, hello])
        #expect(tokenizer.encode("<|im_start|>", parseSpecial: false).count == 12)
        // One letter run: the leftmost "h e" merges first, then "l l", "he ll", "hell o"; "t" + "he" has no merge.
        #expect(tokenizer.encode("hellothe") == [hello, 116, try #require(tokenizer.id(of: "he"))])
        for text in ["hello the 12<|im_end|>", "Zürich 東京 🙂\n\ttabs", "", "  "] {
            #expect(tokenizer.decode(tokenizer.encode(text)) == text)
        }
        #expect(tokenizer.decode([hello, 263], skipSpecial: true) == "hello")
        #expect(tokenizer.eos == 263 && tokenizer.bos == 262 && tokenizer.count == 264)
        var w = GGUFWriter()
        w.metadata = [("tokenizer.ggml.model", .string("llama"))]
        #expect(throws: StudentError.self) { try BPETokenizer(gguf: GGUFFile.read(w.encoded())) }
    }

    @Test(
        "SmolLM2-135M-Instruct: token ids, logits (max abs ≤ 1e-3) and greedy tokens match the NumPy reference",
        .enabled(if: smolLMPresent, "run `make models` to fetch SmolLM2-135M-Instruct"))
    func smolLMMatchesReference() throws {
        let reference = try JSONSerialization.jsonObject(
            with: Data(contentsOf: repositoryRoot.appendingPathComponent("Tests/Fixtures/smollm2-reference.json")))
        let cases = try #require((reference as? [String: Any])?["cases"] as? [[String: Any]])
        let file = try GGUFFile(url: smolLMFile)
        let tokenizer = try BPETokenizer(gguf: file)
        let decoder = try LlamaDecoder(gguf: file)
        #expect(decoder.config.layers == 30 && decoder.config.kvHeads == 3 && decoder.output == nil)
        #expect(decoder.parameterCount == file.tensorInfos.reduce(0) { $0 + $1.elementCount })
        var largest: Float = 0
        for (index, row) in cases.enumerated() {
            let text = try #require(row["text"] as? String)
            let ids = tokenizer.encode(text)
            #expect(ids.map(Int.init) == row["ids"] as? [Int], "prompt \(index)")
            #expect(tokenizer.decode(ids) == text)
            let logits = try decoder.logits(tokens: ids)
            #expect(logits.argmaxPerRow() == row["argmax"] as? [Int], "prompt \(index)")
            for (key, position) in [("last_logits", ids.count - 1), ("first_logits", 0)] {
                let expected = try #require(row[key] as? [String: Double])
                var gap = 0.0
                for (column, value) in expected {
                    gap = max(gap, abs(Double(logits[position, try #require(Int(column))]) - value))
                }
                largest = max(largest, Float(gap))
                #expect(gap <= 1e-3, "prompt \(index), \(key): largest difference \(gap)")
            }
            if let greedy = row["greedy"] as? [Int] {
                #expect(try decoder.generate(prompt: ids, maxTokens: greedy.count).map(Int.init) == greedy)
            }
        }
        print("SmolLM2 logits: largest difference from the float64 reference \(largest)")
    }
}

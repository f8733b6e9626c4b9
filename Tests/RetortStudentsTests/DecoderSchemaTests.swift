import Foundation
import RetortData
import RetortNumerics
import RetortTestSupport
import Testing

@testable import RetortStudents

/// A byte-level tokenizer with all 256 byte symbols, merges for JSON punctuation and a few words, and the ChatML
/// control tokens (`<|im_start|>`, `<|im_end|>`).
func schemaTokenizer() throws -> BPETokenizer {
    var w = GGUFWriter()
    w.metadata = schemaTokenizerMetadata().metadata
    return try BPETokenizer(gguf: GGUFFile.read(w.encoded(), file: "schema-tokenizer.gguf"))
}

/// A random F32 Llama (2 blocks, H = 32, 4 heads of 8, 2 key/value heads, F = 64) with `vocabulary` tokens.
func schemaLlama(seed: UInt64, vocabulary: Int, contextLength: Int = 256) throws -> LlamaDecoder {
    let w = schemaLlamaWriter(seed: seed, vocabulary: vocabulary, contextLength: contextLength)
    return try LlamaDecoder(gguf: GGUFFile.read(w.encoded(), file: "schema-llama.gguf"))
}

/// An ha-like schema: a required enum, a free string, an integer, a number, a boolean and an untyped key.
let mixedSchema = StructuredSchema(
    properties: [
        "intent": .init(
            type: .string, allowed: [.string("HassTurnOn"), .string("HassTurnOff"), .string("HassLightSet")]),
        "name": .init(type: .string), "brightness": .init(type: .integer), "temperature": .init(type: .number),
        "on": .init(type: .boolean), "volume_step": .init(type: nil),
    ],
    required: ["intent"])

@Suite struct DecoderSchemaTests {
    @Test("automaton: accepts the canonical JSON of random valid answers, and every prefix of it")
    func acceptsCanonical() throws {
        let automaton = SchemaAutomaton(schema: mixedSchema, maxStringBytes: 64)
        var generator = SeededGenerator(seed: 17)
        let pieces = ["a", "Z", " ", "\"", "\\", "\n", "\t", "\r", "\u{01}", "\u{1F}", "\u{7F}", "é", "東", "🙂", "/"]
        for _ in 0..<300 {
            var fields: [String: StructuredValue?] = [
                "intent": .string(["HassTurnOn", "HassTurnOff", "HassLightSet"].randomElement(using: &generator) ?? "")
            ]
            if Bool.random(using: &generator) {
                let count = Int.random(in: 0...8, using: &generator)
                fields["name"] = StructuredValue.string(
                    (0..<count).map { _ in pieces.randomElement(using: &generator) ?? "" }.joined())
            }
            if Bool.random(using: &generator) {
                fields["brightness"] = StructuredValue.number(
                    Double(Int.random(in: -999_999_999...999_999_999, using: &generator)))
            }
            if Bool.random(using: &generator) {
                let scales: [Double] = [1, 10, 1000, 1e6]
                let scale = scales.randomElement(using: &generator) ?? 1
                let numerator = Double(Int.random(in: -99999...99999, using: &generator))
                fields["temperature"] = StructuredValue.number(numerator / scale)
            }
            if Bool.random(using: &generator) { fields["on"] = StructuredValue.bool(Bool.random(using: &generator)) }
            if Bool.random(using: &generator) {
                let steps: [StructuredValue] = [.string("up"), .number(-75), .number(0.5), .bool(false)]
                fields["volume_step"] = steps.randomElement(using: &generator)
            }
            let answer = StructuredAnswer(fields)
            if case .number(let x) = answer["temperature"], abs(x) < 1e-4 { continue }
            let text = answer.canonicalJSON
            #expect(automaton.accepts(text), "\(text)")
            let bytes = Array(text.utf8)
            for end in 0..<bytes.count {
                #expect(automaton.walk(.start, bytes[..<end]).phase != .dead, "\(text) at \(end)")
            }
        }
    }

    @Test("automaton: rejects key order, missing or unknown keys, enum misses, whitespace and non-canonical values")
    func rejectsNonCanonical() throws {
        let two = SchemaAutomaton(
            schema: StructuredSchema(properties: ["a": .init(type: .integer), "b": .init(type: .integer)]),
            maxStringBytes: 8)
        #expect(two.accepts("{\"a\":1,\"b\":2}") && two.accepts("{}") && two.accepts("{\"b\":-20}"))
        for text in [
            "{\"b\":1,\"a\":2}", "{\"a\":1,\"a\":2}", "{\"c\":1}", "{\"a\": 1}", "{ \"a\":1}", "{\"a\":1}\n",
            "{\"a\":1,}",
            "{\"a\":-0}", "{\"a\":01}", "{\"a\":1.0}", "{\"a\":1.5}", "{\"a\":1e3}", "{\"a\":\"1\"}",
            "{\"a\":1234567890123456}", "{\"a\":true}", "",
        ] {
            #expect(!two.accepts(text), "\(text)")
        }
        #expect(
            SchemaAutomaton(schema: mixedSchema, maxStringBytes: 19).accepts(
                "{\"intent\":\"HassTurnOn\",\"name\":\"a\\\"\\\\\\n\\u001f\\u0000\"}"))
        let automaton = SchemaAutomaton(schema: mixedSchema, maxStringBytes: 8)
        #expect(automaton.accepts("{\"intent\":\"HassTurnOn\"}"))
        #expect(automaton.accepts("{\"intent\":\"HassTurnOn\",\"name\":\"12345678\"}"))
        #expect(!automaton.accepts("{\"intent\":\"HassTurnOn\",\"name\":\"a\\\"\\\\\\n\\u001f\\u0000\"}"))
        #expect(automaton.accepts("{\"intent\":\"HassTurnOn\",\"temperature\":-0.0001}"))
        #expect(automaton.accepts("{\"intent\":\"HassTurnOn\",\"volume_step\":\"x\"}"))
        #expect(automaton.accepts("{\"intent\":\"HassTurnOn\",\"volume_step\":false}"))
        #expect(automaton.accepts("{\"intent\":\"HassTurnOn\",\"temperature\":123456789.12345}"))
        #expect(!automaton.accepts("{\"intent\":\"HassTurnOn\",\"temperature\":123456789.123456}"))
        for text in [
            "{}", "{\"name\":\"x\"}", "{\"intent\":\"HassTurnUp\"}",
            "{\"intent\":\"HassTurnOn\",\"name\":\"123456789\"}",
            "{\"intent\":\"HassTurnOn\",\"name\":\"a\nb\"}", "{\"intent\":\"HassTurnOn\",\"name\":\"\\/\"}",
            "{\"intent\":\"HassTurnOn\",\"name\":\"\\u000a\"}", "{\"intent\":\"HassTurnOn\",\"name\":\"\\u001F\"}",
            "{\"intent\":\"HassTurnOn\",\"name\":\"\\u00e9\"}", "{\"intent\":\"HassTurnOn\",\"temperature\":0.00001}",
            "{\"intent\":\"HassTurnOn\",\"temperature\":1.50}", "{\"intent\":\"HassTurnOn\",\"temperature\":1.}",
            "{\"intent\":\"HassTurnOn\",\"temperature\":1234567890.1234567}", "{\"intent\":\"HassTurnOn\",\"on\":1}",
            "{\"intent\":\"HassTurnOn\",\"brightness\":2.5}", "{\"on\":true,\"intent\":\"HassTurnOn\"}",
        ] {
            #expect(!automaton.accepts(text), "\(text)")
        }
        // Broken UTF-8 in a string: a lone continuation byte, a surrogate, an overlong form.
        let start = Array("{\"intent\":\"HassTurnOn\",\"name\":\"".utf8)
        for broken: [UInt8] in [[0x80], [0xED, 0xA0, 0x80], [0xC0, 0xAF], [0xE0, 0x80, 0x80]] {
            #expect(automaton.walk(.start, start + broken).phase == .dead, "\(broken)")
        }
        #expect(automaton.walk(.start, start + [0xE6, 0x9D, 0xB1]).phase == .string)
        // A string may not start a character it cannot finish: 7 bytes used, a 2-byte character does not fit.
        #expect(automaton.walk(.start, start + Array("1234567".utf8) + [0xC3]).phase == .dead)
    }

    @Test("automaton: a fraction's zeros always leave room for the non-zero digit it must end with")
    func fractionZerosLeaveRoom() throws {
        let automaton = SchemaAutomaton(schema: mixedSchema, maxStringBytes: 12)
        let start = Array(#"{"intent":"HassTurnOn","temperature":98."#.utf8)
        // 98. and 11 zeros: 13 significant digits, one left for the digit that ends it.
        let room = automaton.walk(.start, start + Array(repeating: UInt8(ascii: "0"), count: 11))
        #expect(room.phase != .dead)
        #expect(automaton.walk(room, [UInt8(ascii: "0")]).phase == .dead, "a 14th digit 0 could never end")
        let rest = automaton.shortestCompletion(room)
        let text = String(decoding: start + Array(repeating: UInt8(ascii: "0"), count: 11) + rest, as: UTF8.self)
        let answer = try #require(StructuredAnswer.parse(text: text), "\(text)")
        #expect(mixedSchema.isValid(answer) && answer.canonicalJSON == text, "\(text)")
    }

    @Test("automaton: random walks end in text that parses to a valid answer whose canonical JSON it is")
    func randomWalksAreCanonical() throws {
        let automaton = SchemaAutomaton(schema: mixedSchema, maxStringBytes: 12)
        var generator = SeededGenerator(seed: 23)
        for _ in 0..<300 {
            var (state, bytes) = (SchemaAutomaton.State.start, [UInt8]())
            while !automaton.isFinal(state) {
                if bytes.count > 80 {
                    let rest = automaton.shortestCompletion(state)
                    #expect(!rest.isEmpty)
                    bytes += rest
                    state = automaton.walk(state, rest)
                    break
                }
                let allowed = automaton.allowedBytes(state)
                let byte = try #require(allowed.randomElement(using: &generator))
                bytes.append(byte)
                state = automaton.step(state, byte)
            }
            #expect(automaton.isFinal(state))
            let text = String(decoding: bytes, as: UTF8.self)
            let answer = try #require(StructuredAnswer.parse(text: text), "\(text)")
            #expect(mixedSchema.isValid(answer), "\(text)")
            #expect(answer.canonicalJSON == text)
        }
    }

    @Test("tiny Llama, many seeds: every output parses, is valid, canonical, and its confidence is in (0, 1]")
    func randomModelsDecodeValid() throws {
        let tokenizer = try schemaTokenizer()
        let decoder = try SchemaDecoder(schema: mixedSchema, tokenizer: tokenizer, maxTokens: 40, maxStringBytes: 10)
        var generator = SeededGenerator(seed: 5)
        var keys: Set<String> = []
        var (steps, forced) = (0, 0)
        for seed in 1...16 {
            let model = try schemaLlama(seed: UInt64(seed), vocabulary: tokenizer.count)
            for _ in 0..<3 {
                let prompt = (0..<Int.random(in: 1...12, using: &generator)).map { _ in
                    Int32.random(in: 0..<Int32(tokenizer.count), using: &generator)
                }
                let output = try decoder.decode(model, prompt: prompt)
                #expect(mixedSchema.isValid(output.answer), "\(output.text)")
                #expect(StructuredAnswer.parse(text: output.text) == output.answer)
                #expect(output.answer.canonicalJSON == output.text)
                #expect(output.answer["intent"] != nil)
                #expect(output.confidence > 0 && output.confidence <= 1)
                #expect(abs(output.confidence - Foundation.exp(output.logProbability)) < 1e-12)
                #expect(output.steps + output.forcedTokens <= 41)
                keys.formUnion(output.answer.fields.keys)
                (steps, forced) = (steps + output.steps, forced + output.forcedTokens)
            }
        }
        // The random models do make choices, and they use more than the required key.
        #expect(steps > 0 && forced > 0 && keys.count >= 3, "\(keys)")
    }

    @Test("forced runs: a one-value schema is written with no model choice, tokenized as the target, confidence 1")
    func forcedRuns() throws {
        let tokenizer = try schemaTokenizer()
        let schema = StructuredSchema(
            properties: ["intent": .init(type: .string, allowed: [.string("HassTurnOn")])], required: ["intent"])
        let decoder = try SchemaDecoder(schema: schema, tokenizer: tokenizer)
        let model = try schemaLlama(seed: 3, vocabulary: tokenizer.count)
        let output = try decoder.decode(model, prompt: tokenizer.encode(SlmFormat.prompt("turn it on")))
        #expect(output.text == "{\"intent\":\"HassTurnOn\"}")
        #expect(output.steps == 0 && output.confidence == 1 && output.logProbability == 0)
        #expect(output.forcedTokens == SlmFormat.targetTokens(output.answer, tokenizer: tokenizer).count)
        // Forced pre-tokens come out as the tokenizer splits the target: {" intent ":" HassTurnOn "} <|im_end|>.
        var masks = SchemaDecoder.Masks()
        let run = SchemaDecoder.Run(pending: [1], budget: 64)
        let tokens = decoder.forcedTokens(run, masks: &masks)
        #expect(tokens == tokenizer.encode("{\"intent\":\"HassTurnOn\"}"))
        // With two values only the text before the choice is forced, and only the pre-tokens that nothing can extend.
        let two = try SchemaDecoder(
            schema: StructuredSchema(
                properties: ["intent": .init(type: .string, allowed: [.string("HassTurnOn"), .string("HassTurnOff")])],
                required: ["intent"]),
            tokenizer: tokenizer)
        var fresh = SchemaDecoder.Masks()
        #expect(two.forcedTokens(run, masks: &fresh) == tokenizer.encode("{\"intent\":\""))
        let choice = try two.decode(model, prompt: [5, 6, 7])
        #expect(["{\"intent\":\"HassTurnOn\"}", "{\"intent\":\"HassTurnOff\"}"].contains(choice.text))
        #expect(choice.steps >= 1 && choice.confidence < 1 && choice.confidence > 0)
    }

    @Test("token limit: a tiny maxTokens still closes a valid object, by the shortest completion")
    func tokenLimit() throws {
        let tokenizer = try schemaTokenizer()
        let model = try schemaLlama(seed: 8, vocabulary: tokenizer.count)
        let zero = try SchemaDecoder(schema: mixedSchema, tokenizer: tokenizer, maxTokens: 0)
        let shortest = try zero.decode(model, prompt: [40, 41])
        #expect(shortest.text == "{\"intent\":\"HassTurnOn\"}" && shortest.steps == 0 && shortest.confidence == 1)
        for limit in 1...12 {
            let decoder = try SchemaDecoder(schema: mixedSchema, tokenizer: tokenizer, maxTokens: limit)
            for prompt: [Int32] in [[40, 41], [3], [100, 7, 99, 250, 12]] {
                let output = try decoder.decode(model, prompt: prompt)
                #expect(mixedSchema.isValid(output.answer), "\(limit): \(output.text)")
                #expect(output.steps + output.forcedTokens <= limit + 1)
            }
        }
        // Closing inside a string and inside a number.
        let automaton = SchemaAutomaton(schema: mixedSchema, maxStringBytes: 8)
        for prefix in [
            "{\"brightness\":-", "{\"intent\":\"HassTurnOn\",\"name\":\"ab\\u00",
            "{\"intent\":\"HassTurnOn\",\"temperature\":0.0",
            "{\"intent\":\"Ha", "{\"b",
        ] {
            let state = automaton.walk(.start, prefix.utf8)
            #expect(state.phase != .dead, "\(prefix)")
            let closed = prefix + String(decoding: automaton.shortestCompletion(state), as: UTF8.self)
            #expect(automaton.accepts(closed), "\(closed)")
        }
        #expect(
            String(
                decoding: automaton.shortestCompletion(automaton.walk(.start, "{\"brightness\":-".utf8)), as: UTF8.self)
                == "1,\"intent\":\"HassTurnOn\"}")
    }

    @Test("batched decoding: the same texts and confidences as one prompt at a time; batched logits match prefill")
    func batchedEqualsSingle() throws {
        let tokenizer = try schemaTokenizer()
        let model = try schemaLlama(seed: 12, vocabulary: tokenizer.count)
        var generator = SeededGenerator(seed: 31)
        let prompts: [[Int32]] = (0..<7).map { index in
            (0..<(1 + index * 3 % 11)).map { _ in Int32.random(in: 0..<Int32(tokenizer.count), using: &generator) }
        }
        let decoder = try SchemaDecoder(schema: mixedSchema, tokenizer: tokenizer, maxTokens: 30, maxStringBytes: 10)
        let single = try prompts.map { try decoder.decode(model, prompt: $0) }
        for batchSize in [1, 3, 16] {
            let batched = try decoder.decode(model, prompts: prompts, batchSize: batchSize)
            #expect(batched.count == prompts.count)
            for (a, b) in zip(single, batched) {
                #expect(a.text == b.text && a.steps == b.steps && a.forcedTokens == b.forcedTokens)
                #expect(abs(a.confidence - b.confidence) < 1e-5)
            }
        }
        #expect(Set(single.map(\.text)).count > 1)
        // The pass itself: prompts of different lengths, then a step with a skipped sequence.
        var caches = prompts.prefix(4).map { _ in LlamaDecoder.Cache(layers: 2) }
        var alone = caches
        let first = try model.prefill(batch: Array(prompts.prefix(4)), caches: &caches)
        for i in 0..<4 {
            #expect(maxGap(first[i], try model.prefill(prompts[i], cache: &alone[i])) < 1e-4)
        }
        let steps: [[Int32]] = [[7], [], [8, 9, 10], [11]]
        let second = try model.prefill(batch: steps, caches: &caches)
        #expect(second[1].isEmpty && caches[1].count == prompts[1].count)
        for i in [0, 2, 3] {
            #expect(maxGap(second[i], try model.prefill(steps[i], cache: &alone[i])) < 1e-4)
            #expect(caches[i].count == alone[i].count)
        }
        #expect(throws: StudentError.self) { try model.prefill(batch: [[1]], caches: &caches) }
    }

    @Test("errors: no <|im_end|>, bad limits, a small decoder vocabulary, empty or overlong prompts")
    func errors() throws {
        let tokenizer = try schemaTokenizer()
        let plain = try BPETokenizer(gguf: tinyTokenizerFile())
        #expect(throws: Never.self) { try SchemaDecoder(schema: mixedSchema, tokenizer: plain) }
        var w = GGUFWriter()
        w.metadata = [
            ("tokenizer.ggml.model", .string("gpt2")),
            ("tokenizer.ggml.tokens", .array(BPETokenizer.byteScalars.map { .string(String(Character($0))) })),
        ]
        let bare = try BPETokenizer(gguf: GGUFFile.read(w.encoded()))
        do {
            _ = try SchemaDecoder(schema: mixedSchema, tokenizer: bare)
            Issue.record("a vocabulary without <|im_end|> was accepted")
        } catch { #expect(error.message.contains("<|im_end|>")) }
        #expect(throws: StudentError.self) {
            try SchemaDecoder(schema: mixedSchema, tokenizer: tokenizer, maxTokens: -1)
        }
        let decoder = try SchemaDecoder(schema: mixedSchema, tokenizer: tokenizer)
        let small = try LlamaDecoder(gguf: GGUFFile.read(tinyLlama().encoded()))
        #expect(throws: StudentError.self) { try decoder.decode(small, prompt: [1]) }
        let model = try schemaLlama(seed: 1, vocabulary: tokenizer.count, contextLength: 16)
        #expect(throws: StudentError.self) { try decoder.decode(model, prompt: []) }
        #expect(throws: StudentError.self) { try decoder.decode(model, prompt: Array(repeating: 5, count: 16)) }
        #expect(throws: StudentError.self) { try decoder.decode(model, prompt: [Int32(tokenizer.count)]) }
        #expect(throws: StudentError.self) { try decoder.decode(model, prompts: [[1], []]) }
        #expect(throws: StudentError.self) { try decoder.decode(model, prompts: [[1]], batchSize: 0) }
        // A context that runs out closes the object early, still valid.
        let output = try decoder.decode(model, prompt: Array(repeating: 5, count: 12))
        #expect(mixedSchema.isValid(output.answer) && output.steps + output.forcedTokens <= 5)
    }

    @Test(
        "SmolLM2-135M-Instruct: ha-like schema, three SlmFormat prompts decode to valid answers (timed)",
        .enabled(if: smolLMPresent, "run `make models` to fetch SmolLM2-135M-Instruct"))
    func smolLM() throws {
        let file = try GGUFFile(url: smolLMFile)
        let tokenizer = try BPETokenizer(gguf: file)
        let model = try LlamaDecoder(gguf: file)
        let schema = StructuredSchema(
            properties: [
                "intent": .init(
                    type: .string,
                    allowed: ["HassTurnOn", "HassTurnOff", "HassLightSet", "HassGetWeather"].map { .string($0) }),
                "name": .init(type: .string), "brightness": .init(type: .integer),
            ],
            required: ["intent"])
        let decoder = try SchemaDecoder(schema: schema, tokenizer: tokenizer, maxTokens: 32)
        let inputs = ["turn on the kitchen light", "set the desk lamp to 40% brightness", "what's the weather like"]
        let clock = ContinuousClock()
        for input in inputs {
            let start = clock.now
            var statistics = SchemaDecoder.Statistics()
            let output = try decoder.decode(
                model, prompt: SlmFormat.promptTokens(input, tokenizer: tokenizer), statistics: &statistics)
            let seconds = (clock.now - start) / .seconds(1)
            #expect(schema.isValid(output.answer), "\(output.text)")
            print(
                "slm constrained decoding: \(input) → \(output.text) confidence \(output.confidence) steps "
                    + "\(output.steps) forced \(output.forcedTokens), \(String(format: "%.3f", seconds)) s (masking "
                    + "\(String(format: "%.4f", statistics.maskingSeconds)) s)")
        }
    }
}

/// Constrained decoding of SmolLM2-135M-Instruct (untrained for the task) on ha-extract-en (not in CI: needs
/// ../shared/bench and RETORT_SLM_BENCH=1). Prints the median single-input latency, the share of forced tokens, the
/// masking time per model choice, rows/s batched (B = 1, 8, 32) and exact match against the teacher.
@Suite struct DecoderSchemaBenchTests {
    static let folder = URL(
        fileURLWithPath: ProcessInfo.processInfo.environment["RETORT_SLM_BENCH_TASK"]
            ?? "/work/shared/bench/ha-extract-en")
    static let enabled =
        ProcessInfo.processInfo.environment["RETORT_SLM_BENCH"] == "1" && smolLMPresent
        && FileManager.default.fileExists(atPath: folder.appendingPathComponent("task.json").path)

    @Test(
        "ha-extract-en: constrained decoding latency, forced share, masking time, batched rows/s, exact match",
        .enabled(if: enabled, "set RETORT_SLM_BENCH=1 with the model and ../shared/bench/ha-extract-en present"))
    func bench() throws {
        let task = try StructuredTaskData.load(folder: Self.folder)
        let file = try GGUFFile(url: smolLMFile)
        let tokenizer = try BPETokenizer(gguf: file)
        let model = try LlamaDecoder(gguf: file)
        let decoder = try SchemaDecoder(schema: task.schema, tokenizer: tokenizer, maxTokens: 64)
        let rows = min(64, task.validation.count)
        let prompts = task.validation.texts.prefix(rows).map { SlmFormat.promptTokens($0, tokenizer: tokenizer) }
        let clock = ContinuousClock()
        func seconds(_ body: () throws -> Void) rethrows -> Double {
            let start = clock.now
            try body()
            return (clock.now - start) / .seconds(1)
        }
        var latencies: [Double] = []
        var single: [SchemaDecoder.Output] = []
        var statistics = SchemaDecoder.Statistics()
        for prompt in prompts.prefix(8) {
            latencies.append(
                try seconds { single.append(try decoder.decode(model, prompt: prompt, statistics: &statistics)) })
        }
        let (steps, forced) = (single.map(\.steps).reduce(0, +), single.map(\.forcedTokens).reduce(0, +))
        let median = latencies.sorted()[latencies.count / 2]
        let share = 100 * Double(forced) / Double(max(steps + forced, 1))
        let masking = 1000 * statistics.maskingSeconds / Double(max(statistics.choices, 1))
        let forward = 1000 * statistics.forwardSeconds / Double(max(statistics.passes, 1))
        print(
            "slm bench single (\(latencies.count) inputs): median \(String(format: "%.3f", median)) s, latencies "
                + latencies.map { String(format: "%.3f", $0) }.joined(separator: " ") + "; prompt tokens "
                + prompts.prefix(8).map { "\($0.count)" }.joined(separator: " ") + "; model choices \(steps), forced "
                + "\(forced) (\(String(format: "%.1f", share))%); passes \(statistics.passes); masking "
                + "\(String(format: "%.2f", masking)) ms per choice, forward \(String(format: "%.1f", forward)) ms per pass"
        )
        for output in single.prefix(8) {
            print("  \(output.text) confidence \(String(format: "%.3f", output.confidence))")
        }
        var batched: [SchemaDecoder.Output] = []
        for batchSize in [1, 8, 32] {
            var batchStatistics = SchemaDecoder.Statistics()
            let time = try seconds {
                batched = try decoder.decode(
                    model, prompts: Array(prompts), batchSize: batchSize, statistics: &batchStatistics)
            }
            let same = zip(single, batched).filter { $0.text == $1.text }.count
            print(
                "slm bench batched B=\(batchSize): \(rows) rows in \(String(format: "%.1f", time)) s = "
                    + "\(String(format: "%.2f", Double(rows) / time)) rows/s; passes \(batchStatistics.passes), "
                    + "masking \(String(format: "%.2f", batchStatistics.maskingSeconds)) s, forward "
                    + "\(String(format: "%.1f", batchStatistics.forwardSeconds)) s; same text as single "
                    + "\(same)/\(min(single.count, batched.count))")
        }
        let teacher = task.validation.teacher.prefix(rows)
        let exact = zip(batched, teacher).filter { $0.answer == $1 }.count
        let valid = batched.filter { task.schema.isValid($0.answer) }.count
        let intents = zip(batched, teacher).filter { $0.answer["intent"] == $1?["intent"] }.count
        let confidence = batched.map(\.confidence).reduce(0, +) / Double(max(batched.count, 1))
        print(
            "slm bench quality (untrained base model): exact match vs teacher \(exact)/\(rows), intent \(intents)/"
                + "\(rows), valid \(valid)/\(rows), mean confidence \(String(format: "%.3f", confidence))")
    }
}

import Foundation
import RetortData
import RetortNumerics
import Testing

@testable import RetortStudents

/// Adapters on `decoder` with every `B` set to seeded uniform values in `±spread` (fresh adapters have `B = 0`).
func randomizedAdapters(
    _ decoder: LlamaDecoder, config: LoRAConfig, spread: Float = 0.3, seed: UInt64 = 5
) throws -> LoRAAdapters {
    var adapters = try LoRAAdapters(config: config, decoder: decoder.config)
    var generator = SeededGenerator(seed: seed)
    for p in adapters.pairs.indices {
        let b = adapters.pairs[p].b
        adapters.pairs[p].b = Matrix(
            rows: b.rows, columns: b.columns, uniformFrom: -spread, to: spread, generator: &generator)
    }
    return adapters
}

/// Summed cross-entropy of `targets` after `prompt`, straight from full logits.
func directLoss(_ logits: Matrix, promptCount: Int, targets: [Int32]) -> Double {
    var total = 0.0
    for (t, target) in targets.enumerated() {
        let row = logits.row(promptCount - 1 + t)
        total += Double(Kernels.logSumExp(row) - row[Int(target)])
    }
    return total
}

@Suite struct DecoderLoRATests {
    let decoder: LlamaDecoder
    let prompt: [Int32] = [3, 17, 17, 0, 8, 25, 12]
    let target: [Int32] = [5, 30, 2, 14, 39]

    init() throws {
        decoder = try LlamaDecoder(gguf: GGUFFile.read(tinyLlama().encoded()))
    }

    @Test("LoRA gradients: analytic dA and dB of every target match central differences (depth 2 and 1 of 2)")
    func gradientCheck() throws {
        var generator = SeededGenerator(seed: 3)
        var worst: Float = 0
        for depth in [2, 1] {
            let config = LoRAConfig(rank: 3, alpha: 6, depth: depth, targets: LoRATarget.allCases)
            let adapters = try randomizedAdapters(decoder, config: config)
            let cached = try decoder.residual(prompt + target.dropLast(), lowerBlocks: adapters.firstLayer)
            var gradients = LoRAGradients(zeroFor: adapters)
            _ = try decoder.adaptedLoss(
                cached: cached, targets: target, adapters: adapters, gradientScale: 1, gradients: &gradients)
            func loss(_ a: LoRAAdapters) throws -> Double {
                var unused = LoRAGradients(zeroFor: a)
                return try decoder.adaptedLoss(
                    cached: cached, targets: target, adapters: a, gradientScale: nil, gradients: &unused)
            }
            #expect(adapters.pairs.count == 7 * depth)
            for p in adapters.pairs.indices {
                for matrix in ["a", "b"] {
                    let count = matrix == "a" ? adapters.pairs[p].a.storage.count : adapters.pairs[p].b.storage.count
                    for _ in 0..<3 {
                        let i = Int.random(in: 0..<count, using: &generator)
                        let epsilon: Float = 5e-3
                        var plus = adapters
                        var minus = adapters
                        if matrix == "a" {
                            plus.pairs[p].a.storage[i] += epsilon
                            minus.pairs[p].a.storage[i] -= epsilon
                        } else {
                            plus.pairs[p].b.storage[i] += epsilon
                            minus.pairs[p].b.storage[i] -= epsilon
                        }
                        let numeric = Float((try loss(plus) - loss(minus)) / Double(2 * epsilon))
                        let analytic = matrix == "a" ? gradients.a[p].storage[i] : gradients.b[p].storage[i]
                        let error = abs(numeric - analytic) / max(abs(numeric), abs(analytic), 0.05)
                        worst = max(worst, error)
                        #expect(
                            error < 2e-2,
                            "depth \(depth), block \(adapters.pairs[p].layer) \(adapters.pairs[p].target) \(matrix)[\(i)]: analytic \(analytic), numeric \(numeric)"
                        )
                    }
                }
            }
        }
        print("LoRA gradient check: largest relative error \(worst)")
    }

    @Test("LoRA forward: the cached lower blocks give the full forward; merged() logits equal the un-merged adapters")
    func forwardAndMerge() throws {
        let tokens = prompt + target
        let full = try decoder.logits(tokens: tokens)
        let residual = try decoder.residual(tokens, lowerBlocks: 2)
        let viaResidual = try decoder.project(decoder.rmsNorm(residual, decoder.outputNorm))
        #expect(maxGap(full.storage, viaResidual.storage) < 1e-5)
        // Fresh adapters (B = 0) change nothing; the loss from a 1-block cache equals the full forward's.
        let fresh = try LoRAAdapters(
            config: LoRAConfig(depth: 1, targets: LoRATarget.allCases), decoder: decoder.config)
        #expect(maxGap(try decoder.logits(tokens: tokens, adapters: fresh).storage, full.storage) < 1e-5)
        let cached = try decoder.residual(prompt + target.dropLast(), lowerBlocks: 1)
        var unused = LoRAGradients(zeroFor: fresh)
        let cachedLoss = try decoder.adaptedLoss(
            cached: cached, targets: target, adapters: fresh, gradientScale: nil, gradients: &unused)
        #expect(abs(cachedLoss - directLoss(full, promptCount: prompt.count, targets: target)) < 1e-4)
        // Trained-looking adapters: merged weights give the un-merged forward's logits.
        for depth in [1, 2] {
            let adapters = try randomizedAdapters(
                decoder, config: LoRAConfig(rank: 4, depth: depth, targets: LoRATarget.allCases))
            let unmerged = try decoder.logits(tokens: tokens, adapters: adapters)
            let merged = try adapters.merged(into: decoder)
            #expect(maxGap(try merged.logits(tokens: tokens).storage, unmerged.storage) < 1e-4)
            #expect(maxGap(unmerged.storage, full.storage) > 1e-2, "the adapters must change the logits")
            #expect((merged.layers[0] == decoder.layers[0]) == (depth == 1))
            let cachedAdapted = try decoder.residual(prompt + target.dropLast(), lowerBlocks: 2 - depth)
            let loss = try decoder.adaptedLoss(
                cached: cachedAdapted, targets: target, adapters: adapters, gradientScale: nil, gradients: &unused)
            #expect(abs(loss - directLoss(unmerged, promptCount: prompt.count, targets: target)) < 1e-3)
        }
        let other = try LlamaDecoder(gguf: GGUFFile.read(tinyLlama(contextLength: 32).encoded()))
        #expect(throws: StudentError.self) { try fresh.merged(into: other) }
    }

    @Test("LoRA training memorises four prompts: loss falls and greedy decoding of the merged model reproduces them")
    func memorise() throws {
        let examples: [(prompt: [Int32], target: [Int32])] = [
            ([1, 2, 3, 4], [20, 21, 22, 39]), ([5, 6, 7], [23, 24, 25, 26, 39]),
            ([8, 9, 10, 11, 12], [27, 28, 39]), ([13, 14], [29, 30, 31, 32, 39]),
        ]
        func reproduced(_ model: LlamaDecoder) throws -> Int {
            try examples.filter { try model.generate(prompt: $0.prompt, maxTokens: 8) == $0.target.dropLast() }.count
        }
        #expect(try reproduced(decoder) == 0)
        let config = LoRAConfig(
            rank: 4, alpha: 8, depth: 2, targets: LoRATarget.allCases, epochs: 40, learningRate: 1e-2, batchSize: 2,
            seed: 7)
        let (adapters, report) = try LoRATrainer.train(decoder: decoder, examples: examples, config: config)
        #expect(report.epochLosses.count == 40 && report.examples == 4)
        #expect(report.tokens == 40 * examples.reduce(0) { $0 + $1.prompt.count + $1.target.count - 1 })
        let (first, last) = (report.epochLosses[0], report.epochLosses[39])
        #expect(first > 2 && last < 0.1 * first, "loss \(first) → \(last)")
        #expect(try reproduced(adapters.merged(into: decoder)) == 4)
        // The same seed trains the same adapters; maxTrainRows subsamples.
        let (again, _) = try LoRATrainer.train(decoder: decoder, examples: examples, config: config)
        #expect(again.pairs == adapters.pairs)
        var fewer = config
        (fewer.maxTrainRows, fewer.epochs) = (2, 1)
        #expect(try LoRATrainer.train(decoder: decoder, examples: examples, config: fewer).1.examples == 2)
        // Weights: an example of weight 0 is not learned.
        let weighted = try LoRATrainer.train(
            decoder: decoder, examples: examples, weights: [1, 1, 1, 0], config: config
        ).0.merged(into: decoder)
        #expect(try weighted.generate(prompt: examples[3].prompt, maxTokens: 8) != examples[3].target.dropLast())
    }

    @Test("LoRA tensors: fp32 round-trips exactly, fp16 within rounding; bad tensors and inputs are StudentErrors")
    func tensorsRoundTrip() throws {
        let config = LoRAConfig(rank: 2, depth: 1, targets: [.query, .down])
        let adapters = try randomizedAdapters(decoder, config: config)
        let tensors = try adapters.tensors(precision: .fp32)
        #expect(
            Set(tensors.keys)
                == ["blk.1.attn_q.lora_a", "blk.1.attn_q.lora_b", "blk.1.ffn_down.lora_a", "blk.1.ffn_down.lora_b"])
        #expect(
            tensors["blk.1.ffn_down.lora_a"]?.shape == [2, 64] && tensors["blk.1.ffn_down.lora_b"]?.shape == [32, 2])
        #expect(adapters.parameterCount == 2 * (32 + 32) + 2 * (64 + 32))
        let back = try LoRAAdapters(tensors: tensors, config: config, decoder: decoder.config, file: "a.safetensors")
        #expect(back.pairs == adapters.pairs)
        let half = try LoRAAdapters(
            tensors: adapters.tensors(precision: .fp16), config: config, decoder: decoder.config, file: "h")
        for (x, y) in zip(half.pairs, adapters.pairs) {
            for (u, v) in zip(x.a.storage + x.b.storage, y.a.storage + y.b.storage) {
                #expect(u == Float(Float16(v)) && abs(u - v) <= abs(v) * 1e-3)
            }
        }
        let file = try adapters.safetensors(precision: .fp32)
        #expect(try LoRAAdapters(safetensors: file, decoder: decoder.config, file: "f").pairs == adapters.pairs)
        #expect(throws: StudentError.self) { try adapters.tensors(precision: .int8) }

        func message(_ tensors: [String: Tensor], _ config: LoRAConfig = config) -> String {
            do {
                _ = try LoRAAdapters(tensors: tensors, config: config, decoder: decoder.config, file: "bad.safetensors")
                return ""
            } catch {
                return error.description
            }
        }
        var missing = tensors
        missing["blk.1.attn_q.lora_b"] = nil
        #expect(message(missing).contains("\"blk.1.attn_q.lora_b\" is missing"))
        #expect(message(missing).hasPrefix("bad.safetensors: "))
        var shape = tensors
        shape["blk.1.attn_q.lora_a"] = Tensor([Float](repeating: 0, count: 3 * 32), shape: [3, 32])
        #expect(message(shape).contains("expected [2, 32]"))
        var outside = tensors
        outside["blk.0.attn_q.lora_a"] = tensors["blk.1.attn_q.lora_a"]
        #expect(message(outside).contains("outside the top 1 blocks"))
        var beyond = tensors
        beyond["blk.7.attn_q.lora_a"] = tensors["blk.1.attn_q.lora_a"]
        #expect(message(beyond).contains("block 7"))
        var untargeted = tensors
        untargeted["blk.1.ffn_up.lora_a"] = tensors["blk.1.attn_q.lora_a"]
        #expect(message(untargeted).contains("leave out"))
        var integers = tensors
        integers["blk.1.attn_q.lora_a"] = Tensor([Int8](repeating: 0, count: 64), shape: [2, 32])
        #expect(message(integers).contains("F32 or F16"))
        #expect(message(tensors, LoRAConfig(rank: 2, depth: 3, targets: [.query])).contains("depth is 3"))
        #expect(message(tensors, LoRAConfig(rank: 0, depth: 1, targets: [])).contains("no targets"))
        #expect(throws: StudentError.self) {
            try LoRAAdapters(safetensors: Safetensors.encode(tensors), decoder: decoder.config, file: "f")
        }

        func trainingMessage(_ examples: [(prompt: [Int32], target: [Int32])]) -> String {
            do {
                _ = try LoRATrainer.train(decoder: decoder, examples: examples, config: LoRAConfig(epochs: 1))
                return ""
            } catch {
                return error.description
            }
        }
        #expect(trainingMessage([]).contains("no training examples"))
        #expect(trainingMessage([([1], [2]), ([1], [])]).contains("example 1: the target has no tokens"))
        #expect(trainingMessage([([1, 40], [2])]).contains("token id 40"))
        #expect(trainingMessage([(Array(repeating: 1, count: 60), Array(repeating: 2, count: 6))]).contains("context"))
    }

    @Test(
        "SmolLM2-135M-Instruct: LoRA at depth 2 on 16 home-automation commands lowers the loss",
        .enabled(if: smolLMPresent, "run `make models` to fetch SmolLM2-135M-Instruct"))
    func smolLMTrains() throws {
        let file = try GGUFFile(url: smolLMFile)
        let tokenizer = try BPETokenizer(gguf: file)
        let decoder = try LlamaDecoder(gguf: file)
        let devices = ["kitchen light", "porch fan", "bedroom lamp", "garage door"]
        let intents = [("turn on the", "HassTurnOn"), ("switch off the", "HassTurnOff")]
        var examples: [(prompt: [Int32], target: [Int32])] = []
        for device in devices {
            for (phrase, intent) in intents {
                for prefix in ["", "please "] {
                    let answer = StructuredAnswer(["intent": .string(intent), "name": .string(device)])
                    examples.append(
                        (
                            SlmFormat.promptTokens("\(prefix)\(phrase) \(device)", tokenizer: tokenizer),
                            SlmFormat.targetTokens(answer, tokenizer: tokenizer)
                        ))
                }
            }
        }
        #expect(examples.count == 16)
        let config = LoRAConfig(rank: 8, depth: 2, epochs: 2, learningRate: 2e-3, batchSize: 4)
        let (adapters, report) = try LoRATrainer.train(decoder: decoder, examples: examples, config: config)
        print(
            "SmolLM2 LoRA: losses \(report.epochLosses), cache \(report.cacheSeconds) s, "
                + "\(Int(report.tokensPerSecond)) tokens/s")
        #expect(report.epochLosses[1] < 0.8 * report.epochLosses[0], "\(report.epochLosses)")
        // Per block, rank 8: q and o 576+576, v 576+192, gate, up and down 576+1536.
        #expect(adapters.parameterCount == 2 * 8 * (2 * 1152 + 768 + 3 * 2112))
    }
}

/// The LoRA measurement on ha-extract-en (not a check: it prints numbers). Runs only with `RETORT_LORA_MEASURE=1`;
/// `RETORT_LORA_DATA` (default `../shared/bench/ha-extract-en`), `RETORT_LORA_ROWS` (512), `RETORT_LORA_DEPTHS`
/// ("2,4"), `RETORT_LORA_EPOCHS` (2), `RETORT_LORA_RANK` (8), `RETORT_LORA_LR` (the default, 0.005), `RETORT_LORA_TARGETS`
/// (comma-separated, default ``LoRAConfig/defaultTargets``) and `RETORT_LORA_VALID` (50) adjust it.
@Suite struct LoRAMeasurement {
    static let environment = ProcessInfo.processInfo.environment
    static let enabled = environment["RETORT_LORA_MEASURE"] == "1" && smolLMPresent

    static func rows(_ url: URL, limit: Int) throws -> [(input: String, answer: StructuredAnswer)] {
        var out: [(input: String, answer: StructuredAnswer)] = []
        for line in try String(contentsOf: url, encoding: .utf8).split(separator: "\n") where out.count < limit {
            guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                let input = object["input"] as? String, let teacher = object["teacher"] as? [String: Any],
                let text = teacher["text"] as? String, let answer = StructuredAnswer.parse(text: text)
            else { continue }
            out.append((input, answer))
        }
        return out
    }

    static func peakRSS() -> String {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        return status.split(separator: "\n").filter { $0.hasPrefix("VmHWM") || $0.hasPrefix("VmRSS") }
            .map { $0.replacingOccurrences(of: "\t", with: "").replacingOccurrences(of: "  ", with: "") }
            .joined(separator: ", ")
    }

    /// Share of outputs that parse as a JSON answer and share equal to the teacher's, and seconds.
    static func evaluate(
        _ model: LlamaDecoder, _ rows: [(input: String, answer: StructuredAnswer)], tokenizer: BPETokenizer
    ) throws -> (parsed: Double, exact: Double, seconds: Double, sample: String) {
        let end = tokenizer.encode(SlmFormat.turnEnd)
        let start = Date()
        var (parsed, exact) = (0, 0)
        var sample = ""
        for (i, row) in rows.enumerated() {
            let ids = try model.generate(
                prompt: SlmFormat.promptTokens(row.input, tokenizer: tokenizer), maxTokens: 48, stop: Set(end))
            let text = tokenizer.decode(ids)
            if i < 2 { sample += "[\(row.input) → \(text)] " }
            if let answer = StructuredAnswer.parse(text: text) {
                parsed += 1
                if answer.canonicalJSON == row.answer.canonicalJSON { exact += 1 }
            }
        }
        let n = Double(rows.count)
        return (Double(parsed) / n, Double(exact) / n, Date().timeIntervalSince(start), sample)
    }

    @Test("measure LoRA on ha-extract-en (RETORT_LORA_MEASURE=1)", .enabled(if: enabled))
    func measure() throws {
        let env = Self.environment
        let data = URL(
            fileURLWithPath: env["RETORT_LORA_DATA"] ?? "../shared/bench/ha-extract-en", relativeTo: repositoryRoot)
        let count = Int(env["RETORT_LORA_ROWS"] ?? "") ?? 512
        let depths = (env["RETORT_LORA_DEPTHS"] ?? "2,4").split(separator: ",").compactMap { Int($0) }
        let epochs = Int(env["RETORT_LORA_EPOCHS"] ?? "") ?? 2
        let rank = Int(env["RETORT_LORA_RANK"] ?? "") ?? 8
        let learningRate = Double(env["RETORT_LORA_LR"] ?? "") ?? LoRAConfig().learningRate
        let targets =
            env["RETORT_LORA_TARGETS"].map { $0.split(separator: ",").compactMap { LoRATarget(rawValue: String($0)) } }
            ?? LoRAConfig.defaultTargets
        let validCount = Int(env["RETORT_LORA_VALID"] ?? "") ?? 50
        let file = try GGUFFile(url: smolLMFile)
        let tokenizer = try BPETokenizer(gguf: file)
        let decoder = try LlamaDecoder(gguf: file)
        let train = try Self.rows(data.appendingPathComponent("train.jsonl"), limit: count)
        let valid = try Self.rows(data.appendingPathComponent("validation.jsonl"), limit: validCount)
        let examples = train.map {
            (
                prompt: SlmFormat.promptTokens($0.input, tokenizer: tokenizer),
                target: SlmFormat.targetTokens($0.answer, tokenizer: tokenizer)
            )
        }
        let promptTokens = examples.reduce(0) { $0 + $1.prompt.count }
        let targetTokens = examples.reduce(0) { $0 + $1.target.count }
        print(
            "LoRA measure: \(examples.count) train rows (\(promptTokens) prompt, \(targetTokens) target tokens), "
                + "\(valid.count) validation rows, BLAS threads \(BLASThreads.current)")
        if env["RETORT_LORA_BASELINE"] != "0" {
            let base = try Self.evaluate(decoder, valid, tokenizer: tokenizer)
            print(
                "LoRA measure: before training: parsed \(base.parsed), exact \(base.exact), \(base.seconds) s; \(base.sample)"
            )
        }
        for depth in depths {
            let config = LoRAConfig(
                rank: rank, alpha: Double(2 * rank), depth: depth, targets: targets, epochs: epochs,
                learningRate: learningRate, batchSize: 8)
            let (adapters, report) = try LoRATrainer.train(
                decoder: decoder, examples: examples, config: config, progress: { print("  \($0)") })
            print(
                "LoRA measure: depth \(depth), rank \(rank), targets \(targets.map(\.rawValue)), lr \(learningRate): "
                    + "\(adapters.parameterCount) parameters, cache \(report.cacheSeconds) s, epochs "
                    + "\(report.epochSeconds) s, losses \(report.epochLosses), \(Int(report.tokensPerSecond)) tokens/s, "
                    + Self.peakRSS())
            let merged = try adapters.merged(into: decoder)
            let after = try Self.evaluate(merged, valid, tokenizer: tokenizer)
            print(
                "LoRA measure: depth \(depth) after: parsed \(after.parsed), exact \(after.exact), \(after.seconds) s; \(after.sample)"
            )
        }
    }
}

import ArgumentParser
import Foundation
import RetortData
import RetortNumerics
import RetortStudents

/// `retort bench slm`: the `slm` student's Swift decoder timed on a structured task's validation prompts (built by
/// ``SlmFormat``), with everything a comparison with another engine needs written to a JSON file: the prompts' text and
/// token ids, the greedy tokens generated, and per input the prefill time, each decode step's time and the end-to-end
/// time. Then schema-constrained decoding (``SchemaDecoder``) one input at a time and in batches, and LoRA training
/// throughput. `scripts/bench_slm_engines.py` (`make bench-slm`) runs llama.cpp on the same prompts and weights.
struct BenchSlm: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "slm",
        abstract:
            "Time the slm student's Swift decoder: prefill, decode steps, constrained and batched decoding, LoRA training."
    )

    @Option(help: "The GGUF file of the decoder (`make models` fetches SmolLM2-135M-Instruct).")
    var model = SlmStudent.defaultModelPath
    @Option(help: "A structured task folder (FORMATS.md §9): its validation inputs are the prompts.")
    var task = "../shared/bench/ha-extract-en"
    @Option(help: "Validation inputs timed (the first N).")
    var rows = 50
    @Option(name: .customLong("max-tokens"), help: "Most tokens generated per input by unconstrained greedy decoding.")
    var maxTokens = 32
    @Option(
        name: .customLong("constrained-max-tokens"), help: "Most tokens per answer of schema-constrained decoding.")
    var constrainedMaxTokens = 64
    @Option(help: "OpenBLAS threads.")
    var threads = 2
    @Option(name: .customLong("batch-sizes"), help: "Batch sizes of batched constrained decoding, comma-separated.")
    var batchSizes = "16,32"
    @Option(name: .customLong("train-rows"), help: "Train rows (with a valid teacher answer) LoRA trains on.")
    var trainRows = 64
    @Option(help: "LoRA depths (adapted top blocks) to time, comma-separated.")
    var depths = "2,4"
    @Option(help: "LoRA rank.")
    var rank = 8
    @Option(help: "LoRA epochs per timed training run.")
    var epochs = 2
    @Option(help: "Where the JSON with every measurement is written.")
    var out = ".build-bench/slm-swift.json"

    func validate() throws {
        try OptionChecks.integer(rows, "--rows", in: 1...100_000)
        try OptionChecks.integer(maxTokens, "--max-tokens", in: 1...4096)
        try OptionChecks.integer(constrainedMaxTokens, "--constrained-max-tokens", in: 1...4096)
        try OptionChecks.integer(threads, "--threads", in: 1...256)
        _ = try OptionChecks.integers(batchSizes, "--batch-sizes", in: 1...1024)
        try OptionChecks.integer(trainRows, "--train-rows", in: 1...1_000_000)
        _ = try OptionChecks.integers(depths, "--depths", in: 1...1024)
        try OptionChecks.integer(rank, "--rank", in: 1...1024)
        try OptionChecks.integer(epochs, "--epochs", in: 1...100)
    }

    /// One input decoded greedily without constraints.
    struct Greedy: Codable {
        /// The prompt's token count.
        var promptTokens: Int
        /// Seconds of the prompt's prefill (which also yields the first token's logits).
        var prefillSeconds: Double
        /// Seconds of each decode step (one per generated token but the last).
        var stepSeconds: [Double]
        /// Seconds from the empty cache to the last token, argmax included.
        var totalSeconds: Double
        /// The generated ids (the end token not included).
        var tokens: [Int32]
    }

    /// One LoRA training run.
    struct Training: Codable {
        var depth: Int
        var rank: Int
        var examples: Int
        var epochs: Int
        /// Positions run forward and backward through the adapted blocks over all epochs.
        var tokens: Int
        var targetTokens: Int
        var cacheSeconds: Double
        var epochSeconds: [Double]
        var tokensPerSecond: Double
        var finalLoss: Double
    }

    /// What the JSON file holds.
    struct Report: Codable {
        var model: String
        var task: String
        var threads: Int
        var maxTokens: Int
        var constrainedMaxTokens: Int
        var weightTypes: [String: Int]
        var stopTokens: [Int32]
        var inputs: [String]
        var prompts: [String]
        var promptTokens: [[Int32]]
        var greedy: [Greedy]
        /// Seconds per input of constrained decoding, one input at a time.
        var constrainedSeconds: [Double]
        var constrainedTexts: [String]
        var constrainedTokens: [Int]
        /// Batch size → seconds to decode every input.
        var batchedSeconds: [String: Double]
        var batchedTextsMatch: [String: Int]
        var training: [Training]
        /// Seconds of one decode step's matrix products (every projection and the LM head, one row) through sgemm
        /// and through sgemv, medians of interleaved repeats.
        var stepProductsSgemm: Double
        var stepProductsSgemv: Double
    }

    func run() async throws {
        try await ErrorReporting.run {
            BLASThreads.set(threads)
            let modelURL = URL(fileURLWithPath: model)
            guard FileManager.default.fileExists(atPath: modelURL.path) else {
                throw DataError(.missingInput, "no GGUF file here; run `make models` or pass --model", file: model)
            }
            let data = try StructuredTaskData.load(folder: URL(fileURLWithPath: task))
            guard data.validation.count > 0 else {
                throw DataError(.badData, "the validation split has no rows to time", file: data.validation.path)
            }
            let gguf = try GGUFFile(url: modelURL)
            let tokenizer = try BPETokenizer(gguf: gguf)
            let decoder = try LlamaDecoder(gguf: gguf)
            var weightTypes: [String: Int] = [:]
            for info in gguf.tensorInfos { weightTypes[info.type.name, default: 0] += info.elementCount }
            let inputs = Array(data.validation.texts.prefix(rows))
            let prompts = inputs.map { SlmFormat.prompt($0) }
            let promptTokens = inputs.map { SlmFormat.promptTokens($0, tokenizer: tokenizer) }
            var stops: Set<Int32> = decoder.eos.map { [$0] } ?? []
            if let end = tokenizer.id(of: SlmFormat.turnEnd) { stops.insert(end) }
            say(
                "retort bench slm: \(inputs.count) prompts from \(data.validation.path), \(threads) OpenBLAS "
                    + "thread(s), model \(model)")

            _ = try greedy(decoder, prompt: promptTokens[0], stops: stops)  // warm-up
            var greedyRuns: [Greedy] = []
            for prompt in promptTokens { greedyRuns.append(try greedy(decoder, prompt: prompt, stops: stops)) }
            let prefillRates = greedyRuns.map { Double($0.promptTokens) / $0.prefillSeconds }
            let stepMeans = greedyRuns.filter { !$0.stepSeconds.isEmpty }.map {
                $0.stepSeconds.reduce(0, +) / Double($0.stepSeconds.count)
            }
            say(
                String(
                    format: "greedy, batch 1: prefill %.0f tokens/s, decode %.2f ms/token, end to end p50 %.1f ms",
                    median(prefillRates), 1000 * median(stepMeans), 1000 * median(greedyRuns.map(\.totalSeconds))))

            let constrained = try SchemaDecoder(
                schema: data.schema, tokenizer: tokenizer, maxTokens: constrainedMaxTokens)
            let clock = ContinuousClock()
            _ = try constrained.decode(decoder, prompt: promptTokens[0])  // warm-up
            var constrainedSeconds: [Double] = []
            var constrainedOutputs: [SchemaDecoder.Output] = []
            for prompt in promptTokens {
                let start = clock.now
                constrainedOutputs.append(try constrained.decode(decoder, prompt: prompt))
                constrainedSeconds.append((clock.now - start).inSeconds)
            }
            say(
                String(
                    format: "schema-constrained, batch 1: end to end p50 %.1f ms, %.2f rows/s",
                    1000 * median(constrainedSeconds), Double(inputs.count) / constrainedSeconds.reduce(0, +)))
            var batchedSeconds: [String: Double] = [:]
            var batchedMatch: [String: Int] = [:]
            for size in try OptionChecks.integers(batchSizes, "--batch-sizes", in: 1...1024) {
                let start = clock.now
                let outputs = try constrained.decode(decoder, prompts: promptTokens, batchSize: size)
                let elapsed = (clock.now - start).inSeconds
                batchedSeconds[String(size)] = elapsed
                batchedMatch[String(size)] = zip(outputs, constrainedOutputs).filter { $0.text == $1.text }.count
                say(
                    String(
                        format: "schema-constrained, batch %d: %.2f rows/s (%d of %d answers as at batch 1)", size,
                        Double(inputs.count) / elapsed, batchedMatch[String(size)] ?? 0, inputs.count))
            }

            var examples: [(prompt: [Int32], target: [Int32])] = []
            for (text, answer) in zip(data.train.texts, data.train.teacher) where examples.count < trainRows {
                guard let answer else { continue }
                examples.append(
                    (
                        SlmFormat.promptTokens(text, tokenizer: tokenizer),
                        SlmFormat.targetTokens(answer, tokenizer: tokenizer)
                    ))
            }
            guard !examples.isEmpty else {
                throw DataError(.badData, "no train row has a valid teacher answer to train on", file: data.train.path)
            }
            var training: [Training] = []
            for depth in try OptionChecks.integers(depths, "--depths", in: 1...decoder.config.layers) {
                let config = LoRAConfig(rank: rank, depth: depth, epochs: epochs)
                let (_, report) = try LoRATrainer.train(decoder: decoder, examples: examples, config: config)
                training.append(
                    Training(
                        depth: depth, rank: rank, examples: report.examples, epochs: epochs, tokens: report.tokens,
                        targetTokens: report.targetTokens, cacheSeconds: report.cacheSeconds,
                        epochSeconds: report.epochSeconds, tokensPerSecond: report.tokensPerSecond,
                        finalLoss: report.epochLosses.last ?? 0))
                say(
                    String(
                        format:
                            "LoRA rank %d depth %d, %d rows × %d epochs: %.0f tokens/s (%d tokens in %.2f s; the frozen "
                            + "blocks' cache %.2f s), loss %.3f",
                        rank, depth, report.examples, epochs, report.tokensPerSecond, report.tokens, report.seconds,
                        report.cacheSeconds, report.epochLosses.last ?? 0))
            }

            let products = try stepProducts(decoder, repeats: 15)
            say(
                String(
                    format: "one decode step's matrix products, one row: sgemm %.2f ms, sgemv %.2f ms (×%.2f)",
                    1000 * products.sgemm, 1000 * products.sgemv, products.sgemm / products.sgemv))

            let report = Report(
                model: model, task: task, threads: threads, maxTokens: maxTokens,
                constrainedMaxTokens: constrainedMaxTokens, weightTypes: weightTypes, stopTokens: stops.sorted(),
                inputs: inputs,
                prompts: prompts, promptTokens: promptTokens, greedy: greedyRuns,
                constrainedSeconds: constrainedSeconds, constrainedTexts: constrainedOutputs.map(\.text),
                constrainedTokens: constrainedOutputs.map { $0.steps + $0.forcedTokens },
                batchedSeconds: batchedSeconds, batchedTextsMatch: batchedMatch, training: training,
                stepProductsSgemm: products.sgemm, stepProductsSgemv: products.sgemv)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let outURL = URL(fileURLWithPath: out)
            try FileManager.default.createDirectory(
                at: outURL.deletingLastPathComponent(), withIntermediateDirectories: true)
            try encoder.encode(report).write(to: outURL, options: .atomic)
            say("wrote \(displayPath(outURL))")
        }
    }

    /// Greedy decoding of `prompt` with every phase timed: the prefill, then one step per generated token.
    func greedy(_ decoder: LlamaDecoder, prompt: [Int32], stops: Set<Int32>) throws -> Greedy {
        let clock = ContinuousClock()
        let start = clock.now
        var cache = LlamaDecoder.Cache(layers: decoder.config.layers)
        var logits = try decoder.prefill(prompt, cache: &cache)
        let prefillSeconds = (clock.now - start).inSeconds
        var tokens: [Int32] = []
        var steps: [Double] = []
        while true {
            let next = Int32(argmax(logits))
            if stops.contains(next) { break }
            tokens.append(next)
            if tokens.count == maxTokens || cache.count >= decoder.config.contextLength { break }
            let stepStart = clock.now
            logits = try decoder.step(next, cache: &cache)
            steps.append((clock.now - stepStart).inSeconds)
        }
        return Greedy(
            promptTokens: prompt.count, prefillSeconds: prefillSeconds, stepSeconds: steps,
            totalSeconds: (clock.now - start).inSeconds, tokens: tokens)
    }

    /// One decode step's matrix products (the seven projections of every block, then the LM head) on one input row,
    /// timed through 1-row sgemm (how the decoder ran a step before) and through sgemv (how it runs one now),
    /// alternating, `repeats` times each: the medians.
    func stepProducts(_ decoder: LlamaDecoder, repeats: Int) throws -> (sgemm: Double, sgemv: Double) {
        var weights = decoder.layers.flatMap { [$0.query, $0.key, $0.value, $0.output, $0.gate, $0.up, $0.down] }
        weights.append(decoder.output ?? decoder.embeddings)
        let inputs = weights.map {
            Matrix(rows: 1, columns: $0.columns, storage: [Float](repeating: 0.01, count: $0.columns))
        }
        var outputs = weights.map { [Float](repeating: 0, count: $0.rows) }
        let clock = ContinuousClock()
        var (sgemm, sgemv) = ([Double](), [Double]())
        for _ in 0..<repeats {
            var start = clock.now
            for (w, x) in zip(weights, inputs) { _ = try Matrix.product(x, w, transposeB: .transposed) }
            sgemm.append((clock.now - start).inSeconds)
            start = clock.now
            for i in weights.indices {
                try weights[i].storage.withUnsafeBufferPointer { (wp) throws in
                    try inputs[i].storage.withUnsafeBufferPointer { (xp) throws in
                        try outputs[i].withUnsafeMutableBufferPointer { (yp) throws in
                            try BLAS.gemv(
                                .none, rows: weights[i].rows, columns: weights[i].columns, a: wp,
                                lda: weights[i].columns, x: xp, y: yp)
                        }
                    }
                }
            }
            sgemv.append((clock.now - start).inSeconds)
        }
        return (median(sgemm), median(sgemv))
    }

    func argmax(_ values: [Float]) -> Int {
        var best = 0
        for i in values.indices where values[i] > values[best] { best = i }
        return best
    }

    func median(_ values: [Double]) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }
}

import ArgumentParser
import Foundation
import RetortData
import RetortEvals
import RetortNumerics
import RetortSearch
import RetortStudents

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Measure this machine's kernels: sgemm peak, mlp training GFLOP/s against it, sparse training, bootstrap CIs, predict latency.",
        subcommands: [BenchSlm.self])

    @Option(help: "Seconds per measurement (longer is steadier).")
    var seconds: Double = 1
    @Option(name: .customLong("bootstrap-rows"), help: "Rows N of the bootstrap measurement (B = 1000).")
    var bootstrapRows = 100_000
    @Option(
        name: .customLong("only"), parsing: .upToNextOption,
        help: "Measure only these sections (sgemm is always measured: the rest is judged against it).")
    var sections: [Section] = Section.allCases

    /// The parts of the benchmark.
    enum Section: String, CaseIterable, ExpressibleByArgument {
        case mlp, sparse, bootstrap, predict, encoder
    }

    @Option(help: "The BERT-family encoder folder the encoder section runs (skipped with a note when absent).")
    var encoder = ".build-models/all-MiniLM-L6-v2"

    func validate() throws {
        try OptionChecks.number(seconds, "--seconds", in: OptionChecks.benchmarkSeconds, unit: "seconds")
        try OptionChecks.integer(bootstrapRows, "--bootstrap-rows", in: 10...10_000_000)
    }

    func run() async throws {
        try await ErrorReporting.run {
            let cores = ProcessInfo.processInfo.activeProcessorCount
            let formatter = ISO8601DateFormatter()
            say(
                "retort bench on \(cores) vCPU, \(formatter.string(from: Date())); command: retort bench --seconds \(seconds) --bootstrap-rows \(bootstrapRows)"
                    + (sections == Section.allCases ? "" : " --only " + sections.map(\.rawValue).joined(separator: " "))
            )
            say("")
            say("| measurement | value | note |")
            say("|---|---|---|")
            BLASThreads.set(1)
            let single = MachineSpeed.sgemmFlopsPerSecond(seconds: seconds)
            let multi = MachineSpeed.sgemmFlopsPerSecond(size: 1024, threads: cores, seconds: seconds)
            say(
                String(
                    format: "| sgemm 256³, 1 thread | %.1f GFLOP/s | the per-core peak the rest is measured against |",
                    single / 1e9))
            say(
                String(
                    format: "| sgemm 1024³, %d threads | %.1f GFLOP/s | |", cores, multi / 1e9))
            for hidden in [256, 1024] where sections.contains(.mlp) {
                let rate = try mlpTrainingFlops(hidden: hidden, seconds: seconds)
                say(
                    String(
                        format:
                            "| mlp training, hidden %d, batch 256, dense input 256 → 32 classes, 1 thread | %.1f GFLOP/s | %.0f%% of 1-thread sgemm (forward + backward, counted analytically) |",
                        hidden, rate / 1e9, 100 * rate / single))
            }
            if sections.contains(.sparse) {
                let sparse = try sparseTrainingRate(seconds: seconds)
                say(
                    String(
                        format:
                            "| embedding-bag d=32 training on hashed text (2^16 buckets), 1 thread | %.0f examples/s | |",
                        sparse))
            }
            if sections.contains(.bootstrap) {
                let (withW, plain, generate) = try bootstrapTimes(rows: bootstrapRows)
                say(
                    String(
                        format:
                            "| bootstrap CIs, N = %d, B = 1000: accuracy + agreement + macro-F1 on a stored W | %.1f ms per model | W drawn once per split in %.0f ms |",
                        bootstrapRows, withW * 1000, generate * 1000))
                say(
                    String(
                        format:
                            "| the same accuracy CI by a plain resampling loop | %.0f ms per model | %.1f× the stored-W time, for one metric of three |",
                        plain * 1000, plain / withW))
            }
            for (family, profile) in sections.contains(.predict) ? try predictLatencies() : [] {
                say(
                    String(
                        format: "| predict one raw input, %@ | p50 %.4f ms, p95 %.4f ms | |", family, profile.p50,
                        profile.p95))
            }
            if sections.contains(.encoder) {
                let folder = URL(fileURLWithPath: encoder)
                if FileManager.default.fileExists(atPath: folder.appendingPathComponent("model.safetensors").path) {
                    let (rate, tokens) = try encoderFlops(folder: folder, seconds: seconds)
                    say(
                        String(
                            format:
                                "| encoder forward (%@, 6 layers), batches of 64 sentences × %d tokens, 1 thread | %.1f GFLOP/s | %.0f%% of 1-thread sgemm (counted analytically) |",
                            folder.lastPathComponent, tokens, rate / 1e9, 100 * rate / single))
                } else {
                    say("| encoder forward | skipped | no model at \(encoder): run `make models` |")
                }
            }
        }
    }

    /// Pooled sentence vectors through every layer for about `seconds`: FLOPs from `BertEncoder.flops(tokens:)`.
    func encoderFlops(folder: URL, seconds: Double) throws -> (Double, Int) {
        let model = try BertEncoder(folder: folder)
        let tokenizer = try WordPieceTokenizer(folder: folder)
        var generator = SeededGenerator(seed: 9)
        let words = ["turn", "on", "the", "kitchen", "lights", "set", "a", "timer", "for", "ten", "minutes", "what"]
        let sequences = (0..<64).map { _ in
            tokenizer.encode(
                (0..<10).map { _ in words[generator.index(below: 12)] }.joined(separator: " "), maxLength: 128)
        }
        let tokens = sequences[0].count
        var batches = 0
        let start = DispatchTime.now().uptimeNanoseconds
        repeat {
            _ = try model.embed(sequences, depths: [model.layers.count])
            batches += 1
        } while Double(DispatchTime.now().uptimeNanoseconds - start) < seconds * 1e9
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let flops = sequences.reduce(0) { $0 + model.flops(tokens: $1.count) }
        return (Double(batches * flops) / elapsed, tokens)
    }

    /// Forward `2B(d·h + h·K)` plus backward `2B(h·K)` (∂W₂) `+ 2B(K·h)` (∂H) `+ 2B(d·h)` (∂W₁) per step.
    func mlpTrainingFlops(hidden: Int, seconds: Double) throws -> Double {
        let (rows, d, k, batch) = (8192, 256, 32, 256)
        var generator = SeededGenerator(seed: 1)
        let x = Matrix(rows: rows, columns: d, storage: (0..<(rows * d)).map { _ in generator.nextGaussian() })
        var p = Matrix(rows: rows, columns: k, repeating: 1 / Float(k))
        var labels: [Int] = []
        for i in 0..<rows {
            let label = i % k
            labels.append(label)
            p[i, label] += 0.5
        }
        for i in 0..<rows { for j in 0..<k { p[i, j] /= 1.5 } }
        let split = TrainingSplit(features: .dense(x), teacherProbabilities: p, hardLabels: labels)
        let architecture = Architecture(
            family: .mlp, hidden: [hidden], inputDimension: d, outputDimension: k, sparseInput: false)
        var session = TrainingSession(
            architecture: architecture, train: split,
            options: TrainingOptions(epochs: 1_000_000, batchSize: batch, patience: 1_000_000), seed: 2)
        let tiny = TrainingSplit(
            features: .dense(x.gatheringRows(0..<batch)), teacherProbabilities: p.gatheringRows(0..<batch),
            hardLabels: Array(labels.prefix(batch)))
        let (epochs, elapsed) = try timedEpochs(&session, train: split, validation: tiny, seconds: seconds)
        let flopsPerRow = 2.0 * Double(d * hidden + hidden * k) + 2.0 * Double(2 * hidden * k + d * hidden)
        return Double(epochs * rows) * flopsPerRow / elapsed
    }

    func sparseTrainingRate(seconds: Double) throws -> Double {
        var generator = SeededGenerator(seed: 3)
        let words = (0..<2000).map { "w\($0)" }
        let texts = (0..<4096).map { _ in
            (0..<8).map { _ in words[generator.index(below: 2000)] }.joined(separator: " ")
        }
        let featurizer = HashedTextFeaturizer(bucketsLog2: 16)
        let features = FeatureMatrix.sparse(featurizer.features(for: texts))
        let k = 16
        var p = Matrix(rows: texts.count, columns: k)
        let labels = (0..<texts.count).map { $0 % k }
        for (i, label) in labels.enumerated() { p[i, label] = 1 }
        let split = TrainingSplit(features: features, teacherProbabilities: p, hardLabels: labels)
        let architecture = Architecture(
            family: .embeddingBag, hidden: [32], inputDimension: 1 << 16, outputDimension: k, sparseInput: true)
        var session = TrainingSession(
            architecture: architecture, train: split,
            options: TrainingOptions(epochs: 1_000_000, batchSize: 128, learningRate: 0.01, patience: 1_000_000),
            seed: 4)
        let tiny = TrainingSplit(
            features: features.gatheringRows(0..<16), teacherProbabilities: p.gatheringRows(0..<16),
            hardLabels: Array(labels.prefix(16)))
        let (epochs, elapsed) = try timedEpochs(&session, train: split, validation: tiny, seconds: seconds)
        return Double(epochs * texts.count) / elapsed
    }

    /// Trains whole epochs for about `seconds`; returns the epochs and the seconds they took.
    func timedEpochs(
        _ session: inout TrainingSession, train: TrainingSplit, validation: TrainingSplit, seconds: Double
    ) throws -> (Int, Double) {
        var epochs = 0
        let start = DispatchTime.now().uptimeNanoseconds
        repeat {
            try session.runEpochs(1, train: train, validation: validation)
            epochs += 1
        } while Double(DispatchTime.now().uptimeNanoseconds - start) < seconds * 1e9
        return (epochs, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }

    /// Seconds: all three metrics with CIs on a stored `W`, the accuracy CI by a plain loop, drawing `W`.
    func bootstrapTimes(rows n: Int) throws -> (Double, Double, Double) {
        let k = 10
        var generator = SeededGenerator(seed: 5)
        let gold = (0..<n).map { _ in generator.index(below: k) }
        let predictions = gold.map { generator.nextUnitFloat() < 0.9 ? $0 : ($0 + 1) % k }
        let split = SplitData(
            name: "bench", path: "bench", ids: gold.indices.map(String.init), inputs: gold.map { _ in .text("") },
            teacherProbabilities: Matrix(rows: n, columns: k), teacherLabels: gold, gold: gold)
        let drawStart = DispatchTime.now().uptimeNanoseconds
        let evaluator = Evaluator(
            split: split, vocabulary: LabelVocabulary((0..<k).map { "class\($0)" }), resamples: 1000, seed: 6)
        let draw = Double(DispatchTime.now().uptimeNanoseconds - drawStart) / 1e9
        let start = DispatchTime.now().uptimeNanoseconds
        _ = try evaluator.evaluate(predictions)
        let withW = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let plainStart = DispatchTime.now().uptimeNanoseconds
        var replicates = [Float](repeating: 0, count: 1000)
        var resampling = SeededGenerator(seed: 7)
        for b in 0..<1000 {
            var hits = 0
            for _ in 0..<n {
                let i = resampling.index(below: n)
                if predictions[i] == gold[i] { hits += 1 }
            }
            replicates[b] = Float(hits) / Float(n)
        }
        let plain = Double(DispatchTime.now().uptimeNanoseconds - plainStart) / 1e9
        if replicates.contains(where: { $0.isNaN }) { say("unexpected NaN") }
        return (withW, plain, draw)
    }

    func predictLatencies() throws -> [(String, LatencyProfile)] {
        var generator = SeededGenerator(seed: 8)
        let numericInputs = (0..<64).map { _ in ExampleInput.numeric((0..<16).map { _ in generator.nextGaussian() }) }
        let textInputs = (0..<64).map { i in ExampleInput.text("where is my order number \(i) please help") }
        let standardizer = Featurizer.numeric(
            NumericStandardizer(
                mean: [Float](repeating: 0, count: 16), standardDeviation: [Float](repeating: 1, count: 16)))
        let hashed = Featurizer.text(HashedTextFeaturizer(bucketsLog2: 14))
        let labels = (0..<26).map { "c\($0)" }
        func dense(_ family: Family, hidden: [Int], text: Bool) -> ModelBundle {
            let architecture = Architecture(
                family: family, hidden: hidden, inputDimension: text ? 1 << 14 : 16, outputDimension: 26,
                sparseInput: text)
            return ModelBundle(
                candidate: family.rawValue, network: DenseNetwork(architecture: architecture, generator: &generator),
                featurizer: text ? hashed : standardizer, labels: labels)
        }
        var trees = TreeEnsemble(
            classes: 26, inputDimension: 16, depth: 5, baseScores: [Float](repeating: 0, count: 26))
        trees.features = (0..<(100 * 26 * 31)).map { Int32($0 % 16) }
        trees.thresholds = (0..<(100 * 26 * 31)).map { _ in generator.nextGaussian() }
        trees.leaves = (0..<(100 * 26 * 32)).map { _ in generator.nextGaussian() * 0.01 }
        let cases: [(String, ModelBundle, [ExampleInput])] = [
            ("linear (numeric, 16 → 26)", dense(.linear, hidden: [], text: false), numericInputs),
            ("mlp 256 (numeric)", dense(.mlp, hidden: [256], text: false), numericInputs),
            ("prototype (numeric)", dense(.prototype, hidden: [], text: false), numericInputs),
            (
                "gbdt depth 5 × 100 rounds (numeric)",
                ModelBundle(candidate: "gbdt", model: .trees(trees), featurizer: standardizer, labels: labels),
                numericInputs
            ),
            ("linear (text, 2^14 buckets)", dense(.linear, hidden: [], text: true), textInputs),
            ("embedding-bag d=32 (text)", dense(.embeddingBag, hidden: [32], text: true), textInputs),
            ("mlp 64 (text)", dense(.mlp, hidden: [64], text: true), textInputs),
        ]
        return try cases.map { ($0.0, try LatencyProfiler.profile($0.1, inputs: $0.2)) }
    }
}

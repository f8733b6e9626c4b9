import Foundation
import RetortData
import RetortNumerics
import RetortStudents

/// The bundled example: a shop's support inbox routed into intents. Utterances are generated deterministically
/// from templates written for this project; the teacher is a large MLP that Retort trains on the gold labels, and
/// its soft labels on every row are the teacher outputs a search distills from.
public enum ShopSupportExample {
    /// Rows per split.
    public struct Sizes: Sendable {
        /// Train rows.
        public var train = 3000
        /// Validation rows.
        public var validation = 1000
        /// Test rows.
        public var test = 1000
        /// Default sizes.
        public init() {}
    }

    /// What was built, for the demo's progress lines.
    public struct Summary: Sendable {
        /// Teacher test accuracy against gold.
        public var teacherTestAccuracy: Double
        /// Teacher parameter count.
        public var teacherParams: Int
        /// Measured teacher p50 latency, ms.
        public var teacherLatencyMs: Double
        /// Seconds spent training the teacher.
        public var teacherTrainSeconds: Double
        /// Labels.
        public var labels: [String]
    }

    /// The teacher's shape: 2^16 hashed buckets → 512 → 256 → intents.
    public static let teacherBucketsLog2 = 16
    /// Hidden widths of the teacher.
    public static let teacherHidden = [512, 256]

    /// Generates utterances with gold labels: `[(text, intent)]` for each split, disjoint texts across splits.
    public static func utterances(
        grammar: TemplateGrammar, sizes: Sizes, seed: UInt64
    ) -> [[(text: String, intent: String)]] {
        messages(grammar: grammar, sizes: sizes, seed: seed, noise: true).map { rows in
            rows.map { ($0.text, $0.intent) }
        }
    }

    /// Generates messages for each split (texts disjoint across splits): an intent's template expanded, sometimes with
    /// an opener and a closer, and with `noise` some words dropped and typos made; with the value each slot took.
    public static func messages(
        grammar: TemplateGrammar, sizes: Sizes, seed: UInt64, noise: Bool
    ) -> [[(text: String, intent: String, captures: [(slot: String, value: String)])]] {
        var generator = SeededGenerator(seed: seed)
        var seen: Set<String> = []
        var splits: [[(String, String, [(slot: String, value: String)])]] = []
        for count in [sizes.train, sizes.validation, sizes.test] {
            var rows: [(String, String, [(slot: String, value: String)])] = []
            var attempts = 0
            while rows.count < count && attempts < count * 50 {
                attempts += 1
                let intent = grammar.intents[generator.index(below: grammar.intents.count)]
                let template = intent.templates[generator.index(below: intent.templates.count)]
                var (text, captures) = grammar.expandCapturing(template, generator: &generator)
                if !grammar.openers.isEmpty && generator.nextUnitFloat() < 0.3 {
                    text = grammar.openers[generator.index(below: grammar.openers.count)] + " " + text
                }
                if !grammar.closers.isEmpty && generator.nextUnitFloat() < 0.25 {
                    text += " " + grammar.closers[generator.index(below: grammar.closers.count)]
                }
                if noise {
                    text = dropWords(text, probability: 0.12, generator: &generator)
                    if generator.nextUnitFloat() < 0.5 {
                        for _ in 0...generator.index(below: 3) { text = typo(text, generator: &generator) }
                    }
                }
                guard seen.insert(text).inserted else { continue }
                rows.append((text, intent.name, captures))
            }
            splits.append(rows)
        }
        return splits
    }

    /// Drops each word with `probability` (keeping at least two): terse, telegraphic messages.
    static func dropWords(_ text: String, probability: Float, generator: inout SeededGenerator) -> String {
        let words = text.split(separator: " ")
        guard words.count > 3 else { return text }
        var kept = words.filter { _ in generator.nextUnitFloat() >= probability }
        if kept.count < 2 { kept = Array(words.prefix(2)) }
        return kept.joined(separator: " ")
    }

    /// One keyboard slip: swap two adjacent letters, drop one, or double one.
    static func typo(_ text: String, generator: inout SeededGenerator) -> String {
        var characters = Array(text)
        let letters = characters.indices.filter { characters[$0].isLetter }
        guard letters.count > 3 else { return text }
        let position = letters[generator.index(below: letters.count - 1)]
        switch generator.index(below: 3) {
        case 0 where position + 1 < characters.count: characters.swapAt(position, position + 1)
        case 1: characters.remove(at: position)
        default: characters.insert(characters[position], at: position)
        }
        return String(characters)
    }

    /// Builds the task folder: generates the rows, trains the teacher on gold, records its soft labels on every
    /// row (probabilities ≥ 0.0001, rounded to 4 decimals: a partial top-k distribution), measures its latency,
    /// and writes train/validation/test.jsonl and task.json into `folder`.
    public static func build(
        templates: URL, folder: URL, sizes: Sizes = Sizes(), seed: UInt64 = 2026,
        costPer1kRequestsUSD: Double = 1.5, progress: (String) -> Void = { _ in }
    ) throws -> Summary {
        let grammar = try TemplateGrammar.load(templates)
        let splits = utterances(grammar: grammar, sizes: sizes, seed: seed)
        let vocabulary = LabelVocabulary(grammar.intents.map(\.name))
        let featurizer = HashedTextFeaturizer(bucketsLog2: teacherBucketsLog2)
        let features = splits.map { FeatureMatrix.sparse(featurizer.features(for: $0.map(\.text))) }
        let goldIndices = splits.map { rows in rows.map { vocabulary.index(of: $0.intent) ?? 0 } }
        func oneHot(_ labels: [Int]) -> Matrix {
            var matrix = Matrix(rows: labels.count, columns: vocabulary.count)
            for (i, label) in labels.enumerated() { matrix[i, label] = 1 }
            return matrix
        }
        let train = TrainingSplit(
            features: features[0], teacherProbabilities: oneHot(goldIndices[0]), hardLabels: goldIndices[0])
        let validation = TrainingSplit(
            features: features[1], teacherProbabilities: oneHot(goldIndices[1]), hardLabels: goldIndices[1])
        let architecture = Architecture(
            family: .mlp, hidden: teacherHidden, inputDimension: featurizer.bucketCount,
            outputDimension: vocabulary.count, sparseInput: true)
        progress(
            "[teacher] training mlp \(teacherHidden.map(String.init).joined(separator: "-")) on 2^\(teacherBucketsLog2) hashed n-grams (\(architecture.parameterCount) params) on gold labels"
        )
        let start = DispatchTime.now().uptimeNanoseconds
        var session = TrainingSession(
            architecture: architecture, train: train,
            options: TrainingOptions(
                epochs: 20, batchSize: 64, learningRate: 0.002, patience: 3,
                loss: DistillationLoss(temperature: 1, alpha: 1)),
            seed: seed)
        try session.runEpochs(20, train: train, validation: validation)
        let trainSeconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let teacher = ModelBundle(
            candidate: "teacher", network: session.best, featurizer: .text(featurizer), labels: vocabulary.labels)
        let latency = try measureLatency(teacher, texts: splits[1].map(\.text))
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        var testHits = 0
        for (index, name) in ["train", "validation", "test"].enumerated() {
            let probabilities = try session.best.probabilities(features[index])
            var lines: [String] = []
            for (row, (text, intent)) in splits[index].enumerated() {
                var probs: [String: Double] = [:]
                var best = 0
                for j in 0..<vocabulary.count {
                    if probabilities[row, j] > probabilities[row, best] { best = j }
                    let rounded = (Double(probabilities[row, j]) * 10_000).rounded() / 10_000
                    if rounded >= 0.0001 { probs[vocabulary.labels[j]] = rounded }
                }
                if index == 2 && vocabulary.labels[best] == intent { testHits += 1 }
                let object: [String: Any] = [
                    "id": "\(name.prefix(2))-\(String(format: "%05d", row))", "input": text,
                    "teacher": ["label": vocabulary.labels[best], "probs": probs], "gold": intent,
                ]
                lines.append(try ShopSupportExample.jsonLine(object))
            }
            try Data((lines.joined(separator: "\n") + "\n").utf8).write(
                to: folder.appendingPathComponent("\(name).jsonl"), options: .atomic)
        }
        let taskJSON: [String: Any] = [
            "name": "shop-support",
            "kind": "text",
            "teacher": [
                "name": "mlp-512-256 on 2^16 hashed n-grams, trained by Retort on gold labels",
                "params": architecture.parameterCount,
                "latency_ms_p50": (latency * 10_000).rounded() / 10_000,
                "cost_per_1k_requests_usd": costPer1kRequestsUSD,
            ],
            "source":
                "Generated by `retort demo` from examples/shop-support/templates.yaml (templates written for Retort), seed \(seed).",
        ]
        try JSONSerialization.data(withJSONObject: taskJSON, options: [.prettyPrinted, .sortedKeys]).write(
            to: folder.appendingPathComponent("task.json"), options: .atomic)
        return Summary(
            teacherTestAccuracy: Double(testHits) / Double(max(splits[2].count, 1)),
            teacherParams: architecture.parameterCount, teacherLatencyMs: latency, teacherTrainSeconds: trainSeconds,
            labels: vocabulary.labels)
    }

    /// One JSONL line: `object` with sorted keys.
    static func jsonLine(_ object: [String: Any]) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
    }

    /// Median single-input latency (featurize + predict) over 300 warm calls, ms.
    static func measureLatency(_ bundle: ModelBundle, texts: [String]) throws -> Double {
        var samples: [Double] = []
        var sink: Float = 0
        for index in 0..<330 {
            let start = DispatchTime.now().uptimeNanoseconds
            sink += try bundle.probabilities(for: [.text(texts[index % texts.count])]).storage[0]
            let end = DispatchTime.now().uptimeNanoseconds
            if index >= 30 { samples.append(Double(end - start) / 1e6) }
        }
        samples.sort()
        return sink.isNaN ? samples[0] : samples[samples.count / 2]
    }
}

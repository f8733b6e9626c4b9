import Foundation
import RetortData
import RetortNumerics
import RetortStudents
import RetortTestSupport
import Testing

/// A generated keyword text task (`SyntheticTasks.textRows`) hashed into 2^12 buckets, word 1–2-grams only, with a
/// soft teacher that puts 0.7 on the gold class.
func keywordSplit(count: Int, seed: UInt64) -> TrainingSplit {
    let rows = SyntheticTasks.textRows(count: count, classes: 4, seed: seed)
    let texts = rows.map { $0["input"] as? String ?? "" }
    let labels = rows.map { Int(($0["gold"] as? String ?? "k0").dropFirst()) ?? 0 }
    var teacher = Matrix(rows: count, columns: 4, repeating: 0.1)
    for (i, label) in labels.enumerated() { teacher[i, label] = 0.7 }
    let featurizer = HashedTextFeaturizer(bucketsLog2: 12, minCharNgram: 0)
    return TrainingSplit(
        features: .sparse(featurizer.features(for: texts)), teacherProbabilities: teacher, hardLabels: labels)
}

func sgdOptions(epochs: Int, batchSize: Int, learningRate: Float, alpha: Float) -> TrainingOptions {
    var options = TrainingOptions(
        epochs: epochs, batchSize: batchSize, learningRate: learningRate,
        loss: DistillationLoss(temperature: 2, alpha: alpha), earlyStopping: .none)
    options.optimizer = .sgd
    return options
}

@Suite struct SGDTests {
    let bag = Architecture(
        family: .embeddingBag, hidden: [8], inputDimension: 1 << 12, outputDimension: 4, sparseInput: true)

    @Test("fastText-style SGD (per-example, linear decay, hard labels) learns a generated keyword task")
    func learnsKeywords() throws {
        let (train, validation) = (keywordSplit(count: 400, seed: 11), keywordSplit(count: 200, seed: 12))
        var options = sgdOptions(epochs: 5, batchSize: 1, learningRate: 0.5, alpha: 0)
        options.learningRateSchedule = .linear
        var session = TrainingSession(architecture: bag, train: train, options: options, seed: 4)
        // fastText's start: the embedding uniform in ±1/d, the output layer zero.
        #expect(session.network.layers[0].weights.storage.allSatisfy { abs($0) <= 1.0 / 8 })
        #expect(session.network.layers[1].weights.storage.allSatisfy { $0 == 0 })
        try session.runEpochs(5, train: train, validation: validation)
        #expect(session.epochsRun == 5 && session.bestEpoch == 5 && session.best == session.network)
        let predictions = try session.best.logits(validation.features).argmaxPerRow()
        let correct = zip(predictions, validation.hardLabels).filter { $0 == $1 }.count
        #expect(Double(correct) / 200 > 0.95)
    }

    @Test("an SGD step is w − η·∂L/∂w from backpropagation, and only the batch's embedding rows move")
    func stepIsTheGradientStep() throws {
        let train = keywordSplit(count: 6, seed: 13)
        guard case .sparse(let x) = train.features else { throw NumericsError(.shapeMismatch, "sparse expected") }
        let options = sgdOptions(epochs: 2, batchSize: 6, learningRate: 0.3, alpha: 0.5)
        var session = TrainingSession(architecture: bag, train: train, options: options, seed: 5)
        var expected = session.network
        let targets = options.loss.temperedTargets(train.teacherProbabilities)
        // Two full-batch steps (the batch order does not change a full-batch gradient).
        for _ in 0..<2 {
            let gradients = try expected.gradients(
                train.features, temperedTargets: targets, hardLabels: train.hardLabels, loss: options.loss)
            for (index, gradient) in gradients.enumerated() {
                switch gradient.weights {
                case .dense(let g):
                    try expected.layers[index].weights.add(g, scaledBy: -0.3)
                case .rows(let rows, let g):
                    let columns = g.columns
                    for (position, row) in rows.enumerated() {
                        for j in 0..<columns {
                            expected.layers[index].weights[Int(row), j] -= 0.3 * g[position, j]
                        }
                    }
                }
                for j in gradient.bias.indices { expected.layers[index].bias[j] -= 0.3 * gradient.bias[j] }
            }
        }
        let before = session.network
        try session.runEpochs(2, train: train, validation: train)
        for (index, layer) in session.network.layers.enumerated() {
            for (got, want) in zip(layer.weights.storage, expected.layers[index].weights.storage) {
                #expect(approximatelyEqual(got, want, relative: 1e-4, absolute: 1e-6))
            }
            for (got, want) in zip(layer.bias, expected.layers[index].bias) {
                #expect(approximatelyEqual(got, want, relative: 1e-4, absolute: 1e-6))
            }
        }
        let touched = Set(x.columnIndices.map(Int.init))
        let embedding = (before.layers[0].weights, session.network.layers[0].weights)
        var changed = Set<Int>()
        for row in 0..<embedding.0.rows where embedding.0.row(row) != embedding.1.row(row) { changed.insert(row) }
        #expect(!changed.isEmpty)
        #expect(changed.isSubset(of: touched))
    }

    @Test("an SGD session continues from its checkpoint exactly as without one")
    func checkpointContinues() throws {
        let train = keywordSplit(count: 60, seed: 14)
        var options = sgdOptions(epochs: 4, batchSize: 4, learningRate: 0.2, alpha: 0.8)
        options.learningRateSchedule = .linear
        // Each call to runEpochs starts its shuffles from the identity order: compare against the same two calls.
        var straight = TrainingSession(architecture: bag, train: train, options: options, seed: 6)
        try straight.runEpochs(2, train: train, validation: train)
        try straight.runEpochs(2, train: train, validation: train)
        var first = TrainingSession(architecture: bag, train: train, options: options, seed: 6)
        try first.runEpochs(2, train: train, validation: train)
        var resumed = try TrainingSession(
            restoring: try first.checkpointData(), file: "c.safetensors", architecture: bag, train: train,
            options: options)
        try resumed.runEpochs(2, train: train, validation: train)
        #expect(resumed.epochsRun == 4 && resumed.best == straight.best)
    }

    @Test("optimizer sgd refuses a network that is not an embedding bag")
    func sgdNeedsAnEmbeddingBag() {
        let train = keywordSplit(count: 8, seed: 15)
        let linear = Architecture(
            family: .linear, hidden: [], inputDimension: 1 << 12, outputDimension: 4, sparseInput: true)
        var session = TrainingSession(
            architecture: linear, train: train,
            options: sgdOptions(epochs: 1, batchSize: 2, learningRate: 0.1, alpha: 0),
            seed: 7)
        #expect(throws: NumericsError.self) { try session.runEpochs(1, train: train, validation: train) }
    }

    @Test("normalization mean: each text's values sum to 1, and an exported model keeps it")
    func meanNormalization() throws {
        let featurizer = HashedTextFeaturizer(bucketsLog2: 10, minCharNgram: 0, normalization: .mean)
        let x = featurizer.features(for: ["turn on the the light", "hi"])
        for i in 0..<2 {
            let total = x.values[x.rowOffsets[i]..<x.rowOffsets[i + 1]].reduce(0, +)
            #expect(approximatelyEqual(total, 1, within: 1e-6))
        }
        #expect(x.values.contains(2 / Float(9)))  // "the" twice among 5 words and 4 bigrams
        var generator = SeededGenerator(seed: 8)
        let architecture = Architecture(
            family: .embeddingBag, hidden: [4], inputDimension: 1 << 10, outputDimension: 2, sparseInput: true)
        let bundle = ModelBundle(
            candidate: "embedding-bag-d4-b10wm-fp32",
            network: DenseNetwork(architecture: architecture, generator: &generator), featurizer: .text(featurizer),
            labels: ["a", "b"])
        let folder = SyntheticTasks.temporaryFolder().appendingPathComponent("model")
        try bundle.write(to: folder)
        let loaded = try ModelBundle.load(from: folder)
        guard case .basic(.text(let restored)) = loaded.featurizer else {
            Issue.record("the loaded featurizer is not hashed text")
            return
        }
        #expect(restored == featurizer)
    }
}

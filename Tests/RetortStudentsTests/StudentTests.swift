import Foundation
import RetortData
import RetortNumerics
import RetortStudents
import RetortTestSupport
import Testing

/// Two well-separated Gaussian classes in 5 dimensions with soft teacher labels.
func blobs(count: Int, seed: UInt64) -> (features: Matrix, probabilities: Matrix, labels: [Int]) {
    var generator = SeededGenerator(seed: seed)
    var features = Matrix(rows: count, columns: 5)
    var probabilities = Matrix(rows: count, columns: 3)
    var labels: [Int] = []
    for i in 0..<count {
        let label = i % 3
        for j in 0..<5 { features[i, j] = generator.nextGaussian() + (j == label ? 3 : 0) }
        for k in 0..<3 { probabilities[i, k] = k == label ? 0.9 : 0.05 }
        labels.append(label)
    }
    return (features, probabilities, labels)
}

/// A training split of blob data.
func split(_ data: (features: Matrix, probabilities: Matrix, labels: [Int])) -> TrainingSplit {
    TrainingSplit(features: .dense(data.features), teacherProbabilities: data.probabilities, hardLabels: data.labels)
}

@Suite struct StudentTests {
    @Test("training by distillation learns a separable task and early-stops on validation")
    func trainingLearns() throws {
        let (train, validation) = (blobs(count: 300, seed: 1), blobs(count: 90, seed: 2))
        let (trainSplit, validationSplit) = (split(train), split(validation))
        let architecture = Architecture(
            family: .mlp, hidden: [16], inputDimension: 5, outputDimension: 3, sparseInput: false)
        var session = TrainingSession(
            architecture: architecture, train: trainSplit,
            options: TrainingOptions(epochs: 40, batchSize: 32, learningRate: 0.01, patience: 3),
            seed: 3)
        let before = try TrainingSession.crossEntropy(session.network, on: validationSplit)
        try session.runEpochs(40, train: trainSplit, validation: validationSplit)
        #expect(session.isFinished)
        #expect(session.validationLosses.count == session.epochsRun)
        let after = try TrainingSession.crossEntropy(session.best, on: validationSplit)
        #expect(after < before * 0.7)
        #expect(session.validationLosses.min() == session.validationLosses[session.bestEpoch - 1])
        let predictions = try session.best.probabilities(.dense(validation.features)).argmaxPerRow()
        let accuracy =
            Double(zip(predictions, validation.labels).filter { $0 == $1 }.count) / Double(validation.labels.count)
        #expect(accuracy > 0.9)
    }

    @Test("early_stopping none keeps the last epoch, agreement tracks 1 − agreement, a linear schedule ends near 0")
    func stoppingAndSchedules() throws {
        let (train, validation) = (blobs(count: 300, seed: 1), blobs(count: 90, seed: 2))
        let (trainSplit, validationSplit) = (split(train), split(validation))
        let architecture = Architecture(
            family: .linear, hidden: [], inputDimension: 5, outputDimension: 3, sparseInput: false)
        var options = TrainingOptions(epochs: 8, batchSize: 32, learningRate: 0.05, patience: 2)
        options.earlyStopping = .none
        options.learningRateSchedule = .linear
        var last = TrainingSession(architecture: architecture, train: trainSplit, options: options, seed: 3)
        try last.runEpochs(8, train: trainSplit, validation: validationSplit)
        #expect(last.epochsRun == 8 && last.bestEpoch == 8 && last.best == last.network)
        // The last batch of the last epoch ran at (1 − (7 + 9/10) / 8) of the rate: below 2% of it.
        #expect(last.optimizer.learningRate > 0 && last.optimizer.learningRate < 0.05 * 0.02)
        options.earlyStopping = .agreement
        options.learningRateSchedule = .constant
        var agreeing = TrainingSession(architecture: architecture, train: trainSplit, options: options, seed: 3)
        try agreeing.runEpochs(8, train: trainSplit, validation: validationSplit)
        let predictions = try agreeing.best.logits(.dense(validation.features)).argmaxPerRow()
        let agreement = Float(zip(predictions, validation.labels).filter { $0 == $1 }.count) / 90
        #expect(approximatelyEqual(agreeing.validationLosses[agreeing.bestEpoch - 1], (1 - agreement), within: 1e-6))
        #expect(agreeing.optimizer.learningRate == 0.05)
    }

    @Test("the same seed trains the same network")
    func deterministicTraining() throws {
        let train = blobs(count: 120, seed: 4)
        let split = TrainingSplit(
            features: .dense(train.features), teacherProbabilities: train.probabilities, hardLabels: train.labels)
        let architecture = Architecture(
            family: .mlp, hidden: [8], inputDimension: 5, outputDimension: 3, sparseInput: false)
        func run() throws -> DenseNetwork {
            var session = TrainingSession(
                architecture: architecture, train: split, options: TrainingOptions(epochs: 3), seed: 9)
            try session.runEpochs(3, train: split, validation: split)
            return session.network
        }
        #expect(try run() == run())
    }

    @Test("int8 quantization keeps codes in range and errors within half a step")
    func quantization() {
        var generator = SeededGenerator(seed: 5)
        let weights = Matrix(rows: 6, columns: 4, storage: (0..<24).map { _ in generator.nextGaussian() })
        let layer = DenseLayer(weights: weights, bias: [0, 0, 0, 0])
        let quantized = layer.quantizedToInt8()
        let int8 = try! #require(quantized.int8)
        #expect(int8.codes.allSatisfy { $0 >= -127 && $0 <= 127 })
        for o in 0..<4 {
            let maximum = (0..<6).map { abs(weights[$0, o]) }.max()!
            #expect(approximatelyEqual(int8.scales[o], maximum / 127))
            #expect((0..<6).contains { abs(Int(int8.codes[$0 * 4 + o])) == 127 })
            for i in 0..<6 {
                #expect(abs(quantized.weights[i, o] - weights[i, o]) <= int8.scales[o] / 2 + 1e-6)
                #expect(quantized.weights[i, o] == Float(int8.codes[i * 4 + o]) * int8.scales[o])
            }
        }
    }

    @Test("size_bytes is exactly the exported tensor bytes, per precision", arguments: Precision.allCases)
    func sizeMatchesExport(precision: Precision) throws {
        var generator = SeededGenerator(seed: 6)
        let architecture = Architecture(
            family: .mlp, hidden: [7, 3], inputDimension: 5, outputDimension: 4, sparseInput: false)
        let network = DenseNetwork(architecture: architecture, generator: &generator).quantized(to: precision)
        let featurizer = Featurizer.numeric(
            NumericStandardizer(mean: [0, 0, 0, 0, 0], standardDeviation: [1, 1, 1, 1, 1]))
        let bundle = ModelBundle(
            candidate: "x", network: network, featurizer: featurizer, labels: ["a", "b", "c", "d"])
        #expect(bundle.sizeBytes == architecture.weightBytes(at: precision) + featurizer.stateBytes)
        #expect(architecture.parameterCount == 5 * 7 + 7 + 7 * 3 + 3 + 3 * 4 + 4)
        #expect(architecture.flopsPerExample(meanNonzeros: 0) == 2 * (5 * 7 + 7 * 3 + 3 * 4))
        let sparse = Architecture(
            family: .linear, hidden: [], inputDimension: 1024, outputDimension: 4, sparseInput: true)
        #expect(sparse.flopsPerExample(meanNonzeros: 10) == 2 * 10 * 4)
    }

    @Test("an exported bundle loads back and predicts identically", arguments: Precision.allCases)
    func exportRoundTrip(precision: Precision) throws {
        var generator = SeededGenerator(seed: 7)
        let architecture = Architecture(
            family: .mlp, hidden: [6], inputDimension: 1 << 10, outputDimension: 3, sparseInput: true)
        let network = DenseNetwork(architecture: architecture, generator: &generator).quantized(to: precision)
        let bundle = ModelBundle(
            candidate: "mlp-6x1-b10-\(precision.rawValue)", network: network,
            featurizer: .text(HashedTextFeaturizer(bucketsLog2: 10)), labels: ["x", "y", "z"])
        let folder = SyntheticTasks.temporaryFolder().appendingPathComponent("model")
        try bundle.write(to: folder)
        let loaded = try ModelBundle.load(from: folder)
        let inputs: [ExampleInput] = [.text("where is my order"), .text("refund please"), .text("")]
        #expect(try loaded.probabilities(for: inputs) == bundle.probabilities(for: inputs))
        #expect(loaded.model.precision == precision)
        #expect(loaded.labels == ["x", "y", "z"])
        let data = try Data(contentsOf: folder.appendingPathComponent("model.safetensors"))
        let headerLength = data.prefix(8).enumerated().reduce(0) { $0 | (Int($1.element) << (8 * $1.offset)) }
        #expect(data.count == 8 + headerLength + bundle.sizeBytes)
    }

    @Test("a truncated safetensors file is an error, not a crash")
    func truncatedSafetensors() throws {
        let data = try Safetensors.encode(["w": Tensor([Float](arrayLiteral: 1, 2, 3, 4), shape: [2, 2])])
        #expect(throws: StudentError.self) {
            try Safetensors.decode(data.prefix(data.count - 3), file: "m.safetensors")
        }
        #expect(throws: StudentError.self) { try Safetensors.decode(Data([1, 2, 3]), file: "m.safetensors") }
        let decoded = try Safetensors.decode(data, file: "m.safetensors")
        #expect(decoded.tensors["w"]?.floats() == [1, 2, 3, 4])
    }
}

@Suite struct FamilyTests {
    @Test("fp16 rounds every weight to the nearest half and keeps biases in fp32")
    func float16() {
        var generator = SeededGenerator(seed: 31)
        let architecture = Architecture(
            family: .mlp, hidden: [5], inputDimension: 4, outputDimension: 3, sparseInput: false)
        let network = DenseNetwork(architecture: architecture, generator: &generator)
        let half = network.quantized(to: .fp16)
        #expect(half.precision == .fp16)
        for (layer, original) in zip(half.layers, network.layers) {
            for (value, source) in zip(layer.weights.storage, original.weights.storage) {
                #expect(value == Float(Float16(source)))
                #expect(abs(value - source) <= abs(source) * 0.001 + 1e-7)
            }
            #expect(layer.bias == original.bias)
        }
        #expect(architecture.weightBytes(at: .fp16) == (4 * 5 + 5 * 3) * 2 + (5 + 3) * 4)
    }

    @Test("an embedding bag is linear in its input: no activation between embedding and output")
    func embeddingBagIsLinear() throws {
        var generator = SeededGenerator(seed: 32)
        let architecture = Architecture(
            family: .embeddingBag, hidden: [4, 9], inputDimension: 16, outputDimension: 3, sparseInput: true)
        #expect(architecture.hidden == [4])
        let network = DenseNetwork(architecture: architecture, generator: &generator)
        func sparse(_ entries: [(Int32, Float)]) -> FeatureMatrix {
            .sparse(
                SparseMatrix(
                    rows: 1, columns: 16, rowOffsets: [0, entries.count], columnIndices: entries.map(\.0),
                    values: entries.map(\.1)))
        }
        let a = try network.logits(sparse([(1, 1)]))
        let b = try network.logits(sparse([(5, 1)]))
        let sum = try network.logits(sparse([(1, 1), (5, 1)]))
        let zero = try network.logits(sparse([]))
        for j in 0..<3 {
            // f(a + b) = f(a) + f(b) − f(0) holds exactly for an affine map, never for a ReLU network in general.
            #expect(approximatelyEqual(sum[0, j], a[0, j] + b[0, j] - zero[0, j], absolute: 1e-5))
        }
        #expect(architecture.flopsPerExample(meanNonzeros: 10) == 2 * 10 * 4 + 2 * 4 * 3)
    }

    @Test("a prototype student is the teacher-weighted class centroids, scored by distance", arguments: [false, true])
    func prototype(sparse: Bool) throws {
        let data = blobs(count: 300, seed: 33)
        var features: FeatureMatrix = .dense(data.features)
        if sparse {
            // Each row as a non-negative, L2-normalised sparse vector (as the text featurizer makes).
            var offsets = [0]
            var columns: [Int32] = []
            var values: [Float] = []
            for i in 0..<data.features.rows {
                let row = (0..<5).map { max(0, data.features[i, $0]) }
                let norm = max(row.reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-6)
                for j in 0..<5 where row[j] > 0 {
                    columns.append(Int32(j))
                    values.append(row[j] / norm)
                }
                offsets.append(values.count)
            }
            features = .sparse(
                SparseMatrix(
                    rows: data.features.rows, columns: 5, rowOffsets: offsets, columnIndices: columns, values: values))
        }
        let split = TrainingSplit(features: features, teacherProbabilities: data.probabilities, hardLabels: data.labels)
        let architecture = Architecture(
            family: .prototype, hidden: [], inputDimension: 5, outputDimension: 3, sparseInput: sparse)
        var session = TrainingSession(
            architecture: architecture, train: split, options: TrainingOptions(epochs: 1), seed: 1)
        try session.runEpochs(1, train: split, validation: split)
        #expect(session.isFinished && session.epochsRun == 1)
        let predictions = try session.best.probabilities(features).argmaxPerRow()
        let accuracy = Double(zip(predictions, data.labels).filter { $0 == $1 }.count) / Double(data.labels.count)
        #expect(accuracy > 0.9, "accuracy \(accuracy)")
        if !sparse {
            // W = s·μ: the weight columns are proportional to the teacher-weighted means.
            let dense = data.features
            for c in 0..<3 {
                var mean = [Float](repeating: 0, count: 5)
                var mass: Float = 0
                for i in 0..<dense.rows {
                    let p = data.probabilities[i, c]
                    mass += p
                    for j in 0..<5 { mean[j] += p * dense[i, j] }
                }
                let anchor = (0..<5).max { abs(mean[$0]) < abs(mean[$1]) } ?? 0
                let scale = session.best.layers[0].weights[anchor, c] / (mean[anchor] / mass)
                for j in 0..<5 {
                    #expect(
                        approximatelyEqual(
                            session.best.layers[0].weights[j, c], scale * mean[j] / mass, relative: 1e-3, absolute: 1e-4
                        ))
                }
            }
        }
    }
}

@Suite struct EarlyStoppingTests {
    @Test("early stopping watches the teacher's cross-entropy by default, or the training objective when asked")
    func criteria() throws {
        let data = blobs(count: 120, seed: 41)
        let split = TrainingSplit(
            features: .dense(data.features), teacherProbabilities: data.probabilities, hardLabels: data.labels)
        let architecture = Architecture(
            family: .linear, hidden: [], inputDimension: 5, outputDimension: 3, sparseInput: false)
        let loss = DistillationLoss(temperature: 1, alpha: 0)
        for criterion in TrainingOptions.EarlyStopping.allCases {
            var session = TrainingSession(
                architecture: architecture, train: split,
                options: TrainingOptions(epochs: 1, learningRate: 0.05, loss: loss, earlyStopping: criterion), seed: 2)
            try session.runEpochs(1, train: split, validation: split)
            let watched = try #require(session.validationLosses.first)
            let expected: Float
            switch criterion {
            case .teacher: expected = try TrainingSession.crossEntropy(session.network, on: split)
            case .objective:
                expected =
                    loss.lossAndGradient(
                        logits: try session.network.logits(split.features), temperedTargets: split.teacherProbabilities,
                        hardLabels: split.hardLabels
                    ).loss
            case .agreement:
                let predicted = try session.network.logits(split.features).argmaxPerRow()
                expected =
                    1 - Float(zip(predicted, split.hardLabels).filter { $0 == $1 }.count)
                    / Float(split.hardLabels.count)
            case .none: expected = -1
            }
            #expect(approximatelyEqual(watched, expected, relative: 1e-5))
        }
    }
}

@Suite struct GradientBoostingTests {
    let data = blobs(count: 300, seed: 51)
    var split: TrainingSplit {
        TrainingSplit(
            features: .dense(data.features), teacherProbabilities: data.probabilities, hardLabels: data.labels)
    }
    let architecture = Architecture(
        family: .gbdt, hidden: [3, 30], inputDimension: 5, outputDimension: 3, sparseInput: false)

    func session(rounds: Int) throws -> TrainingSession {
        var session = TrainingSession(
            architecture: architecture, train: split,
            options: TrainingOptions(epochs: 30, learningRate: 0.2, patience: 30),
            seed: 1)
        try session.runEpochs(rounds, train: split, validation: split)
        return session
    }

    @Test("boosted trees learn the teacher and report their real size and comparisons")
    func learns() throws {
        let trained = try session(rounds: 30)
        guard case .trees(let trees) = trained.bestModel else {
            Issue.record("a gbdt session yields trees")
            return
        }
        #expect(trees.rounds == trained.bestEpoch && trees.treeCount == trees.rounds * 3)
        #expect(trees.comparisonsPerExample == trees.treeCount * 3)
        let predictions = try trained.bestModel.probabilities(.dense(data.features)).argmaxPerRow()
        let accuracy = Double(zip(predictions, data.labels).filter { $0 == $1 }.count) / Double(data.labels.count)
        #expect(accuracy > 0.9, "accuracy \(accuracy)")
        #expect(trained.validationLosses.first.map { $0 > (trained.validationLosses.min() ?? 0) } == true)
        #expect(
            architecture.weightBytes(at: .fp32)
                == TreeEnsemble.bytes(rounds: 30, classes: 3, depth: 3, precision: .fp32))
    }

    @Test("a checkpointed booster continues to exactly the uninterrupted ensemble")
    func checkpointResume() throws {
        let straight = try session(rounds: 8)
        let first = try session(rounds: 3)
        var resumed = try TrainingSession(
            restoring: try first.checkpointData(), file: "c.safetensors", architecture: architecture, train: split,
            options: TrainingOptions(epochs: 30, learningRate: 0.2, patience: 30))
        try resumed.runEpochs(5, train: split, validation: split)
        #expect(resumed.bestModel == straight.bestModel)
        #expect(resumed.validationLosses == straight.validationLosses)
    }

    @Test(
        "gbdt exports (I16 features, F32 thresholds, F32 or F16 leaves) and loads back identically",
        arguments: [Precision.fp32, .fp16])
    func export(precision: Precision) throws {
        let model = try session(rounds: 6).bestModel.quantized(to: precision)
        let featurizer = Featurizer.numeric(
            NumericStandardizer(mean: [0, 0, 0, 0, 0], standardDeviation: [1, 1, 1, 1, 1]))
        let bundle = ModelBundle(
            candidate: "gbdt-d3-r30-\(precision.rawValue)", model: model, featurizer: featurizer,
            labels: ["a", "b", "c"])
        guard case .trees(let trees) = model else { return }
        #expect(
            bundle.sizeBytes == TreeEnsemble.bytes(rounds: trees.rounds, classes: 3, depth: 3, precision: precision)
                + featurizer.stateBytes)
        let folder = SyntheticTasks.temporaryFolder().appendingPathComponent("model")
        try bundle.write(to: folder)
        let loaded = try ModelBundle.load(from: folder)
        #expect(loaded.model == model)
        let inputs = (0..<10).map { ExampleInput.numeric(data.features.row($0)) }
        #expect(try loaded.probabilities(for: inputs) == bundle.probabilities(for: inputs))
    }
}

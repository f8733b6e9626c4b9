import Foundation
import RetortNumerics

/// Checkpoints: a training session's whole state (current and best weights, Adam moments, the generator, the epoch
/// counters) as a safetensors file, so an interrupted search continues exactly where it stopped.
extension TrainingSession {
    /// The most epochs (or boosting rounds) a checkpoint may record; the catalog allows at most 10,000.
    static let maxCheckpointEpochs = 1_000_000

    /// The session's state as safetensors bytes. A finished session stores only its best weights (nothing will
    /// train it again).
    public func checkpointData() throws -> Data {
        var tensors: [String: Tensor] = [:]
        func add(_ network: DenseNetwork, prefix: String) {
            for (index, layer) in network.layers.enumerated() {
                tensors["\(prefix).\(index).weight"] = Tensor(
                    layer.weights.storage, shape: [layer.inputDimension, layer.outputDimension])
                tensors["\(prefix).\(index).bias"] = Tensor(layer.bias, shape: [layer.outputDimension])
            }
        }
        if let trees = booster?.ensemble ?? restoredTrees {
            tensors["trees.features"] = Tensor(trees.features.map(Float.init), shape: [trees.features.count])
            tensors["trees.thresholds"] = Tensor(trees.thresholds, shape: [trees.thresholds.count])
            tensors["trees.leaves"] = Tensor(trees.leaves, shape: [trees.leaves.count])
            tensors["trees.base"] = Tensor(trees.baseScores, shape: [trees.baseScores.count])
        } else {
            add(best, prefix: "best")
        }
        var metadata: [String: String] = [
            "best_rounds": "\(bestRounds)",
            "epochs_run": "\(epochsRun)", "best_epoch": "\(bestEpoch)", "stopped_early": "\(stoppedEarly)",
            "best_loss": "\(bestLoss.bitPattern)",
            "validation_losses": validationLosses.map { "\($0.bitPattern)" }.joined(separator: ","),
            "finished": "\(isFinished)",
        ]
        if !isFinished && booster == nil && restoredTrees == nil {
            add(network, prefix: "network")
            for index in network.layers.indices where optimizer.hasState {
                let layer = network.layers[index]
                let shape = [layer.inputDimension, layer.outputDimension]
                tensors["adam.m.\(index)"] = Tensor(optimizer.firstMoments[index], shape: shape)
                tensors["adam.v.\(index)"] = Tensor(optimizer.secondMoments[index], shape: shape)
                tensors["adam.bm.\(index)"] = Tensor(optimizer.biasFirst[index], shape: [layer.outputDimension])
                tensors["adam.bv.\(index)"] = Tensor(optimizer.biasSecond[index], shape: [layer.outputDimension])
            }
            metadata["adam_step"] = "\(optimizer.step)"
            metadata["generator"] = generator.stateWords.map { String($0) }.joined(separator: ",")
        }
        return try Safetensors.encode(tensors, metadata: metadata)
    }

    /// A session restored from ``checkpointData()`` for the same architecture, train split and options.
    public init(
        restoring data: Data, file: String, architecture: Architecture, train: TrainingSplit, options: TrainingOptions
    ) throws(StudentError) {
        let (tensors, metadata) = try Safetensors.decode(data, file: file)
        func floats(_ name: String, _ count: Int) throws(StudentError) -> [Float] {
            guard let values = tensors[name]?.floats(), values.count == count else {
                throw StudentError("checkpoint tensor \(name) is missing or has the wrong size", file: file)
            }
            return values
        }
        func restoredNetwork(_ prefix: String) throws(StudentError) -> DenseNetwork {
            var layers: [DenseLayer] = []
            let widths = architecture.widths
            for (index, (input, output)) in zip(widths, widths.dropFirst()).enumerated() {
                let weights = try floats("\(prefix).\(index).weight", input * output)
                layers.append(
                    DenseLayer(
                        weights: Matrix(rows: input, columns: output, storage: weights),
                        bias: try floats("\(prefix).\(index).bias", output)))
            }
            return DenseNetwork(architecture: architecture, layers: layers, precision: .fp32)
        }
        func integer(_ key: String, in range: ClosedRange<Int>) throws(StudentError) -> Int {
            guard let text = metadata[key], let value = Int(text) else {
                throw StudentError("checkpoint metadata \(key) is missing", file: file)
            }
            guard range.contains(value) else {
                throw StudentError(
                    "checkpoint metadata \(key) must be in [\(range.lowerBound), \(range.upperBound)], got \(value); the checkpoint is corrupt, delete it to retrain",
                    file: file)
            }
            return value
        }
        self.init(architecture: architecture, train: train, options: options, seed: 0)
        epochsRun = try integer("epochs_run", in: 0...Self.maxCheckpointEpochs)
        bestEpoch = try integer("best_epoch", in: 0...epochsRun)
        stoppedEarly = metadata["stopped_early"] == "true"
        bestLoss = Float(bitPattern: UInt32(metadata["best_loss"] ?? "") ?? Float.infinity.bitPattern)
        validationLosses = (metadata["validation_losses"] ?? "").split(separator: ",").compactMap {
            UInt32($0).map(Float.init(bitPattern:))
        }
        if architecture.family.isTrees {
            let (depth, _) = architecture.treeShape
            var trees = TreeEnsemble(
                classes: architecture.outputDimension, inputDimension: architecture.inputDimension, depth: depth,
                baseScores: try floats("trees.base", architecture.outputDimension))
            let featureCount = tensors["trees.features"]?.shape.first ?? 0
            let leafCount = tensors["trees.leaves"]?.shape.first ?? 0
            var features: [Int32] = []
            for value in try floats("trees.features", featureCount) {
                guard let feature = Int32(exactly: value),
                    (-1..<Int32(clamping: architecture.inputDimension)).contains(feature)
                else {
                    throw StudentError(
                        "checkpoint tensor trees.features holds \(value), not a feature index in [-1, \(architecture.inputDimension)); the checkpoint is corrupt, delete it to retrain",
                        file: file)
                }
                features.append(feature)
            }
            trees.features = features
            trees.thresholds = try floats("trees.thresholds", featureCount)
            trees.leaves = try floats("trees.leaves", leafCount)
            guard trees.internalNodes > 0, featureCount % trees.internalNodes == 0,
                leafCount == featureCount / trees.internalNodes * trees.leafCount
            else {
                throw StudentError(
                    "checkpoint trees do not have depth \(depth) (\(featureCount) nodes, \(leafCount) leaves); the checkpoint is corrupt, delete it to retrain",
                    file: file)
            }
            bestRounds = try integer("best_rounds", in: 0...epochsRun)
            if case .dense(let x) = train.features, x.rows == train.hardLabels.count, x.rows > 1,
                x.columns == architecture.inputDimension
            {
                var restored = GradientBoosting(
                    x: x, teacher: train.teacherProbabilities, depth: depth, learningRate: options.learningRate)
                restored.restore(trees, x: x)
                booster = restored
            } else {
                restoredTrees = trees
            }
            return
        }
        best = try restoredNetwork("best")
        if metadata["finished"] == "true" {
            self.network = best
            return
        }
        self.network = try restoredNetwork("network")
        for index in self.network.layers.indices where options.optimizer == .adam {
            let layer = self.network.layers[index]
            let count = layer.inputDimension * layer.outputDimension
            optimizer.firstMoments[index] = try floats("adam.m.\(index)", count)
            optimizer.secondMoments[index] = try floats("adam.v.\(index)", count)
            optimizer.biasFirst[index] = try floats("adam.bm.\(index)", layer.outputDimension)
            optimizer.biasSecond[index] = try floats("adam.bv.\(index)", layer.outputDimension)
        }
        optimizer.step = try integer("adam_step", in: 0...(1 << 53))
        let words = (metadata["generator"] ?? "").split(separator: ",").compactMap { UInt64($0) }
        guard let restored = SeededGenerator(stateWords: words) else {
            throw StudentError("checkpoint generator state is missing", file: file)
        }
        generator = restored
    }
}

import Foundation
import RetortNumerics

/// Hyperparameters of distillation training.
public struct TrainingOptions: Sendable, Codable, Equatable {
    /// Largest number of epochs (full fidelity).
    public var epochs: Int
    /// Examples per minibatch.
    public var batchSize: Int
    /// Learning rate (Adam's step size, or SGD's rate at the start of the schedule).
    public var learningRate: Float
    /// Epochs without validation improvement before stopping.
    public var patience: Int
    /// The distillation loss.
    public var loss: DistillationLoss
    /// What early stopping watches on validation.
    public var earlyStopping: EarlyStopping
    /// How the learning rate moves over the planned epochs.
    public var learningRateSchedule: LearningRateSchedule = .constant
    /// The update rule.
    public var optimizer: Optimizer = .adam

    /// An update rule.
    public enum Optimizer: String, Sendable, Codable, CaseIterable {
        /// Minibatch Adam on every layer (sparse-input layers updated lazily on the touched rows).
        case adam
        /// Plain SGD, `w ← w − η·∂L/∂w` on each minibatch, no optimizer state: fastText's training (with
        /// `batch_size: 1` and `lr_schedule: linear`, exactly its per-example updates). Embedding bags only; only the
        /// embedding rows of the batch's n-grams change, through a sparse kernel.
        case sgd
    }

    /// A learning-rate schedule.
    public enum LearningRateSchedule: String, Sendable, Codable, CaseIterable {
        /// The same rate throughout.
        case constant
        /// Decaying linearly to 0 at the last planned epoch, batch by batch (fastText's schedule).
        case linear
    }

    /// What early stopping watches on the validation split.
    public enum EarlyStopping: String, Sendable, Codable, CaseIterable {
        /// Cross-entropy against the teacher's full distribution (the default: the teacher's knowledge).
        case teacher
        /// The training objective itself (the distillation loss with its α and T): with α = 0, the hard-label
        /// cross-entropy, as fastText-style training on the teacher's answers would use.
        case objective
        /// Agreement with the teacher's answers on validation (the tracked value is 1 − agreement): the epoch whose
        /// answers match the teacher's most, which on hard labels comes later than the lowest cross-entropy.
        case agreement
        /// No early stopping: every planned epoch runs and the last one is kept (fastText's way; pair it with a
        /// decaying `lr_schedule`).
        case none
    }

    /// Options with the given values.
    public init(
        epochs: Int = 50, batchSize: Int = 128, learningRate: Float = 0.003, patience: Int = 6,
        loss: DistillationLoss = DistillationLoss(), earlyStopping: EarlyStopping = .teacher
    ) {
        self.earlyStopping = earlyStopping
        self.epochs = epochs
        self.batchSize = batchSize
        self.learningRate = learningRate
        self.patience = patience
        self.loss = loss
    }
}

/// Training data for one split: features, teacher distributions and hard labels.
public struct TrainingSplit: Sendable {
    /// Features.
    public var features: FeatureMatrix
    /// Teacher probabilities `n × K`.
    public var teacherProbabilities: Matrix
    /// Hard labels (the teacher's answers, or gold).
    public var hardLabels: [Int]

    /// A split from its parts.
    public init(features: FeatureMatrix, teacherProbabilities: Matrix, hardLabels: [Int]) {
        self.features = features
        self.teacherProbabilities = teacherProbabilities
        self.hardLabels = hardLabels
    }
}

/// A training run in progress: minibatch Adam on the distillation loss with early stopping on the validation
/// cross-entropy against the teacher. It can stop after any epoch and continue later from the same state.
public struct TrainingSession: Sendable {
    /// Hyperparameters.
    public let options: TrainingOptions
    /// The current network.
    public internal(set) var network: DenseNetwork
    /// The best network so far (lowest validation loss).
    public internal(set) var best: DenseNetwork
    /// Epochs run.
    public internal(set) var epochsRun = 0
    /// Epoch (1-based) of `best`.
    public internal(set) var bestEpoch = 0
    /// Validation loss after each epoch.
    public internal(set) var validationLosses: [Float] = []
    /// Whether early stopping fired.
    public internal(set) var stoppedEarly = false
    /// The optimizer (its learning rate follows the schedule; an SGD session keeps only that rate here).
    public internal(set) var optimizer: Adam
    var generator: SeededGenerator
    var bestLoss = Float.infinity
    let temperedTargets: Matrix
    /// gbdt: the booster (created on the first round) and the round count of the best validation loss.
    var booster: GradientBoosting?
    var bestRounds = 0
    /// gbdt restored without its train split (enough to predict, not to train on).
    var restoredTrees: TreeEnsemble?
    /// gbdt: validation logits of the trees so far, updated round by round.
    var validationScores: Matrix?

    /// The best model so far: the best dense network, or the boosted trees up to the best round.
    public var bestModel: StudentModel {
        if let trees = booster?.ensemble ?? restoredTrees { return .trees(trees.truncated(toRounds: bestRounds)) }
        return .dense(best)
    }

    /// A fresh session for `architecture` on `train`, seeded with `seed`.
    public init(architecture: Architecture, train: TrainingSplit, options: TrainingOptions, seed: UInt64) {
        var generator = SeededGenerator(seed: seed)
        let sgd = options.optimizer == .sgd
        let network =
            sgd
            ? DenseNetwork(uniformFirstLayer: architecture, generator: &generator)
            : DenseNetwork(architecture: architecture, generator: &generator)
        self.options = options
        self.network = network
        self.best = network
        self.optimizer =
            sgd ? Adam(learningRate: options.learningRate) : Adam(for: network, learningRate: options.learningRate)
        self.generator = generator
        self.temperedTargets = options.loss.temperedTargets(train.teacherProbabilities)
    }

    /// Whether training has ended (epoch limit or early stop).
    public var isFinished: Bool { stoppedEarly || epochsRun >= options.epochs }

    /// Trains epoch by epoch until `epochs` have run in total, training finishes, or `shouldStop()` says so
    /// (checked before each epoch: the checkpoint a time budget stops at).
    public mutating func train(
        untilEpoch epochs: Int, train: TrainingSplit, validation: TrainingSplit, shouldStop: () -> Bool = { false }
    ) throws(NumericsError) {
        while epochsRun < epochs && !isFinished && !shouldStop() {
            try runEpochs(1, train: train, validation: validation)
        }
    }

    /// Runs up to `count` more epochs (fewer when training finishes first).
    public mutating func runEpochs(_ count: Int, train: TrainingSplit, validation: TrainingSplit) throws(NumericsError)
    {
        if network.architecture.family.isTrees {
            try runRounds(count, train: train, validation: validation)
            return
        }
        if network.architecture.family == .prototype {
            // Closed form: one pass computes the centroids; training is then finished.
            guard count > 0, !isFinished else { return }
            network = try Prototype.fit(architecture: network.architecture, train: train)
            best = network
            epochsRun = 1
            bestEpoch = 1
            validationLosses = [try Self.crossEntropy(network, on: validation)]
            bestLoss = validationLosses[0]
            stoppedEarly = true
            return
        }
        var sgd: EmbeddingBagSGD?
        if options.optimizer == .sgd {
            guard network.architecture.family == .embeddingBag, case .sparse = train.features,
                let dimension = network.architecture.hidden.first
            else {
                throw NumericsError(.shapeMismatch, "optimizer sgd trains embedding-bag students on text features")
            }
            sgd = EmbeddingBagSGD(dimension: dimension, classes: network.architecture.outputDimension)
        }
        var remaining = count
        let n = train.features.rows
        var order = Array(0..<n)
        let batches = max(1, (n + options.batchSize - 1) / options.batchSize)
        if options.earlyStopping == .none {
            // Without early stopping the best is the last epoch: `best` lets go of the weights while they train (so
            // they change in place instead of being copied, 256 MB for 2^21 buckets) and takes them back at the end.
            best = DenseNetwork(architecture: network.architecture, layers: [], precision: .fp32)
        }
        defer { if options.earlyStopping == .none { best = network } }
        while remaining > 0 && !isFinished {
            order.shuffle(using: &generator)
            var start = 0
            while start < n {
                if options.learningRateSchedule == .linear {
                    let progress =
                        (Double(epochsRun) + Double(start / options.batchSize) / Double(batches))
                        / Double(max(options.epochs, 1))
                    optimizer.learningRate = options.learningRate * Float(max(0, 1 - progress))
                }
                let batch = order[start..<min(start + options.batchSize, n)]
                if sgd != nil, case .sparse(let x) = train.features {
                    try sgd?.step(
                        &network, features: x, rows: batch, temperedTargets: temperedTargets,
                        hardLabels: train.hardLabels, loss: options.loss, rate: optimizer.learningRate)
                    start += options.batchSize
                    continue
                }
                let features = train.features.gatheringRows(batch)
                let targets = temperedTargets.gatheringRows(batch)
                let labels = batch.map { train.hardLabels[$0] }
                let gradients = try network.gradients(
                    features, temperedTargets: targets, hardLabels: labels, loss: options.loss)
                optimizer.update(&network, with: gradients)
                start += options.batchSize
            }
            epochsRun += 1
            remaining -= 1
            let loss: Float
            switch options.earlyStopping {
            case .teacher:
                loss = try Self.crossEntropy(network, on: validation)
            case .none:
                loss = -Float(epochsRun)
            case .agreement:
                let predicted = try network.logits(validation.features).argmaxPerRow()
                let same = zip(predicted, validation.hardLabels).filter { $0 == $1 }.count
                loss = 1 - Float(same) / Float(max(validation.hardLabels.count, 1))
            case .objective:
                loss =
                    options.loss.lossAndGradient(
                        logits: try network.logits(validation.features),
                        temperedTargets: options.loss.temperedTargets(validation.teacherProbabilities),
                        hardLabels: validation.hardLabels
                    ).loss
            }
            if recordValidationLoss(loss) && options.earlyStopping != .none { best = network }
        }
    }

    /// Appends this epoch's validation loss; returns whether it is the best so far (then it becomes `bestEpoch`),
    /// and stops training once `patience` epochs pass without improvement.
    mutating func recordValidationLoss(_ loss: Float) -> Bool {
        validationLosses.append(loss)
        if loss < bestLoss - 1e-5 {
            bestLoss = loss
            bestEpoch = epochsRun
            return true
        }
        if epochsRun - bestEpoch >= options.patience { stoppedEarly = true }
        return false
    }

    /// Mean cross-entropy `−Σ_j p_ij log q_ij` of the network's probabilities `q` against the teacher's `p`.
    public static func crossEntropy(_ network: DenseNetwork, on split: TrainingSplit) throws(NumericsError) -> Float {
        crossEntropy(logits: try network.logits(split.features), against: split.teacherProbabilities)
    }

    /// Mean `−Σ_j p_ij log softmax(z_i)_j = Σ_j p_ij · LSE(z_i) − Σ_j p_ij z_ij` from logits `z`: one logarithm per row
    /// instead of one per entry.
    public static func crossEntropy(logits z: Matrix, against p: Matrix) -> Float {
        precondition(z.rows == p.rows && z.columns == p.columns, "logits and teacher shapes differ")
        var total: Double = 0
        z.storage.withUnsafeBufferPointer { logits in
            p.storage.withUnsafeBufferPointer { teacher in
                for i in 0..<z.rows {
                    let row = i * z.columns
                    var (mass, dot): (Float, Float) = (0, 0)
                    for j in row..<(row + z.columns) {
                        mass += teacher[j]
                        dot += teacher[j] * logits[j]
                    }
                    let lse = Kernels.logSumExp(UnsafeBufferPointer(rebasing: logits[row..<(row + z.columns)]))
                    total += Double(mass * lse - dot)
                }
            }
        }
        return Float(total / Double(max(z.rows, 1)))
    }

    /// Mean `−Σ_j p_ij log q_ij` of probabilities `q` against the teacher's `p`.
    public static func crossEntropy(_ q: Matrix, against p: Matrix) -> Float {
        var total: Double = 0
        for i in 0..<q.rows {
            for j in 0..<q.columns where p[i, j] > 0 { total -= Double(p[i, j] * logf(max(q[i, j], 1e-30))) }
        }
        return Float(total / Double(max(q.rows, 1)))
    }

    /// gbdt: one boosting round per "epoch", early-stopped on the validation cross-entropy against the teacher.
    mutating func runRounds(_ count: Int, train: TrainingSplit, validation: TrainingSplit) throws(NumericsError) {
        guard case .dense(let x) = train.features, case .dense(let validationX) = validation.features else {
            throw NumericsError(.shapeMismatch, "gbdt students read dense (numeric) features")
        }
        if booster == nil {
            booster = GradientBoosting(
                x: x, teacher: train.teacherProbabilities, depth: network.architecture.treeShape.depth,
                learningRate: options.learningRate)
        }
        var remaining = count
        while remaining > 0 && !isFinished, var current = booster {
            current.addRound(teacher: train.teacherProbabilities)
            booster = current
            epochsRun += 1
            remaining -= 1
            var scores = validationScores ?? current.ensemble.truncated(toRounds: epochsRun - 1).logits(validationX)
            let classes = current.ensemble.classes
            current.ensemble.addScores(
                ofTrees: ((epochsRun - 1) * classes)..<(epochsRun * classes), for: validationX, to: &scores)
            validationScores = scores
            var probabilities = scores
            Kernels.softmaxRows(&probabilities)
            let loss = Self.crossEntropy(probabilities, against: validation.teacherProbabilities)
            if recordValidationLoss(loss) { bestRounds = epochsRun }
        }
    }
}

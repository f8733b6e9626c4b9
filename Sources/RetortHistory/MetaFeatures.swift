import Foundation
import RetortData
import RetortNumerics
import RetortStudents

/// What a task looks like to the history: sizes, label and teacher statistics, and how two cheap probes fare. Computed
/// in seconds (the probes are a closed-form nearest centroid and one epoch of a linear model on a sample). A structured
/// task (``init(structured:seed:)``) fills the shared fields with their structured counterparts and adds
/// ``structured``.
public struct MetaFeatures: Sendable, Codable, Equatable {
    /// Train rows.
    public var rows: Int
    /// Classes (structured: distinct valid teacher answers in train).
    public var classes: Int
    /// `text`, `numeric` or `structured`.
    public var kind: String
    /// Numeric: input dimension; text: distinct whitespace tokens in train (the vocabulary size).
    public var dimension: Int
    /// Text: mean tokens per train input; numeric: 0.
    public var meanTextLength: Double
    /// Entropy (nats) of the teacher's answers over train, `−Σ_k f_k log f_k`.
    public var classEntropy: Double
    /// Mean over train rows of the teacher's top probability.
    public var teacherMeanMaxProbability: Double
    /// Mean over train rows of the entropy (nats) of the teacher's distribution.
    public var teacherMeanEntropy: Double
    /// The teacher's accuracy against gold on validation, when validation has gold.
    public var teacherGoldAccuracy: Double?
    /// Validation agreement with the teacher of a teacher-weighted nearest-centroid probe.
    public var probeCentroidAccuracy: Double
    /// Validation agreement with the teacher of a linear probe trained for one epoch on at most `probeSample` rows.
    public var probeLinearAccuracy: Double
    /// Learning-curve slope: the linear probe's agreement gain per doubling of its sample (from a quarter to all of
    /// it).
    public var learningCurveSlope: Double
    /// Tasks with gold on train and validation: how far a converged logistic regression on gold labels (at most
    /// `probeSample` gold train rows, on the probes' features) lands from the teacher, both scored against gold on
    /// validation (probe accuracy − teacher accuracy). Positive when the gold labels alone are learnable beyond what
    /// the teacher answers, the sign of a noisy or weak teacher whose errors a student would copy. Nil for tasks
    /// without gold and records made before it existed (`retort history refresh` fills it in).
    public var goldProbeHeadroom: Double?
    /// Structured tasks: the schema's shape, copied values, the teacher's invalid answers, the probe's field F1; nil
    /// for label tasks (whose records stay as they were).
    public var structured: StructuredMetaFeatures?

    /// Rows the linear probe sees.
    public static let probeSample = 2000

    enum CodingKeys: String, CodingKey {
        case rows, classes, kind, dimension
        case meanTextLength = "mean_text_length"
        case classEntropy = "class_entropy"
        case teacherMeanMaxProbability = "teacher_mean_max_probability"
        case teacherMeanEntropy = "teacher_mean_entropy"
        case teacherGoldAccuracy = "teacher_gold_accuracy"
        case probeCentroidAccuracy = "probe_centroid_accuracy"
        case probeLinearAccuracy = "probe_linear_accuracy"
        case learningCurveSlope = "learning_curve_slope"
        case goldProbeHeadroom = "gold_probe_headroom"
        case structured
    }

    /// Meta-features from their values.
    public init(
        rows: Int, classes: Int, kind: String, dimension: Int, meanTextLength: Double, classEntropy: Double,
        teacherMeanMaxProbability: Double, teacherMeanEntropy: Double, teacherGoldAccuracy: Double?,
        probeCentroidAccuracy: Double, probeLinearAccuracy: Double, learningCurveSlope: Double,
        goldProbeHeadroom: Double? = nil, structured: StructuredMetaFeatures? = nil
    ) {
        (self.rows, self.classes, self.kind, self.dimension) = (rows, classes, kind, dimension)
        (self.meanTextLength, self.classEntropy) = (meanTextLength, classEntropy)
        (self.teacherMeanMaxProbability, self.teacherMeanEntropy) = (teacherMeanMaxProbability, teacherMeanEntropy)
        self.teacherGoldAccuracy = teacherGoldAccuracy
        (self.probeCentroidAccuracy, self.probeLinearAccuracy) = (probeCentroidAccuracy, probeLinearAccuracy)
        self.learningCurveSlope = learningCurveSlope
        self.goldProbeHeadroom = goldProbeHeadroom
        self.structured = structured
    }

    /// Computes every meta-feature of `task` (probes seeded with `seed`).
    public init(task: TaskData, seed: UInt64 = 7) throws(NumericsError) {
        let train = task.train
        let k = task.vocabulary.count
        rows = train.count
        classes = k
        kind = task.kind.rawValue
        if task.kind == .text {
            var vocabulary = Set<Substring>()
            var tokens = 0
            for case .text(let text) in train.inputs {
                let words = text.lowercased().split(whereSeparator: \.isWhitespace)
                tokens += words.count
                vocabulary.formUnion(words.map { Substring($0) })
            }
            dimension = vocabulary.count
            meanTextLength = Double(tokens) / Double(max(rows, 1))
        } else {
            dimension = task.inputDimension
            meanTextLength = 0
        }
        var counts = [Double](repeating: 0, count: k)
        for label in train.teacherLabels { counts[label] += 1 }
        let n = Double(max(train.count, 1))
        classEntropy = Self.entropy(counts.map { $0 / n })
        var (maxTotal, entropyTotal) = (0.0, 0.0)
        let p = train.teacherProbabilities
        for i in 0..<p.rows {
            let row = (0..<p.columns).map { Double(p[i, $0]) }
            maxTotal += row.max() ?? 0
            entropyTotal += Self.entropy(row)
        }
        teacherMeanMaxProbability = maxTotal / n
        teacherMeanEntropy = entropyTotal / n
        let validation = task.validation
        let withGold = zip(validation.teacherLabels, validation.gold).compactMap { pair in
            pair.1.map { (pair.0, $0) }
        }
        teacherGoldAccuracy =
            withGold.isEmpty ? nil : Double(withGold.filter { $0.0 == $0.1 }.count) / Double(withGold.count)

        let featurizer = Self.probeFeaturizer(for: task)
        let trainFeatures = featurizer.features(for: train.inputs)
        let validationFeatures = featurizer.features(for: validation.inputs)
        let validationSplit = TrainingSplit(
            features: validationFeatures, teacherProbabilities: validation.teacherProbabilities,
            hardLabels: validation.teacherLabels)
        func agreement(_ network: DenseNetwork) throws(NumericsError) -> Double {
            let predicted = try network.probabilities(validationFeatures).argmaxPerRow()
            let same = zip(predicted, validation.teacherLabels).filter { $0 == $1 }.count
            return Double(same) / Double(max(validation.count, 1))
        }
        let sparse = task.kind == .text
        let trainSplit = TrainingSplit(
            features: trainFeatures, teacherProbabilities: p, hardLabels: train.teacherLabels)
        let centroid = try Prototype.fit(
            architecture: Architecture(
                family: .prototype, hidden: [], inputDimension: featurizer.outputDimension, outputDimension: k,
                sparseInput: sparse), train: trainSplit)
        probeCentroidAccuracy = try agreement(centroid)
        // One epoch of a linear model on a seeded sample, and on a quarter of it: the slope per doubling.
        var generator = SeededGenerator(seed: seed)
        var order = Array(0..<train.count)
        order.shuffle(using: &generator)
        let sample = Array(order.prefix(Self.probeSample))
        func linearProbe(_ indices: [Int]) throws(NumericsError) -> Double {
            let split = TrainingSplit(
                features: trainFeatures.gatheringRows(indices), teacherProbabilities: p.gatheringRows(indices),
                hardLabels: indices.map { train.teacherLabels[$0] })
            var session = TrainingSession(
                architecture: Architecture(
                    family: .linear, hidden: [], inputDimension: featurizer.outputDimension, outputDimension: k,
                    sparseInput: sparse), train: split,
                options: TrainingOptions(epochs: 1, batchSize: 32, learningRate: sparse ? 0.05 : 0.02), seed: seed)
            try session.train(untilEpoch: 1, train: split, validation: validationSplit)
            return try agreement(session.network)
        }
        probeLinearAccuracy = try linearProbe(sample)
        let quarter = Array(sample.prefix(max(1, sample.count / 4)))
        learningCurveSlope = (probeLinearAccuracy - (try linearProbe(quarter))) / 2
        goldProbeHeadroom = try Self.goldProbeHeadroom(
            task: task, trainFeatures: trainFeatures, validationFeatures: validationFeatures,
            dimension: featurizer.outputDimension)
    }

    /// The probes' cheap features: standardized numbers, or hashed word 1–2-grams in 2^14 buckets.
    static func probeFeaturizer(for task: TaskData) -> Featurizer {
        task.kind == .text
            ? .text(HashedTextFeaturizer(bucketsLog2: 14, minCharNgram: 0))
            : .numeric(NumericStandardizer(fitting: task.train.inputs))
    }

    /// These meta-features with what their record lacks computed from `task` (the task they were computed on): today
    /// ``goldProbeHeadroom`` of a label task recorded before it existed. The recorded values stay as they are.
    public func filledIn(from task: TaskData) throws(NumericsError) -> MetaFeatures {
        guard goldProbeHeadroom == nil, kind == task.kind.rawValue else { return self }
        let featurizer = Self.probeFeaturizer(for: task)
        var copy = self
        copy.goldProbeHeadroom = try Self.goldProbeHeadroom(
            task: task, trainFeatures: featurizer.features(for: task.train.inputs),
            validationFeatures: featurizer.features(for: task.validation.inputs),
            dimension: featurizer.outputDimension)
        return copy
    }

    /// These meta-features with what their record lacks taken from `other`, a record of the same task (as a history
    /// export holds it): today ``goldProbeHeadroom``, the one field added after records were first stored. The
    /// recorded values stay as they are.
    public func filledIn(from other: MetaFeatures) -> MetaFeatures {
        guard kind == other.kind else { return self }
        var copy = self
        if copy.goldProbeHeadroom == nil { copy.goldProbeHeadroom = other.goldProbeHeadroom }
        return copy
    }

    /// A gold-probe headroom from which a search warns about the teacher: 10 points. The starter's tasks all stay below
    /// (at most +0.043 numeric, +0.060 text; on a small validation set a few rows make a point); the
    /// bench's noisy-teacher variants read +0.27, +0.33 and +0.54.
    public static let teacherWarningHeadroom = 0.10

    /// The warning a search prints when a plain model on the gold labels beats the teacher by at least
    /// ``teacherWarningHeadroom`` on validation; nil otherwise.
    public var teacherWarning: String? {
        guard let headroom = goldProbeHeadroom, headroom >= Self.teacherWarningHeadroom else { return nil }
        return String(
            format:
                "a logistic regression trained on the gold labels scores %.1f points above the teacher on validation (gold-probe headroom %+.3f): the teacher's answers may be worth checking before a student copies them",
            headroom * 100, headroom)
    }

    /// The gold probe's epochs: Adam with a learning rate decaying linearly to 0, enough for the convex fit to
    /// converge on `probeSample` rows. (One epoch, like the teacher-agreement probe, loses the signal;
    /// docs/benchmarks.md.) Its values correlate 0.98 with scikit-learn's converged fit on the starter's numeric tasks.
    static let goldProbeEpochs = 100

    /// ``goldProbeHeadroom`` of `task` from the probes' features (``probeFeaturizer(for:)``), or nil without gold on
    /// both train and validation. The probe is seeded on its own (not with the search's seed): it measures the task, not the run.
    static func goldProbeHeadroom(
        task: TaskData, trainFeatures: FeatureMatrix, validationFeatures: FeatureMatrix, dimension: Int
    ) throws(NumericsError) -> Double? {
        let k = task.vocabulary.count
        let gold = task.train.gold.enumerated().compactMap { index, label in label.map { (index, $0) } }
        let scored = task.validation.gold.enumerated().compactMap { index, label in label.map { (index, $0) } }
        guard !gold.isEmpty, !scored.isEmpty, k > 0 else { return nil }
        var generator = SeededGenerator(seed: 7)
        let drawn = gold.shuffled(using: &generator).prefix(Self.probeSample)
        let (sample, labels) = (drawn.map(\.0), drawn.map(\.1))
        var targets = Matrix(rows: labels.count, columns: k)
        for (row, label) in labels.enumerated() { targets[row, label] = 1 }
        let split = TrainingSplit(
            features: trainFeatures.gatheringRows(sample), teacherProbabilities: targets, hardLabels: labels)
        var options = TrainingOptions(
            epochs: Self.goldProbeEpochs, batchSize: 64, learningRate: 0.01,
            loss: DistillationLoss(temperature: 1, alpha: 0), earlyStopping: .none)
        options.learningRateSchedule = .linear
        var session = TrainingSession(
            architecture: Architecture(
                family: .linear, hidden: [], inputDimension: dimension, outputDimension: k,
                sparseInput: task.kind == .text),
            train: split, options: options, seed: 7)
        try session.train(untilEpoch: Self.goldProbeEpochs, train: split, validation: split)
        let predicted = try session.network.probabilities(validationFeatures.gatheringRows(scored.map(\.0)))
            .argmaxPerRow()
        let probe = Double(zip(predicted, scored).filter { $0 == $1.1 }.count) / Double(scored.count)
        let teacher = Double(scored.filter { task.validation.teacherLabels[$0.0] == $0.1 }.count)
        return probe - teacher / Double(scored.count)
    }

    /// `−Σ p log p` over the positive entries (nats).
    static func entropy(_ distribution: [Double]) -> Double {
        -distribution.reduce(0) { $1 > 0 ? $0 + $1 * log($1) : $0 }
    }

    /// The numeric vector the predictor reads (logs for counts; the teacher-vs-gold accuracy as −1 when unknown).
    /// Label tasks give 12 numbers, structured tasks 17 of their own: only tasks of one kind are ever compared. The gold
    /// probe's headroom is not in it: measured in the vector, it fixed the predictions of some noisy-teacher tasks and
    /// cost the learned search more than it saved (docs/benchmarks.md). `suggest`'s predictor, which trains nothing,
    /// appends it (``HistoryPredictor/readsGoldProbeHeadroom``).
    public var vector: [Double] {
        if kind == TaskKind.structured.rawValue { return structuredVector }
        return [
            log(Double(max(rows, 1))), log(Double(max(classes, 1))), kind == "text" ? 1 : 0,
            log(Double(max(dimension, 1))), meanTextLength, classEntropy, teacherMeanMaxProbability,
            teacherMeanEntropy, teacherGoldAccuracy ?? -1, probeCentroidAccuracy, probeLinearAccuracy,
            learningCurveSlope,
        ]
    }
}

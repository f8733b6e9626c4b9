import Foundation
import RetortData
import RetortEvals
import RetortNumerics
import RetortStudents

/// Everything a search needs besides the data.
public struct SearchSettings: Sendable {
    /// Candidate catalog.
    public var catalog: CandidateCatalog
    /// Eval suite.
    public var suite: EvalSuite
    /// Primary metric requested by the job or flag (overrides the suite).
    public var metric: String?
    /// Constraints and quality bar.
    public var constraints: Constraints
    /// Wall-clock budget in seconds: nothing starts after it; training stops at the next epoch boundary.
    public var budgetSeconds: Double
    /// Seed.
    public var seed: UInt64
    /// vCPU price for serving cost.
    public var usdPerVCPUHour: Double
    /// How candidates are scheduled.
    public var strategy: SearchStrategy
    /// What the learned strategy runs when the history says too little (``LearnedMode``): halving when the learned
    /// strategy was asked for; the strategy the search would have run otherwise when the history chose it (a search
    /// that names no strategy is exhaustive, so a default search on a task new to the history stays exhaustive).
    public var learnedFallback: SearchStrategy = .halving
    /// Halving's reduction factor η: each rung keeps 1/η of the candidates and trains them η times longer.
    public var eta: Int
    /// Trials trained at once.
    public var workers: Int
    /// Most rungs halving uses; the first rung's fidelity is η^(1 − rungs).
    public var maxRungs: Int
    /// The learned strategy's predictions from history, by candidate id.
    public var predictions: [String: CandidatePrediction] = [:]
    /// Tasks of this input kind the predictions were learned from.
    public var historyTasks: Int?
    /// How wide the history's intervals usually are: the median standard deviation of its own trials predicted leave
    /// one task out (with the distance widening); nil when unknown.
    public var historyTypicalSD: Double?
    /// κ: the share of the history's predicted deviation left once a task's own offset is known (fitted on the
    /// history, leave one task out: `DistanceWidening.offsetSpread`); the prior spread of
    /// `SearchEngine.correctedPredictions`. nil: unknown, the whole deviation is kept.
    public var historyOffsetSpread: Double?
    /// The past tasks most like this one, with what their searches found (the learned strategy's evidence).
    public var similarTasks: [SimilarTask] = []
    /// The learned strategy's confidence: an untrained candidate is ruled out when even its prediction plus `z`
    /// standard deviations cannot change the recommendation (z = 2: about 97.7% one-sided).
    public var confidenceZ = 2.0
    /// Expected requests per month (`--traffic`, `serving.traffic_per_month`): the break-even and, when the saving
    /// cannot pay the one-off cost within the horizon, "keep the teacher".
    public var trafficPerMonth: Double?
    /// Where the traffic figure came from when it was measured (the gateway ledger's recent volume on a route).
    public var trafficSource: String?
    /// Measured p50s within a factor of 1 + this count as equally fast, at least (``SpeedComparison``).
    public var speedTolerance = SpeedComparison.defaultTolerance
    /// Where each rung's training runs: in this process (the default) or elsewhere (see ``TrialExecutor``).
    public var executor: any TrialExecutor = LocalTrialExecutor()

    /// Settings with the given values.
    public init(
        catalog: CandidateCatalog, suite: EvalSuite = .standard, metric: String? = nil,
        constraints: Constraints = Constraints(), budgetSeconds: Double = 600, seed: UInt64 = 7,
        usdPerVCPUHour: Double = 0.05, strategy: SearchStrategy = .exhaustive, eta: Int = 3, workers: Int = 1,
        maxRungs: Int = 3
    ) {
        self.maxRungs = max(1, maxRungs)
        self.strategy = strategy
        self.eta = max(2, eta)
        self.workers = max(1, workers)
        self.catalog = catalog
        self.suite = suite
        self.metric = metric
        self.constraints = constraints
        self.budgetSeconds = budgetSeconds
        self.seed = seed
        self.usdPerVCPUHour = usdPerVCPUHour
    }
}

/// A past task like the current one, and what its search found.
public struct SimilarTask: Sendable, Codable, Equatable {
    /// Its name.
    public var task: String
    /// Its recommendation: `student: ID` or `no-distillation`.
    public var recommendation: String
    /// The best validation gap to its teacher any of its students reached.
    public var bestGap: Double?
    /// Distance between the two tasks' standardized meta-features.
    public var distance: Double

    /// A similar task.
    public init(task: String, recommendation: String, bestGap: Double?, distance: Double) {
        self.task = task
        self.recommendation = recommendation
        self.bestGap = bestGap
        self.distance = distance
    }

    enum CodingKeys: String, CodingKey {
        case task, recommendation, distance
        case bestGap = "best_gap"
    }
}

/// What history predicts for a candidate before it trains.
public struct CandidatePrediction: Sendable, Codable, Equatable {
    /// Predicted validation `student − teacher` on the primary metric.
    public var gap: Double
    /// Its standard deviation (spread of similar past trials, with a floor).
    public var gapSD: Double
    /// Predicted p50 latency, ms.
    public var latencyMsP50: Double?
    /// Past trials the prediction rests on.
    public var neighbours: Int
    /// How far those past trials are: their inverse-distance-weighted mean distance in standardized feature space, in
    /// units of the history's typical distance (the median over its own trials, each predicted from the other tasks'
    /// trials). 1 means as near as past tasks are to each other; nil when the history is too small to say
    /// (report.json `predicted.relative_distance`, an addition to FORMATS.md).
    public var relativeDistance: Double?
    /// The standard error this task's validation set would measure the gap with (what the recommender's confidence
    /// rests on): the neighbours' measured `difference_se`, each scaled by √(its task's train rows / this task's),
    /// their weighted geometric mean; nil when the past trials recorded none (report.json
    /// `predicted.difference_se`, an addition to FORMATS.md).
    public var differenceSE: Double?
    /// The share of its configured epochs (or boosting rounds) the candidate is predicted to train before early
    /// stopping ends its run: the neighbours' `epochs_run` over their configured epochs, weighted like the gap; nil
    /// when none recorded it (report.json `predicted.epochs_fraction`, an addition to FORMATS.md).
    public var epochsFraction: Double?

    /// A prediction.
    public init(
        gap: Double, gapSD: Double, latencyMsP50: Double?, neighbours: Int, relativeDistance: Double? = nil,
        differenceSE: Double? = nil, epochsFraction: Double? = nil
    ) {
        self.gap = gap
        self.gapSD = gapSD
        self.latencyMsP50 = latencyMsP50
        self.neighbours = neighbours
        self.relativeDistance = relativeDistance
        self.differenceSE = differenceSE
        self.epochsFraction = epochsFraction
    }

    enum CodingKeys: String, CodingKey {
        case gap, neighbours
        case gapSD = "gap_sd"
        case latencyMsP50 = "latency_ms_p50"
        case relativeDistance = "relative_distance"
        case differenceSE = "difference_se"
        case epochsFraction = "epochs_fraction"
    }
}

/// Live progress of a search, for a progress line.
public struct SearchProgress: Sendable {
    /// Current rung (0-based) and the number of rungs.
    public var rung: Int
    /// Number of rungs.
    public var rungs: Int
    /// Candidates still in the race.
    public var alive: Int
    /// Best validation primary metric so far (at any fidelity) and its candidate.
    public var best: (candidate: String, value: Double)?
    /// Seconds of budget left.
    public var secondsLeft: Double
    /// Training runs finished in this rung, of the rung's total.
    public var finishedInRung: Int
    /// Training runs in this rung.
    public var totalInRung: Int
}

/// Progress of a running search.
public enum SearchEvent: Sendable {
    /// A pipeline phase started.
    case phase(String)
    /// Training progress (after every finished training run).
    case progress(SearchProgress)
    /// A candidate finished (trained and evaluated, skipped, pruned or failed); `index` of `total`.
    case trial(TrialResult, index: Int, total: Int)
}

/// How the search spent its budget (report.json `search`).
public struct SearchSummary: Sendable, Codable, Equatable {
    /// Strategy name.
    public var strategy: String
    /// Epochs trained, summed over training runs.
    public var candidateEpochs: Double
    /// Wall seconds from start to recommendation.
    public var wallSeconds: Double
    /// Training runs started.
    public var trials: Int
    /// Why the search stopped.
    public var stoppedBecause: String
    /// Seconds spent computing pretrained-encoder vectors (encoder-head candidates), once for the whole search.
    public var encoderSeconds: Double?
    /// Learned strategy: tasks of this kind in the history it learned from.
    public var historyTasks: Int?
    /// Learned strategy: the most similar past tasks and what their searches found (evidence for the answer).
    public var similarTasks: [SimilarTask]?
    /// Learned strategy: whether it ran its own waves or fell back to halving, and why (`learned_mode`; additive).
    public var learnedMode: LearnedMode?
    /// How well history's predictions matched what training measured (`calibration`; additive): present when a
    /// trained candidate had a prediction.
    public var calibration: PredictionCalibration?
    /// Where the trials trained when not in this process (`--executor process|ray`), and where latency was measured.
    public var executor: ExecutorSummary?
    /// The wall-clock budget, seconds.
    public var budgetSeconds: Double?
    /// When the budget ran out: the longest training step (an epoch, or making a session) that was running then and
    /// ended after it. Training stops at the next epoch boundary, so this bounds how far training went past the budget.
    public var epochInFlightSeconds: Double?
    /// When the budget ran out: the longest validation evaluation of a training run it cut (it follows the epoch in
    /// flight: what that run reached is evaluated and reported).
    public var cutEvaluationSeconds: Double?
    /// When the budget ran out: wall seconds past it at the recommendation (the epoch in flight, then evaluation of
    /// what training reached, latency, frontier and test-set evaluation).
    public var overrunSeconds: Double?
    /// Wall seconds from the end of the last training run to the recommendation (latency of the last rung's complete
    /// candidates, frontier, test-set evaluation and cascades).
    public var afterTrainingSeconds: Double?

    enum CodingKeys: String, CodingKey {
        case strategy, trials, executor
        case budgetSeconds = "budget_seconds"
        case epochInFlightSeconds = "epoch_in_flight_seconds"
        case cutEvaluationSeconds = "cut_evaluation_seconds"
        case overrunSeconds = "overrun_seconds"
        case afterTrainingSeconds = "after_training_seconds"
        case encoderSeconds = "encoder_seconds"
        case historyTasks = "history_tasks"
        case similarTasks = "similar_tasks"
        case learnedMode = "learned_mode"
        case calibration
        case candidateEpochs = "candidate_epochs"
        case wallSeconds = "wall_seconds"
        case stoppedBecause = "stopped_because"
    }
}

/// Where a search's trials trained (report.json `search.executor`).
public struct ExecutorSummary: Sendable, Codable, Equatable {
    /// `process` or `ray`.
    public var kind: String
    /// The Ray cluster's address.
    public var address: String?
    /// Alive nodes when the search connected.
    public var nodes: Int?
    /// CPUs of those nodes.
    public var cpus: Int?
    /// Trials resubmitted after their worker or node was lost.
    public var retried: Int
    /// The host that measured latency (the driver: every candidate is timed on the same machine, after training).
    public var latencyHost: String

    /// A summary.
    public init(kind: String, address: String?, nodes: Int?, cpus: Int?, retried: Int, latencyHost: String) {
        self.kind = kind
        self.address = address
        self.nodes = nodes
        self.cpus = cpus
        self.retried = retried
        self.latencyHost = latencyHost
    }

    enum CodingKeys: String, CodingKey {
        case kind, address, nodes, cpus, retried
        case latencyHost = "latency_host"
    }
}

/// The result of a search: every trial, the frontier, the recommendation and the exported model.
public struct SearchOutcome: Sendable {
    /// Task name.
    public var taskName: String
    /// The public dataset the task was made from (task.json `dataset`), when it says.
    public var taskDataset: String? = nil
    /// Task kind.
    public var kind: TaskKind
    /// Labels.
    public var labels: [String]
    /// Primary metric name.
    public var primaryMetric: String
    /// The teacher.
    public var teacher: TeacherSummary
    /// Every candidate.
    public var trials: [TrialResult]
    /// Frontier ids, best quality first (the teacher is `"teacher"`).
    public var frontier: [String]
    /// The recommendation.
    public var recommendation: Recommendation
    /// Test metrics of the recommended student.
    public var recommendationTestMetrics: [String: MetricEstimate]?
    /// Test `student − teacher` on the primary metric for the recommendation.
    public var recommendationTestDifference: MetricEstimate?
    /// The recommended student, ready to export.
    public var recommendedBundle: ModelBundle?
    /// Constraints used.
    public var constraints: Constraints
    /// Budget use.
    public var summary: SearchSummary
    /// Seed.
    public var seed: UInt64
    /// Rows per split.
    public var splitSizes: [String: Int]
    /// Each frontier student's cascade curve (student on its sure inputs, teacher on the rest).
    public var cascades: [CascadeCurve] = []
    /// The selection adjustment behind the recommendation's confidence.
    public var selection: SelectionAdjustment?
    /// The break-even of the recommendation (or of the student the traffic turned down).
    public var economics: Economics?
    /// What the point estimates alone would have recommended, when it differs.
    public var pointEstimatePick: String?
    /// What the point estimates alone would have recommended among cascades, when it differs.
    public var pointEstimateCascade: CascadeChoice?
    /// How speed was compared: measured latency, its tolerance and the re-measured close calls.
    public var speed: SpeedComparison?
}

/// Errors of the search itself (as opposed to bad data).
public struct SearchError: Error, Sendable, CustomStringConvertible {
    /// What went wrong and what to do.
    public let message: String
    /// An error with `message`.
    public init(_ message: String) { self.message = message }
    /// The message.
    public var description: String { message }
}

/// A featurizer fitted on the train rows and the features of every split; for encoder-head keys, the encoder's
/// pooled vectors, with the validation and test vectors of each converted (fp16, int8) encoder beside them.
struct FeatureSet: Sendable {
    let featurizer: InputFeaturizer
    let train: FeatureMatrix
    let validation: FeatureMatrix
    let test: FeatureMatrix
    /// encoder-head: per precision, the converted encoder and the validation and test vectors it gives.
    var converted: [Precision: (featurizer: InputFeaturizer, validation: FeatureMatrix, test: FeatureMatrix)] = [:]
    /// encoder-head: the encoder's FLOPs per example at the train split's mean token count.
    var extraFlops = 0
    /// encoder-head: the kept encoder's parameters (position table cut to the max length).
    var extraParams = 0
    /// Why these features cannot be made (an encoder folder that is missing or unreadable).
    var unavailable: String?
    /// Seconds spent making these features (encoder passes; counted once, shared by every candidate on them).
    var seconds = 0.0

    init(task: TaskData, key: FeatureKey) {
        let basic: Featurizer =
            task.kind == .text
            ? .text(
                HashedTextFeaturizer(
                    bucketsLog2: key.bucketsLog2 ?? 16, minCharNgram: key.charNgrams ? 3 : 0,
                    normalization: key.meanNormalized ? .mean : .l2))
            : .numeric(NumericStandardizer(fitting: task.train.inputs))
        featurizer = .basic(basic)
        train = basic.features(for: task.train.inputs)
        validation = basic.features(for: task.validation.inputs)
        test = basic.features(for: task.test.inputs)
    }

    init(featurizer: InputFeaturizer, train: FeatureMatrix, validation: FeatureMatrix, test: FeatureMatrix) {
        self.featurizer = featurizer
        self.train = train
        self.validation = validation
        self.test = test
    }

    /// The featurizer a `precision` member ships with.
    func featurizer(at precision: Precision) -> InputFeaturizer { converted[precision]?.featurizer ?? featurizer }
    /// Validation features as a `precision` member sees them.
    func validation(at precision: Precision) -> FeatureMatrix { converted[precision]?.validation ?? validation }
    /// Test features as a `precision` member sees them.
    func test(at precision: Precision) -> FeatureMatrix { converted[precision]?.test ?? test }
    /// Bytes of featurizer state (encoder files) a `precision` member ships with.
    func stateBytes(at precision: Precision) -> Int { featurizer(at: precision).stateBytes }

    /// Feature sets for encoder-head keys: one encoder load and one pass per (folder, max length, precision) gives
    /// every depth's vectors (train, validation and test at fp32; validation and test at each other precision in
    /// `precisions`). With `plan`, nothing is embedded: sizes and FLOPs only (`retort candidates`).
    /// `folders` maps an encoder path as the candidates name it to where this process finds it (a Ray worker's copy).
    static func encoderSets(
        task: TaskData, keys: [FeatureKey], precisions: [FeatureKey: Set<Precision>], plan: Bool,
        folders: [String: String] = [:]
    ) -> [FeatureKey: FeatureSet] {
        var result: [FeatureKey: FeatureSet] = [:]
        let byFolder = Dictionary(grouping: keys.filter { $0.encoder != nil }) {
            "\($0.encoder?.path ?? "")#\($0.encoder?.maxLength ?? 0)"
        }
        for (_, group) in byFolder.sorted(by: { $0.key < $1.key }) {
            guard let choice = group.first?.encoder else { continue }
            let started = DispatchTime.now().uptimeNanoseconds
            let folder = URL(fileURLWithPath: folders[choice.path] ?? choice.path)
            let base: BertEncoder
            let tokenizer: WordPieceTokenizer
            do {
                base = try BertEncoder(folder: folder)
                tokenizer = try WordPieceTokenizer(folder: folder)
            } catch {
                let hint =
                    choice.path == CandidateCatalog.defaultEncoderPath ? " (run `make models` to fetch it)" : ""
                for key in group {
                    var set = FeatureSet(
                        featurizer: .basic(.numeric(NumericStandardizer(mean: [], standardDeviation: []))),
                        train: .dense(Matrix(rows: 0, columns: 0)), validation: .dense(Matrix(rows: 0, columns: 0)),
                        test: .dense(Matrix(rows: 0, columns: 0)))
                    set.unavailable = "encoder \(choice.path) unavailable: \(error)\(hint)"
                    result[key] = set
                }
                continue
            }
            let depths = Set(group.compactMap { $0.encoder?.layers }).map { min($0, base.layers.count) }
            let deepest = base.truncated(toLayers: depths.max() ?? 1)
            let front = TextEncoder(encoder: deepest, tokenizer: tokenizer, maxLength: choice.maxLength)
            let (trainIds, validationIds, testIds) = (
                front.sequences(for: task.train.inputs), front.sequences(for: task.validation.inputs),
                front.sequences(for: task.test.inputs)
            )
            let meanTokens = Int(
                (Double(trainIds.reduce(0) { $0 + $1.count }) / Double(max(trainIds.count, 1))).rounded())
            let empty = Matrix(rows: 0, columns: base.config.hiddenSize)
            func embed(_ encoder: BertEncoder, _ ids: [[Int32]]) -> [Int: Matrix] {
                if plan { return Dictionary(uniqueKeysWithValues: depths.map { ($0, empty) }) }
                return (try? encoder.embed(ids, depths: depths)) ?? [:]
            }
            let (train, validation, test) = (
                embed(deepest, trainIds), embed(deepest, validationIds), embed(deepest, testIds)
            )
            var convertedVectors: [Precision: (BertEncoder, [Int: Matrix], [Int: Matrix])] = [:]
            for precision in Set(group.flatMap { precisions[$0] ?? [] }) where precision != .fp32 {
                let encoder = deepest.converted(to: precision)
                convertedVectors[precision] = (encoder, embed(encoder, validationIds), embed(encoder, testIds))
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
            for key in group {
                guard let layers = key.encoder?.layers else { continue }
                let depth = min(layers, base.layers.count)
                func front(_ encoder: BertEncoder) -> InputFeaturizer {
                    .encoder(
                        TextEncoder(
                            encoder: encoder.truncated(toLayers: depth), tokenizer: tokenizer,
                            maxLength: choice.maxLength))
                }
                var set = FeatureSet(
                    featurizer: front(deepest), train: .dense(train[depth] ?? empty),
                    validation: .dense(validation[depth] ?? empty), test: .dense(test[depth] ?? empty))
                for (precision, (encoder, validation, test)) in convertedVectors {
                    set.converted[precision] = (
                        front(encoder), .dense(validation[depth] ?? empty), .dense(test[depth] ?? empty)
                    )
                }
                let kept = deepest.truncated(toLayers: depth)
                set.extraFlops = kept.flops(tokens: meanTokens)
                set.extraParams =
                    kept.parameterCount
                    - max(0, kept.positionEmbeddings.rows - choice.maxLength) * kept.config.hiddenSize
                set.seconds = seconds
                if !plan && train[depth] == nil {
                    set.unavailable = "encoder \(choice.path) failed to embed the rows"
                }
                result[key] = set
            }
        }
        return result
    }

    /// Train and validation splits for training: these features, the teacher's distributions and answers.
    func trainingSplits(of task: TaskData) -> (train: TrainingSplit, validation: TrainingSplit) {
        (
            TrainingSplit(
                features: train, teacherProbabilities: task.train.teacherProbabilities,
                hardLabels: task.train.teacherLabels),
            TrainingSplit(
                features: validation, teacherProbabilities: task.validation.teacherProbabilities,
                hardLabels: task.validation.teacherLabels)
        )
    }
}

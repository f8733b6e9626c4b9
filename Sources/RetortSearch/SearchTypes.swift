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
    /// Halving's reduction factor η: each rung keeps 1/η of the candidates and trains them η times longer.
    public var eta: Int
    /// Trials trained at once.
    public var workers: Int
    /// Most rungs halving uses; the first rung's fidelity is η^(1 − rungs).
    public var maxRungs: Int

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

/// How a search schedules training.
public enum SearchStrategy: String, Sendable, CaseIterable, Codable {
    /// Every feasible candidate at full fidelity (the reference).
    case exhaustive
    /// Pareto-aware successive halving (Jamieson & Talwalkar 2016): rungs at fidelities η^(r−R); after each rung the
    /// best 1/η by non-dominated rank, then crowding distance, continue from their state.
    case halving
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

    enum CodingKeys: String, CodingKey {
        case strategy, trials
        case candidateEpochs = "candidate_epochs"
        case wallSeconds = "wall_seconds"
        case stoppedBecause = "stopped_because"
    }
}

/// The result of a search: every trial, the frontier, the recommendation and the exported model.
public struct SearchOutcome: Sendable {
    /// Task name.
    public var taskName: String
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

/// A featurizer fitted on the train rows and the features of every split.
struct FeatureSet: Sendable {
    let featurizer: Featurizer
    let train: FeatureMatrix
    let validation: FeatureMatrix
    let test: FeatureMatrix

    init(task: TaskData, key: FeatureKey) {
        featurizer =
            task.kind == .text
            ? .text(HashedTextFeaturizer(bucketsLog2: key.bucketsLog2 ?? 16, minCharNgram: key.charNgrams ? 3 : 0))
            : .numeric(NumericStandardizer(fitting: task.train.inputs))
        train = featurizer.features(for: task.train.inputs)
        validation = featurizer.features(for: task.validation.inputs)
        test = featurizer.features(for: task.test.inputs)
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

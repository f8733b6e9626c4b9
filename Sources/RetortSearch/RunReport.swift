import Foundation
import RetortData
import RetortEvals

/// report.json (FORMATS.md §4): the whole run in one document.
public struct RunReport: Codable, Sendable {
    /// Job name.
    public var job: String
    /// Task name.
    public var task: String
    /// `structured` for a structured task (FORMATS.md §9); absent for label tasks.
    public var taskKind: String?
    /// The public dataset the task was made from (task.json `dataset`); absent when task.json does not say.
    public var taskDataset: String?
    /// Run id (the folder name).
    public var runId: String
    /// ISO-8601 UTC creation time.
    public var createdAt: String
    /// Seed.
    public var seed: UInt64
    /// Primary metric.
    public var primaryMetric: String
    /// Constraints and quality bar.
    public var constraints: Constraints
    /// Rows per split.
    public var splits: [String: Int]
    /// The teacher.
    public var teacher: TeacherSummary
    /// Every candidate.
    public var candidates: [TrialResult]
    /// Frontier candidate ids, best first (the teacher's membership is `teacher.on_frontier`).
    public var frontier: [String]
    /// The recommendation.
    public var recommendation: RecommendationRecord
    /// Budget use.
    public var search: SearchSummary
    /// Each frontier student's cascade curve (validation thresholds, also applied to test); absent in older reports.
    public var cascades: [CascadeCurve]?
    /// The selection adjustment behind the recommendation's confidence; absent in older reports.
    public var selection: SelectionAdjustment?
    /// The recommendation's break-even (one-off cost, saving per request and per month, payback); absent when the
    /// teacher is kept for quality or no cost is known.
    public var economics: Economics?
    /// How speed was compared (measured latency within a tolerance, close calls measured twice); absent in older
    /// reports, whose recommendations compared FLOPs.
    public var speed: SpeedComparison?

    /// report.json `recommendation`.
    public struct RecommendationRecord: Codable, Sendable {
        /// `student` or `no-distillation`.
        public var kind: String
        /// Candidate id, or nil.
        public var candidate: String?
        /// The reason in words.
        public var reason: String
        /// Test metrics of the recommended student.
        public var testMetrics: [String: MetricEstimate]?
        /// Test `student − teacher` on the primary metric, paired bootstrap.
        public var testDifferenceToTeacher: MetricEstimate?
        /// A cascade: the student answers when its top probability is at least this.
        public var threshold: Double?
        /// A cascade: share of validation inputs the student answers.
        public var coverage: Double?
        /// A cascade: the student's validation agreement with the teacher on the inputs it answers.
        public var agreement: MetricEstimate?
        /// A cascade: cost per 1M inputs, student on every input plus the teacher on the rest.
        public var blendedCostPer1MUSD: Double?
        /// A cascade: median latency over inputs.
        public var blendedLatencyMsP50: Double?
        /// What the validation point estimates alone would have recommended, when the confidence rule chose otherwise.
        public var pointEstimatePick: String?
        /// What the point estimates alone would have recommended among cascades, when it differs.
        public var pointEstimateCascade: CascadeChoice?

        enum CodingKeys: String, CodingKey {
            case kind, candidate, reason, threshold, coverage, agreement
            case testMetrics = "test_metrics"
            case testDifferenceToTeacher = "test_difference_to_teacher"
            case blendedCostPer1MUSD = "blended_cost_per_1m_usd"
            case blendedLatencyMsP50 = "blended_latency_ms_p50"
            case pointEstimatePick = "point_estimate_pick"
            case pointEstimateCascade = "point_estimate_cascade"
        }

        /// Encodes `candidate` as null when absent (FORMATS.md shows the key always present).
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(kind, forKey: .kind)
            try container.encode(candidate, forKey: .candidate)
            try container.encode(reason, forKey: .reason)
            try container.encodeIfPresent(testMetrics, forKey: .testMetrics)
            try container.encodeIfPresent(testDifferenceToTeacher, forKey: .testDifferenceToTeacher)
            try container.encodeIfPresent(threshold, forKey: .threshold)
            try container.encodeIfPresent(coverage, forKey: .coverage)
            try container.encodeIfPresent(agreement, forKey: .agreement)
            try container.encodeIfPresent(blendedCostPer1MUSD, forKey: .blendedCostPer1MUSD)
            try container.encodeIfPresent(blendedLatencyMsP50, forKey: .blendedLatencyMsP50)
            try container.encodeIfPresent(pointEstimatePick, forKey: .pointEstimatePick)
            try container.encodeIfPresent(pointEstimateCascade, forKey: .pointEstimateCascade)
        }
    }

    enum CodingKeys: String, CodingKey {
        case job, task, seed, constraints, splits, teacher, candidates, frontier, recommendation, search, cascades
        case selection, economics, speed
        case runId = "run_id"
        case createdAt = "created_at"
        case primaryMetric = "primary_metric"
        case taskKind = "task_kind"
        case taskDataset = "task_dataset"
    }

    /// The report of `outcome` for job `job` in run `runId`.
    public init(job: String, runId: String, createdAt: Date, outcome: SearchOutcome) {
        self.job = job
        self.task = outcome.taskName
        self.taskKind = outcome.kind == .structured ? TaskKind.structured.rawValue : nil
        self.taskDataset = outcome.taskDataset
        self.runId = runId
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        self.createdAt = formatter.string(from: createdAt)
        self.seed = outcome.seed
        self.primaryMetric = outcome.primaryMetric
        self.constraints = outcome.constraints
        self.splits = outcome.splitSizes
        self.teacher = outcome.teacher
        self.candidates = outcome.trials
        self.frontier = outcome.frontier.filter { $0 != "teacher" }
        self.recommendation = RecommendationRecord(
            kind: outcome.recommendation.kind, candidate: outcome.recommendation.candidate,
            reason: outcome.recommendation.reason, testMetrics: outcome.recommendationTestMetrics,
            testDifferenceToTeacher: outcome.recommendationTestDifference)
        if let point = outcome.recommendation.cascadePoint {
            recommendation.threshold = point.threshold
            recommendation.coverage = point.coverage
            recommendation.agreement = point.agreement
            recommendation.blendedCostPer1MUSD = point.blendedCostPer1MUSD
            recommendation.blendedLatencyMsP50 = point.blendedLatencyMsP50
        }
        self.search = outcome.summary
        if search.calibration == nil { search.calibration = PredictionCalibration(trials: outcome.trials) }
        self.cascades = outcome.cascades.isEmpty ? nil : outcome.cascades
        self.selection = outcome.selection
        self.economics = outcome.economics
        self.speed = outcome.speed
        recommendation.pointEstimatePick = outcome.pointEstimatePick
        recommendation.pointEstimateCascade = outcome.pointEstimateCascade
    }

    /// What a cascade's threshold applies to: a label student's top probability, a structured student's confidence.
    public var confidenceName: String { taskKind == TaskKind.structured.rawValue ? "confidence" : "top probability" }

    /// Loads report.json from a run folder.
    public static func load(runDirectory: URL) throws -> RunReport {
        let url = runDirectory.appendingPathComponent("report.json")
        return try JSONDecoder().decode(RunReport.self, from: Data(contentsOf: url))
    }

    /// Pretty, key-sorted JSON.
    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try encoder.encode(self)
    }
}

import RetortData
import RetortEvals
import RetortStudents

/// What a candidate became in the search.
public enum TrialStatus: String, Sendable, Codable {
    /// Trained to full fidelity and evaluated.
    case complete
    /// Stopped before full fidelity (by the budget).
    case pruned
    /// Training or evaluation failed.
    case failed
    /// Never trained: breaks a hard constraint known before training (size).
    case skipped
}

/// One candidate's record: cost, measured latency, validation metrics, status (report.json `candidates[]`).
public struct TrialResult: Sendable, Codable, Equatable {
    /// Candidate id.
    public var id: String
    /// Family.
    public var family: Family
    /// Configuration (hidden, buckets, training options).
    public var config: [String: ReportValue]
    /// Stored precision.
    public var precision: Precision
    /// Parameter count.
    public var params: Int
    /// Serialized weights at this precision plus featurizer state.
    public var sizeBytes: Int
    /// Analytic multiply-add FLOPs per example.
    public var flopsPerExample: Int
    /// Measured single-input end-to-end latency, median, ms.
    public var latencyMsP50: Double?
    /// Measured latency, 95th percentile, ms.
    public var latencyMsP95: Double?
    /// Estimated p50 on the run's device (measured p50 × the constraints' latency scale), when a device is set.
    public var deviceLatencyMsP50: Double?
    /// Measured batch throughput, examples per second.
    public var throughputPerSecond: Double?
    /// Serving cost of a million single calls at the job's vCPU price.
    public var costPer1MUSD: Double?
    /// Validation metrics.
    public var metrics: [String: MetricEstimate]
    /// Validation `student − teacher` on the primary metric, paired on the same resamples.
    public var differenceToTeacher: MetricEstimate?
    /// The bootstrap standard error of ``differenceToTeacher`` (its paired replicates' spread).
    public var differenceSE: Double?
    /// The probability, adjusted for picking among many (``SelectionAdjustment``), that the true drop against the
    /// teacher is within the run's `max_drop`.
    public var pWithinMaxDrop: Double?
    /// Share of the full epoch budget trained.
    public var fidelity: Double
    /// Outcome.
    public var status: TrialStatus
    /// Whether it is on the Pareto frontier.
    public var onFrontier: Bool
    /// Test metrics (frontier members and the recommendation).
    public var testMetrics: [String: MetricEstimate]?
    /// Epochs trained.
    public var epochsRun: Int?
    /// Epoch whose weights were kept (early stopping).
    public var bestEpoch: Int?
    /// Wall seconds of training (shared by the precisions of one training run).
    public var trainSeconds: Double?
    /// Why it was skipped, pruned or failed.
    public var reason: String?
    /// What history predicted before training (learned strategy): labelled as a prediction, never as measured.
    public var predicted: CandidatePrediction?
    /// True when the learned strategy made this candidate up beyond the catalog.
    public var invented: Bool?

    /// A record; optional measurements default to absent.
    public init(
        id: String, family: Family, config: [String: ReportValue], precision: Precision, params: Int, sizeBytes: Int,
        flopsPerExample: Int, latencyMsP50: Double? = nil, latencyMsP95: Double? = nil,
        throughputPerSecond: Double? = nil, costPer1MUSD: Double? = nil, metrics: [String: MetricEstimate],
        differenceToTeacher: MetricEstimate? = nil, fidelity: Double, status: TrialStatus, onFrontier: Bool,
        testMetrics: [String: MetricEstimate]? = nil, epochsRun: Int? = nil, bestEpoch: Int? = nil,
        trainSeconds: Double? = nil, reason: String? = nil
    ) {
        self.id = id
        self.family = family
        self.config = config
        self.precision = precision
        self.params = params
        self.sizeBytes = sizeBytes
        self.flopsPerExample = flopsPerExample
        self.latencyMsP50 = latencyMsP50
        self.latencyMsP95 = latencyMsP95
        self.throughputPerSecond = throughputPerSecond
        self.costPer1MUSD = costPer1MUSD
        self.metrics = metrics
        self.differenceToTeacher = differenceToTeacher
        self.fidelity = fidelity
        self.status = status
        self.onFrontier = onFrontier
        self.testMetrics = testMetrics
        self.epochsRun = epochsRun
        self.bestEpoch = bestEpoch
        self.trainSeconds = trainSeconds
        self.reason = reason
    }

    enum CodingKeys: String, CodingKey {
        case id, family, config, precision, params, metrics, fidelity, status, reason
        case sizeBytes = "size_bytes"
        case flopsPerExample = "flops_per_example"
        case latencyMsP50 = "latency_ms_p50"
        case latencyMsP95 = "latency_ms_p95"
        case deviceLatencyMsP50 = "device_latency_ms_p50_estimate"
        case throughputPerSecond = "throughput_per_s"
        case costPer1MUSD = "cost_per_1m_usd"
        case differenceToTeacher = "difference_to_teacher"
        case differenceSE = "difference_se"
        case pWithinMaxDrop = "p_within_max_drop"
        case onFrontier = "on_frontier"
        case testMetrics = "test_metrics"
        case epochsRun = "epochs_run"
        case bestEpoch = "best_epoch"
        case trainSeconds = "train_seconds"
        case predicted, invented
    }
}

/// The teacher as a point of comparison: test metrics, validation metrics, cost and latency.
public struct TeacherSummary: Sendable, Codable, Equatable {
    /// Name.
    public var name: String
    /// Test-set metrics of its recorded answers.
    public var metrics: [String: MetricEstimate]
    /// Validation metrics (what the search compared against).
    public var validationMetrics: [String: MetricEstimate]
    /// Median latency of one call, ms (task.json, the job, or the rows' `latency_ms`).
    public var latencyMsP50: Double?
    /// Cost of a million calls in USD.
    public var costPer1MUSD: Double?
    /// Parameter count, when known.
    public var params: Int?
    /// Whether it is on the frontier.
    public var onFrontier: Bool
    /// Rows per answering model, when the rows record `teacher.model` (more than one: the figures mix teachers).
    public var models: [String: Int]?
    /// Structured tasks: rows whose teacher answer is not a valid JSON object, over every split (FORMATS.md §9
    /// `teacher.invalid_rows`).
    public var invalidRows: Int?
    /// Structured tasks: the invalid teacher answers per split.
    public var invalidRowsBySplit: [String: Int]?

    enum CodingKeys: String, CodingKey {
        case name, metrics, params, models
        case invalidRows = "invalid_rows"
        case invalidRowsBySplit = "invalid_rows_by_split"
        case validationMetrics = "validation_metrics"
        case latencyMsP50 = "latency_ms_p50"
        case costPer1MUSD = "cost_per_1m_usd"
        case onFrontier = "on_frontier"
    }
}

/// What Retort recommends.
public enum Recommendation: Sendable, Equatable {
    /// Distill into this candidate.
    case distill(candidate: String, reason: String)
    /// Distill into this candidate, which answers when its top probability is at least `point.threshold` and hands
    /// the rest to the teacher.
    case cascade(candidate: String, point: CascadePoint, reason: String)
    /// Keep the teacher.
    case noDistillation(reason: String)

    /// The recommended candidate id, if any (a cascade's student too).
    public var candidate: String? {
        switch self {
        case .distill(let candidate, _), .cascade(let candidate, _, _): candidate
        case .noDistillation: nil
        }
    }

    /// The reason in words.
    public var reason: String {
        switch self {
        case .distill(_, let reason), .cascade(_, _, let reason), .noDistillation(let reason): reason
        }
    }

    /// The cascade's operating point on validation, for a cascade.
    public var cascadePoint: CascadePoint? {
        if case .cascade(_, let point, _) = self { return point }
        return nil
    }

    /// The decision in a few words, from report.json's `kind` and `candidate`: "distill into `X`", "cascade: `X`
    /// answers, the teacher the rest" or "no distillation" (so a cascade is never printed as a plain student).
    public static func headline(kind: String, candidate: String?) -> String {
        switch (kind, candidate) {
        case ("cascade", let candidate?): "cascade: `\(candidate)` answers, the teacher the rest"
        case (_, let candidate?): "distill into `\(candidate)`"
        default: "no distillation"
        }
    }

    /// `student`, `cascade` or `no-distillation` (report.json `recommendation.kind`).
    public var kind: String {
        switch self {
        case .distill: "student"
        case .cascade: "cascade"
        case .noDistillation: "no-distillation"
        }
    }
}

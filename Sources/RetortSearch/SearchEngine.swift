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

    /// Settings with the given values.
    public init(
        catalog: CandidateCatalog, suite: EvalSuite = .standard, metric: String? = nil,
        constraints: Constraints = Constraints(), budgetSeconds: Double = 600, seed: UInt64 = 7,
        usdPerVCPUHour: Double = 0.05
    ) {
        self.catalog = catalog
        self.suite = suite
        self.metric = metric
        self.constraints = constraints
        self.budgetSeconds = budgetSeconds
        self.seed = seed
        self.usdPerVCPUHour = usdPerVCPUHour
    }
}

/// Progress of a running search.
public enum SearchEvent: Sendable {
    /// A pipeline phase started.
    case phase(String)
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
struct FeatureSet {
    let featurizer: Featurizer
    let train: FeatureMatrix
    let validation: FeatureMatrix
    let test: FeatureMatrix

    init(task: TaskData, bucketsLog2: Int?) {
        featurizer =
            task.kind == .text
            ? .text(HashedTextFeaturizer(bucketsLog2: bucketsLog2 ?? 16))
            : .numeric(NumericStandardizer(fitting: task.train.inputs))
        train = featurizer.features(for: task.train.inputs)
        validation = featurizer.features(for: task.validation.inputs)
        test = featurizer.features(for: task.test.inputs)
    }
}

/// The exhaustive search (v0): every feasible candidate at full fidelity, smallest first, within the budget.
public enum SearchEngine {
    /// Runs the search on `task`, journaling each finished trial, reporting progress through `events`.
    public static func run(
        task: TaskData, settings: SearchSettings, journal: Journal?, events: (SearchEvent) -> Void = { _ in }
    ) throws -> SearchOutcome {
        let start = DispatchTime.now().uptimeNanoseconds
        func elapsed() -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
        let classes = task.vocabulary.count
        let metric = try primaryMetric(task: task, settings: settings)

        events(.phase("evaluate the teacher"))
        let validationEvaluator = Evaluator(
            split: task.validation, classes: classes, resamples: settings.suite.resamples,
            seed: settings.seed &+ 1)
        let testEvaluator = Evaluator(
            split: task.test, classes: classes, resamples: settings.suite.resamples, seed: settings.seed &+ 2)
        let teacherValidation = try validationEvaluator.evaluate(task.validation.teacherLabels)
        let teacherTest = try testEvaluator.evaluate(task.test.teacherLabels)
        guard let teacherValue = teacherValidation.estimates[metric]?.value else {
            throw SearchError("the teacher has no \(metric.rawValue) on validation")
        }

        let candidates = settings.catalog.candidates(for: task.kind)
        guard !candidates.isEmpty else {
            throw SearchError(
                "the candidate catalog lists no \(task.kind.rawValue) candidates; add a \"\(task.kind.rawValue):\" section"
            )
        }
        events(.phase("featurize \(task.train.count)/\(task.validation.count)/\(task.test.count) rows"))
        var featureSets: [Int?: FeatureSet] = [:]
        for buckets in Set(candidates.map(\.bucketsLog2)) {
            featureSets[buckets] = FeatureSet(task: task, bucketsLog2: buckets)
        }
        func featureSet(for buckets: Int?) -> FeatureSet {
            if let cached = featureSets[buckets] { return cached }
            let computed = FeatureSet(task: task, bucketsLog2: buckets)
            featureSets[buckets] = computed
            return computed
        }

        var trials: [TrialResult] = []
        var bundles: [String: ModelBundle] = [:]
        var order: [(key: String, members: [Candidate], size: Int)] = []
        for candidate in candidates {
            let architecture = candidate.architecture(
                kind: task.kind, inputDimension: task.inputDimension, classes: classes)
            let size =
                architecture.weightBytes(at: candidate.precision)
                + featureSet(for: candidate.bucketsLog2).featurizer.stateBytes
            if let index = order.firstIndex(where: { $0.key == candidate.trainingKey }) {
                order[index].members.append(candidate)
                order[index].size = min(order[index].size, size)
            } else {
                order.append((candidate.trainingKey, [candidate], size))
            }
        }
        order.sort { $0.size < $1.size || ($0.size == $1.size && $0.key < $1.key) }
        let total = candidates.count
        var candidateEpochs = 0.0
        var trainingRuns = 0
        var budgetHit = false
        events(
            .phase("train \(total) candidates (\(order.count) training runs), budget \(Int(settings.budgetSeconds)) s"))
        for (groupIndex, group) in order.enumerated() {
            let first = group.members[0]
            let features = featureSet(for: first.bucketsLog2)
            let featurizer = features.featurizer
            let architecture = first.architecture(
                kind: task.kind, inputDimension: task.inputDimension, classes: classes)
            let flops = architecture.flopsPerExample(meanNonzeros: features.train.meanNonzerosPerRow)
            func record(_ candidate: Candidate, status: TrialStatus, fidelity: Double, reason: String?) -> TrialResult {
                TrialResult(
                    id: candidate.id, family: candidate.family, config: candidate.config,
                    precision: candidate.precision,
                    params: architecture.parameterCount,
                    sizeBytes: architecture.weightBytes(at: candidate.precision) + featurizer.stateBytes,
                    flopsPerExample: flops, metrics: [:], fidelity: fidelity, status: status, onFrontier: false,
                    reason: reason)
            }
            var pending: [Candidate] = []
            for candidate in group.members {
                let size = architecture.weightBytes(at: candidate.precision) + featurizer.stateBytes
                if let limit = settings.constraints.maxModelBytes, size > limit {
                    let trial = record(
                        candidate, status: .skipped, fidelity: 0,
                        reason: "size \(ByteSize.format(size)) > limit \(ByteSize.format(limit)); not trained")
                    trials.append(trial)
                    try journal?.append(trial)
                    events(.trial(trial, index: trials.count, total: total))
                } else {
                    pending.append(candidate)
                }
            }
            guard !pending.isEmpty else { continue }
            // Training holds the weights four times (weights, Adam's two moments, the best copy); refuse what cannot
            // fit in half the machine's memory instead of letting the allocation kill the process.
            let trainingBytes = Double(architecture.parameterCount) * 4 * 4
            let memoryBytes = Double(ProcessInfo.processInfo.physicalMemory)
            if trainingBytes > memoryBytes / 2 {
                for candidate in pending {
                    let trial = record(
                        candidate, status: .failed, fidelity: 0,
                        reason: String(
                            format:
                                "needs about %.1f GB to train; this machine has %.1f GB: use fewer buckets or narrower layers",
                            trainingBytes / 1e9, memoryBytes / 1e9))
                    trials.append(trial)
                    try journal?.append(trial)
                    events(.trial(trial, index: trials.count, total: total))
                }
                continue
            }
            if budgetHit || elapsed() >= settings.budgetSeconds {
                budgetHit = true
                for candidate in pending {
                    let trial = record(
                        candidate, status: .pruned, fidelity: 0,
                        reason: String(format: "budget of %.0f s used before it started", settings.budgetSeconds))
                    trials.append(trial)
                    try journal?.append(trial)
                    events(.trial(trial, index: trials.count, total: total))
                }
                continue
            }
            let trainSplit = TrainingSplit(
                features: features.train, teacherProbabilities: task.train.teacherProbabilities,
                hardLabels: task.train.teacherLabels)
            let validationSplit = TrainingSplit(
                features: features.validation, teacherProbabilities: task.validation.teacherProbabilities,
                hardLabels: task.validation.teacherLabels)
            let trainStart = elapsed()
            trainingRuns += 1
            var session = TrainingSession(
                architecture: architecture, train: trainSplit, options: first.training,
                seed: settings.seed &+ UInt64(groupIndex) &* 7919)
            do {
                while !session.isFinished && elapsed() < settings.budgetSeconds {
                    try session.runEpochs(1, train: trainSplit, validation: validationSplit)
                }
            } catch {
                for candidate in pending {
                    let trial = record(candidate, status: .failed, fidelity: 0, reason: "training failed: \(error)")
                    trials.append(trial)
                    try journal?.append(trial)
                    events(.trial(trial, index: trials.count, total: total))
                }
                continue
            }
            candidateEpochs += Double(session.epochsRun)
            let trainSeconds = elapsed() - trainStart
            let finished = session.isFinished
            if !finished { budgetHit = true }
            for candidate in pending {
                let network = session.best.quantized(to: candidate.precision)
                let bundle = ModelBundle(
                    candidate: candidate.id, network: network, featurizer: featurizer, labels: task.vocabulary.labels)
                var trial = record(
                    candidate, status: finished ? .complete : .pruned,
                    fidelity: finished ? 1 : Double(session.epochsRun) / Double(first.training.epochs),
                    reason: finished
                        ? nil
                        : String(
                            format: "budget of %.0f s reached after %d of %d epochs", settings.budgetSeconds,
                            session.epochsRun, first.training.epochs))
                trial.epochsRun = session.epochsRun
                trial.bestEpoch = session.bestEpoch
                trial.trainSeconds = trainSeconds
                precondition(bundle.sizeBytes == trial.sizeBytes, "size_bytes must equal the exported tensor bytes")
                let predictions = try network.probabilities(features.validation).argmaxPerRow()
                let evaluation = try validationEvaluator.evaluate(predictions)
                trial.metrics = Dictionary(
                    uniqueKeysWithValues: evaluation.estimates.filter {
                        settings.suite.metrics.contains($0.key) || $0.key == metric
                    }
                    .map { ($0.key.rawValue, $0.value) })
                trial.differenceToTeacher = evaluation.difference(
                    to: teacherValidation, on: metric, resampler: validationEvaluator.resampler)
                let profile = try LatencyProfiler.profile(bundle, inputs: Array(task.validation.inputs.prefix(512)))
                trial.latencyMsP50 = profile.p50
                trial.latencyMsP95 = profile.p95
                trial.throughputPerSecond = profile.throughput
                trial.costPer1MUSD = profile.p50 / 1000 * 1e6 * settings.usdPerVCPUHour / 3600
                if finished { bundles[candidate.id] = bundle }
                trials.append(trial)
                try journal?.append(trial)
                events(.trial(trial, index: trials.count, total: total))
            }
        }

        events(.phase("frontier and recommendation"))
        let teacherLatency = teacherLatencyMs(task)
        let complete = trials.filter { $0.status == .complete }
        var latencies = complete.map { $0.latencyMsP50 ?? .infinity }
        if let teacherLatency { latencies.append(teacherLatency) }
        let tierList = LatencyTiers.assign(latencies)
        var tiers: [String: Int] = [:]
        for (index, trial) in complete.enumerated() { tiers[trial.id] = tierList[index] }
        let teacherTier = teacherLatency == nil ? Int.max : tierList[tierList.count - 1]
        var points = complete.map { trial in
            FrontierPoint(
                id: trial.id, quality: trial.metrics[metric.rawValue]?.value ?? -.infinity,
                latencyTier: tiers[trial.id] ?? Int.max,
                flops: Double(trial.flopsPerExample), size: Double(trial.sizeBytes))
        }
        points.append(
            FrontierPoint(
                id: "teacher", quality: teacherValue, latencyTier: teacherTier, flops: .infinity, size: .infinity))
        let frontierPoints = paretoFrontier(of: points).sorted {
            $0.quality > $1.quality || ($0.quality == $1.quality && $0.id < $1.id)
        }
        let frontier = frontierPoints.map(\.id)
        let recommendation = Recommender.recommend(
            trials: trials, metric: metric.rawValue, teacherValue: teacherValue, constraints: settings.constraints)

        events(.phase("test-set evaluation of the frontier"))
        var recommendationTest: [String: MetricEstimate]?
        var recommendationDifference: MetricEstimate?
        for index in trials.indices {
            let id = trials[index].id
            trials[index].onFrontier = frontier.contains(id)
            guard trials[index].onFrontier || id == recommendation.candidate, let bundle = bundles[id] else { continue }
            let predictions = try bundle.probabilities(for: task.test.inputs).argmaxPerRow()
            let evaluation = try testEvaluator.evaluate(predictions)
            let metrics = Dictionary(uniqueKeysWithValues: evaluation.estimates.map { ($0.key.rawValue, $0.value) })
            trials[index].testMetrics = metrics
            if id == recommendation.candidate {
                recommendationTest = metrics
                recommendationDifference = evaluation.difference(
                    to: teacherTest, on: metric, resampler: testEvaluator.resampler)
            }
        }
        let teacher = TeacherSummary(
            name: task.teacher.name,
            metrics: Dictionary(uniqueKeysWithValues: teacherTest.estimates.map { ($0.key.rawValue, $0.value) }),
            validationMetrics: Dictionary(
                uniqueKeysWithValues: teacherValidation.estimates.map { ($0.key.rawValue, $0.value) }),
            latencyMsP50: teacherLatency, costPer1MUSD: teacherCostPer1M(task), params: task.teacher.params,
            onFrontier: frontier.contains("teacher"))
        let skippedAll = trials.allSatisfy { $0.status == .skipped }
        let summary = SearchSummary(
            strategy: "exhaustive", candidateEpochs: candidateEpochs, wallSeconds: elapsed(), trials: trainingRuns,
            stoppedBecause: budgetHit
                ? String(format: "the budget of %.0f s ran out", settings.budgetSeconds)
                : skippedAll ? "every candidate breaks the size limit" : "every feasible candidate was trained")
        return SearchOutcome(
            taskName: task.name, kind: task.kind, labels: task.vocabulary.labels, primaryMetric: metric.rawValue,
            teacher: teacher, trials: trials, frontier: frontier, recommendation: recommendation,
            recommendationTestMetrics: recommendationTest, recommendationTestDifference: recommendationDifference,
            recommendedBundle: recommendation.candidate.flatMap { bundles[$0] }, constraints: settings.constraints,
            summary: summary, seed: settings.seed,
            splitSizes: ["train": task.train.count, "validation": task.validation.count, "test": task.test.count])
    }

    /// The primary metric: the flag or job, else the suite, else accuracy when validation has gold, else agreement.
    public static func primaryMetric(task: TaskData, settings: SearchSettings) throws -> Metric {
        let hasGold = task.validation.hasGold && task.test.hasGold
        if let name = settings.metric {
            guard let metric = Metric(rawValue: name) else {
                throw DataError(
                    .usage,
                    "unknown metric \"\(name)\"; choose from \(Metric.allCases.map(\.rawValue).joined(separator: ", "))"
                )
            }
            if metric == .accuracy && !hasGold {
                throw DataError(
                    .usage, "metric accuracy needs gold labels in validation and test rows; use agreement or macro_f1")
            }
            return metric
        }
        if let primary = settings.suite.primary, primary != .accuracy || hasGold { return primary }
        return hasGold ? .accuracy : .agreement
    }

    /// The teacher's median latency: task.json or the job, else the median of the rows' `latency_ms`.
    static func teacherLatencyMs(_ task: TaskData) -> Double? {
        if let latency = task.teacher.latencyMsP50 { return latency }
        let recorded = (task.validation.teacherLatencyMs + task.test.teacherLatencyMs).compactMap { $0 }.sorted()
        return recorded.isEmpty ? nil : LatencyProfiler.percentile(recorded, 0.5)
    }

    /// The teacher's cost of a million calls: from token prices and the rows' usage when both exist, else
    /// 1000 × `cost_per_1k_requests_usd`.
    static func teacherCostPer1M(_ task: TaskData) -> Double? {
        let usage = (task.validation.teacherUsage + task.test.teacherUsage).compactMap { $0 }
        if let inputPrice = task.teacher.inputPerMTokUSD, let outputPrice = task.teacher.outputPerMTokUSD,
            !usage.isEmpty
        {
            let meanCost =
                usage.reduce(0.0) { $0 + Double($1.input) * inputPrice + Double($1.output) * outputPrice } / 1e6
                / Double(usage.count)
            return meanCost * 1e6
        }
        return task.teacher.costPer1kRequestsUSD.map { $0 * 1000 }
    }
}

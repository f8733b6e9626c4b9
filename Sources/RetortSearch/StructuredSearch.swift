import Foundation
import RetortData
import RetortEvals
import RetortNumerics
import RetortStudents

/// The search of a structured task (FORMATS.md §9): the teacher scored on validation and test, every candidate of the
/// catalog's `structured:` section trained (every precision of a configuration from one training run), scored on
/// validation with bootstrap CIs and the paired difference to the teacher, timed on one raw input at a time; then the
/// same frontier, recommendation and test-set evaluation as a label search (``SearchEngine/rank``).
///
/// Strategies: exhaustive (every candidate trains, in catalog order, until the budget runs out; the rest are reported
/// as pruned) or Pareto-aware halving (``StructuredHalving``: screening rungs at lower fidelity first). With `storage`,
/// every decided candidate is journaled and its student checkpointed, so an interrupted run resumes
/// (``StructuredJournal``). The learned strategy (predictions from past structured searches) orders the runs by promise
/// and rules out untrained those that cannot change the recommendation (``ruledOut``). What it does not do yet (a
/// label search does): the learned strategy's screens and invented sizes. Training runs go in waves of
/// `settings.workers` side by side, on the executor (``TrialExecutor/trainStructured(_:fidelity:task:seed:)``: threads
/// of this process, `retort trial run` processes or Ray tasks); the students come back and are timed here, one at a
/// time.
public enum StructuredSearch {
    /// Inputs latency is measured on (validation rows), and the single-input calls timed.
    static let latencyInputs = 512

    /// Runs the search on `task`. Events (phases, decided trials) go to `announce` as they happen.
    public static func run(
        task: StructuredTaskData, settings: SearchSettings, storage: RunStorage? = nil,
        events announce: @escaping @Sendable (SearchEvent) -> Void = { _ in }
    ) throws -> StructuredOutcome {
        let start = DispatchTime.now().uptimeNanoseconds
        // The header comes first in the journal: before any phase record.
        let journal = try storage.map { try StructuredJournal(storage: $0, task: task, settings: settings) }
        func elapsed() -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
        let kind = task.answerKind
        let hasGold = task.validation.hasGold && task.test.hasGold
        let metric = try SearchEngine.primaryMetric(kind: kind, hasGold: hasGold, settings: settings)
        let candidates = settings.catalog.structured
        guard !candidates.isEmpty else {
            throw SearchError("the candidate catalog lists no structured candidates; add a \"structured:\" section")
        }

        announce(.phase("evaluate the teacher"))
        let validation = SplitEvaluator(
            task: task, split: task.validation, resamples: settings.suite.resamples, seed: settings.seed &+ 1)
        let test = SplitEvaluator(
            task: task, split: task.test, resamples: settings.suite.resamples, seed: settings.seed &+ 2)
        let teacherValidation = try validation.evaluate(validation.teacher)
        let teacherTest = try test.evaluate(test.teacher)
        guard let teacherValue = teacherValidation.estimates[metric]?.value else {
            throw SearchError("the teacher has no \(metric.rawValue) on validation")
        }

        let groups = Dictionary(grouping: candidates, by: \.trainingKey)
        var order: [String] = []
        for candidate in candidates where !order.contains(candidate.trainingKey) { order.append(candidate.trainingKey) }
        let halving = StructuredHalving(candidates: candidates, settings: settings)
        let strategyName = halving.rungCount > 1 ? "halving in \(halving.rungCount) rungs" : "exhaustive"
        announce(
            .phase(
                "\(strategyName): \(candidates.count) structured candidates in \(order.count) training runs, budget "
                    + "\(Int(settings.budgetSeconds)) s"))
        var trials: [String: TrialResult] = [:]
        var students: [String: StructuredStudent] = [:]
        // Each candidate's validation answers, kept for its cascade curve (a decoder student takes minutes to answer).
        var validationPredictions: [String: [(answer: StructuredAnswer, confidence: Double)]] = [:]
        var trained = 0
        var epochs = 0.0
        var budgetHit = false
        // Paired validation difference replicates, for the recommendation's confidence (SelectionAdjustment).
        var replicates: [String: [Float]] = [:]
        var differences: [String: Double] = [:]
        let sample = Array(task.validation.texts.prefix(latencyInputs))
        let lastRung = halving.rungCount - 1
        func failed(_ candidate: StructuredCandidate, _ error: any Error) throws {
            try decide(failure(candidate, error))
        }
        func decide(
            _ trial: TrialResult, student: StructuredStudent? = nil,
            answers: [(answer: StructuredAnswer, confidence: Double)] = []
        ) throws {
            try journal?.decided(trial, rung: lastRung, student: student, answers: answers)
            trials[trial.id] = trial
            announce(.trial(trial, index: trials.count, total: candidates.count))
        }
        /// Keeps a scored student's paired validation replicates (the recommendation's confidence needs them).
        func pair(_ trial: inout TrialResult, _ evaluation: Evaluation) {
            guard let own = evaluation.replicates[metric], let theirs = teacherValidation.replicates[metric],
                let difference = trial.differenceToTeacher?.value
            else { return }
            let paired = zip(own, theirs).map { $0 - $1 }
            replicates[trial.id] = paired
            differences[trial.id] = difference
            trial.differenceSE = SelectionAdjustment.standardError(paired)
        }
        // Halving's screening rungs first: they prune training runs before the last rung trains the rest whole.
        let screening = try halving.screen(
            task: task, settings: settings, groups: groups, order: order, metric: metric, validation: validation,
            journal: journal,
            sample: sample, elapsed: elapsed, announce: announce,
            decide: { trial in
                // A pruned candidate's screening score is journaled already; a resumed run prunes it again from that.
                if trial.status != .pruned { try journal?.decided(trial, rung: lastRung) }
                trials[trial.id] = trial
                announce(.trial(trial, index: trials.count, total: candidates.count))
            })
        trained += screening.trainingRuns
        epochs += screening.epochs
        budgetHit = screening.budgetHit
        var finalRuns = order.filter { !screening.settled.contains($0) }
        // The learned strategy: the history's most promising runs first, and runs that cannot change the
        // recommendation ruled out untrained (``ruledOut``).
        let learned = settings.strategy == .learned && !settings.predictions.isEmpty
        if learned {
            let promise = { (key: String) in
                (groups[key] ?? []).compactMap { settings.predictions[$0.id]?.gap }.max() ?? -.infinity
            }
            finalRuns = finalRuns.enumerated().sorted { a, b in
                (promise(a.element), -a.offset) > (promise(b.element), -b.offset)
            }.map(\.element)
        }
        if halving.rungCount > 1 {
            announce(
                .phase(
                    String(
                        format: "rung %d/%d at fidelity 1.000: %d candidates", halving.rungCount, halving.rungCount,
                        finalRuns.reduce(0) { $0 + (groups[$1]?.count ?? 0) })))
        }
        try journal?.queue(
            rung: lastRung, fidelity: 1, candidates: finalRuns.flatMap { groups[$0]?.map(\.id) ?? [] })
        // Runs go in waves of `workers`: each wave's runs train and answer validation side by side, then each member
        // is timed alone (nothing else running) and decided in catalog order. One worker: one run at a time.
        var wave: [String] = []
        func trainWave() throws {
            let results = try settings.executor.trainStructured(
                wave.map { groups[$0] ?? [] }, fidelity: 1, task: task, seed: settings.seed)
            for (key, result) in zip(wave, results) {
                let members = groups[key] ?? []
                if let error = result.error {
                    for candidate in members { try failed(candidate, error) }
                    continue
                }
                trained += 1
                epochs += result.epochsRun
                for (candidate, answered) in zip(members, result.members) {
                    // A student that fails to answer or to be timed fails alone; the search goes on.
                    let profile: LatencyProfile
                    let (student, predictions, evaluation):
                        (StructuredStudent, [(answer: StructuredAnswer, confidence: Double)], Evaluation)
                    do {
                        let run = try answered.get()
                        (student, predictions) = (run.student, run.answers)
                        evaluation = try validation.evaluate(predictions.map { Optional($0.answer) })
                        profile = try Self.profile(student, sample: sample)
                    } catch {
                        try failed(candidate, error)
                        continue
                    }
                    validationPredictions[candidate.id] = predictions
                    var trial = TrialResult(
                        id: candidate.id, family: candidate.family, config: candidate.config,
                        precision: candidate.precision, params: student.params, sizeBytes: student.sizeBytes,
                        flopsPerExample: student.flopsPerExample(sample: sample), latencyMsP50: profile.p50,
                        latencyMsP95: profile.p95, throughputPerSecond: profile.throughput,
                        costPer1MUSD: profile.p50 / 1000 * 1e6 * settings.usdPerVCPUHour / 3600,
                        metrics: Dictionary(
                            uniqueKeysWithValues: evaluation.estimates.map { ($0.key.rawValue, $0.value) }),
                        differenceToTeacher: evaluation.difference(
                            to: teacherValidation, on: metric, resampler: validation.resampler),
                        fidelity: 1, status: .complete, onFrontier: false, epochsRun: Int(result.epochsRun),
                        trainSeconds: result.seconds)
                    trial.bestEpoch = result.bestEpoch
                    pair(&trial, evaluation)
                    students[candidate.id] = student
                    try decide(trial, student: student, answers: predictions)
                }
            }
            wave.removeAll()
        }
        for key in finalRuns {
            if wave.count >= max(1, settings.workers) { try trainWave() }
            let members = groups[key] ?? []
            // A resumed run takes back a training run whose every candidate was decided, from the checkpoints.
            if let journal,
                let restored = try restore(
                    members, journal: journal, validation: validation, rows: task.validation.count)
            {
                for entry in restored {
                    var trial = entry.trial
                    if let (student, predictions, evaluation) = entry.kept {
                        pair(&trial, evaluation)
                        students[trial.id] = student
                        validationPredictions[trial.id] = predictions
                    }
                    trials[trial.id] = trial
                    announce(.trial(trial, index: trials.count, total: candidates.count))
                }
                if restored.contains(where: { $0.kept != nil }) {
                    trained += 1
                    epochs += Double(restored.compactMap { $0.trial.epochsRun }.first ?? 0)
                }
                continue
            }
            if learned,
                let reasons = ruledOut(
                    members, trials: trials, metric: metric, teacherValue: teacherValue, settings: settings)
            {
                for candidate in members {
                    try decide(untrained(candidate, .skipped, reason: reasons[candidate.id] ?? ""))
                }
                continue
            }
            if elapsed() >= settings.budgetSeconds {
                budgetHit = true
                let reason = String(format: "the budget of %.0f s ran out before it trained", settings.budgetSeconds)
                for candidate in members { try decide(untrained(candidate, .pruned, reason: reason)) }
                continue
            }
            if members[0].isMissingBaseModel {
                for candidate in members {
                    try decide(
                        untrained(
                            candidate, .skipped,
                            reason: "its base model \(candidate.model) is missing; run `make models` to fetch it"))
                }
                continue
            }
            if members[0].family == .slm {
                announce(.phase("train \(members[0].trainingKey) (a decoder language model: minutes)"))
            }
            try journal?.started(members, rung: lastRung)
            wave.append(key)
        }
        if !wave.isEmpty { try trainWave() }
        let trainingEnded = DispatchTime.now().uptimeNanoseconds

        announce(.phase("frontier and recommendation"))
        let teacherLatency = task.teacherLatencyMs
        var decided = candidates.compactMap { trials[$0.id] }
        for index in decided.indices { decided[index].predicted = settings.predictions[decided[index].id] }
        let speed = try SearchEngine.settleSpeed(
            &decided, metric: metric.rawValue, teacherValue: teacherValue, constraints: settings.constraints,
            tolerance: settings.speedTolerance, usdPerVCPUHour: settings.usdPerVCPUHour
        ) { id in
            guard let student = students[id] else { return nil }
            return try Self.profile(student, sample: sample)
        }
        var ranked = SearchEngine.rank(
            decided, metric: metric.rawValue, teacherValue: teacherValue, teacherLatency: teacherLatency,
            constraints: settings.constraints,
            selection: SelectionAdjustment.make(replicates: replicates, differences: differences), speed: speed)

        announce(.phase("test-set evaluation of the frontier"))
        var leaders: [Family: TrialResult] = [:]
        for trial in ranked.ordered where trial.status == .complete {
            let value = trial.metrics[metric.rawValue]?.value ?? -.infinity
            if value > leaders[trial.family]?.metrics[metric.rawValue]?.value ?? -.infinity {
                leaders[trial.family] = trial
            }
        }
        let leaderIds = Set(leaders.values.map(\.id))
        var recommendationTest: [String: MetricEstimate]?
        var recommendationDifference: MetricEstimate?
        var cascades: [CascadeCurve] = []
        var testAnswers: [String: [(answer: StructuredAnswer, confidence: Double)]] = [:]
        for index in ranked.ordered.indices {
            let trial = ranked.ordered[index]
            let id = trial.id
            ranked.ordered[index].onFrontier = ranked.frontier.contains(id)
            guard
                ranked.ordered[index].onFrontier || id == ranked.recommendation.candidate || leaderIds.contains(id)
                    || id == ranked.pointEstimatePick,
                let student = students[id]
            else { continue }
            let answers = try student.predict(task.test.texts)
            testAnswers[id] = answers
            let evaluation = try test.evaluate(answers.map { Optional($0.answer) })
            let metrics = Dictionary(uniqueKeysWithValues: evaluation.estimates.map { ($0.key.rawValue, $0.value) })
            ranked.ordered[index].testMetrics = metrics
            if id == ranked.recommendation.candidate {
                recommendationTest = metrics
                recommendationDifference = evaluation.difference(to: teacherTest, on: metric, resampler: test.resampler)
            }
            guard ranked.ordered[index].onFrontier else { continue }
            // The student answers where its confidence reaches a threshold placed on validation, the teacher the rest.
            let validationAnswers = try validationPredictions[id] ?? student.predict(task.validation.texts)
            let thresholds = Cascade.thresholds(topProbabilities: validationAnswers.map { Float($0.confidence) })
            func points(
                _ answers: [(answer: StructuredAnswer, confidence: Double)], _ evaluator: SplitEvaluator<Structured>,
                _ teacherEvaluation: Evaluation?
            ) throws -> [CascadePoint] {
                try Cascade.points(
                    confidence: answers.map { Float($0.confidence) }, predictions: answers.map { Optional($0.answer) },
                    thresholds: thresholds, evaluator: evaluator, studentCostPer1M: trial.costPer1MUSD,
                    teacherCostPer1M: task.teacherCostPer1M, studentLatencyMs: trial.latencyMsP50,
                    teacherLatencyMs: teacherLatency,
                    teacherEvaluation: teacherEvaluation)
            }
            cascades.append(
                CascadeCurve(
                    candidate: id, validation: try points(validationAnswers, validation, teacherValidation),
                    test: try points(answers, test, nil)))
        }
        // A cascade may turn "keep the teacher" into "a student on its sure inputs, the teacher on the rest".
        let constraints = settings.constraints
        let allowed = Set(ranked.ordered.filter(constraints.admits).map(\.id))
        cascades = Cascade.withConfidence(
            cascades, metric: metric.rawValue, teacherValue: teacherValue, maxDrop: constraints.maxDrop)
        func reconsider(level: Double) -> Recommendation {
            Cascade.reconsider(
                ranked.recommendation, curves: cascades.filter { allowed.contains($0.candidate) },
                metric: metric.rawValue, teacherValue: teacherValue, teacherCostPer1M: task.teacherCostPer1M,
                maxDrop: constraints.maxDrop, confidenceName: "confidence", confidenceLevel: level,
                sizes: Dictionary(ranked.ordered.map { ($0.id, $0.sizeBytes) }, uniquingKeysWith: { a, _ in a }))
        }
        let reconsidered = reconsider(level: constraints.confidenceLevel)
        if ranked.pointEstimatePick == nil {
            ranked.pointEstimateCascade = Cascade.choiceIfDifferent(reconsider(level: 0), from: reconsidered)
        }
        if case .cascade(let id, let point, _) = reconsidered,
            let curve = cascades.first(where: { $0.candidate == id }),
            let testPoint = curve.test.first(where: { $0.threshold == point.threshold }), let answers = testAnswers[id]
        {
            ranked.recommendation = reconsidered
            recommendationTest = testPoint.metrics
            let blended = Cascade.labels(
                top: answers.map { Float($0.confidence) }, predictions: answers.map { Optional($0.answer) },
                teacher: test.teacher, threshold: point.threshold)
            recommendationDifference = try test.evaluate(blended).difference(
                to: teacherTest, on: metric, resampler: test.resampler)
        } else if reconsidered.cascadePoint == nil {
            ranked.recommendation = reconsidered
        }

        // The break-even; too little traffic to pay back within the horizon keeps the teacher.
        var economics: Economics?
        if let teacherCost = Economics.teacherCost(
            usage: task.splits.flatMap(\.rows.teacherUsage), inputPerMTok: task.teacher.inputPerMTokUSD,
            outputPerMTok: task.teacher.outputPerMTokUSD, per1kRequests: task.teacher.costPer1kRequestsUSD)
        {
            economics = Economics.of(
                ranked.recommendation, trials: ranked.ordered, teacherCost: teacherCost,
                rows: task.splits.reduce(0) { $0 + $1.count }, validationRows: task.validation.count,
                traffic: settings.trafficPerMonth, usdPerVCPUHour: settings.usdPerVCPUHour,
                cpuSeconds: Economics.cpuSecondsUsed())
            if settings.trafficPerMonth != nil { economics?.trafficSource = settings.trafficSource }
            if let decided = economics?.tooLittleTraffic(ranked.recommendation), decided.candidate == nil {
                ranked.recommendation = decided
                recommendationTest = nil
                recommendationDifference = nil
            }
        }

        let teacher = TeacherSummary(
            name: task.teacher.name,
            metrics: Dictionary(uniqueKeysWithValues: teacherTest.estimates.map { ($0.key.rawValue, $0.value) }),
            validationMetrics: Dictionary(
                uniqueKeysWithValues: teacherValidation.estimates.map { ($0.key.rawValue, $0.value) }),
            latencyMsP50: teacherLatency, costPer1MUSD: task.teacherCostPer1M, params: task.teacher.params,
            onFrontier: ranked.frontier.contains("teacher"), models: task.teacherModels,
            invalidRows: task.splits.reduce(0) { $0 + $1.invalidTeacherRows },
            invalidRowsBySplit: Dictionary(uniqueKeysWithValues: task.splits.map { ($0.name, $0.invalidTeacherRows) }))
        var summary = SearchSummary(
            strategy: (learned ? SearchStrategy.learned : halving.rungCount > 1 ? .halving : .exhaustive).rawValue,
            candidateEpochs: epochs, wallSeconds: elapsed(), trials: trained,
            stoppedBecause: budgetHit
                ? String(format: "the budget of %.0f s ran out", settings.budgetSeconds)
                : learned
                    ? "every run that could change the recommendation trained"
                    : halving.rungCount > 1 ? "the last rung finished" : "every structured candidate trained",
            historyTasks: learned ? settings.historyTasks : nil,
            similarTasks: learned && !settings.similarTasks.isEmpty ? settings.similarTasks : nil)
        summary.budgetSeconds = settings.budgetSeconds
        summary.executor = settings.executor.summary
        summary.calibration = PredictionCalibration(trials: ranked.ordered)
        summary.afterTrainingSeconds = Double(DispatchTime.now().uptimeNanoseconds - trainingEnded) / 1e9
        let outcome = SearchOutcome(
            taskName: task.name, taskDataset: task.dataset, kind: .structured, labels: [],
            primaryMetric: metric.rawValue, teacher: teacher,
            trials: ranked.ordered, frontier: ranked.frontier, recommendation: ranked.recommendation,
            recommendationTestMetrics: recommendationTest, recommendationTestDifference: recommendationDifference,
            recommendedBundle: nil, constraints: settings.constraints, summary: summary, seed: settings.seed,
            splitSizes: ["train": task.train.count, "validation": task.validation.count, "test": task.test.count],
            cascades: cascades, selection: ranked.selection, economics: economics,
            pointEstimatePick: ranked.pointEstimatePick,
            pointEstimateCascade: ranked.pointEstimateCascade, speed: ranked.speed)
        return StructuredOutcome(
            outcome: outcome, recommended: ranked.recommendation.candidate.flatMap { students[$0] })
    }

    /// A candidate an interrupted run decided: its trial, and for a complete one its checkpointed student, validation
    /// answers and their evaluation.
    struct Restored {
        var candidate: StructuredCandidate
        var trial: TrialResult
        var kept: (student: StructuredStudent, answers: [(answer: StructuredAnswer, confidence: Double)], Evaluation)?
    }

    /// A training run's candidates as an interrupted run decided them; nil when a candidate is undecided or a
    /// checkpoint is missing (the run then trains again: training is seeded, so it reaches the same student).
    static func restore(
        _ members: [StructuredCandidate], journal: StructuredJournal, validation: SplitEvaluator<Structured>, rows: Int
    ) throws -> [Restored]? {
        var result: [Restored] = []
        for candidate in members {
            guard let trial = journal.restored[candidate.id] else { return nil }
            guard trial.status == .complete else {
                result.append(Restored(candidate: candidate, trial: trial))
                continue
            }
            guard let (student, answers) = journal.checkpoint(candidate.id, rows: rows) else { return nil }
            let evaluation = try validation.evaluate(answers.map { Optional($0.answer) })
            result.append(Restored(candidate: candidate, trial: trial, kept: (student, answers, evaluation)))
        }
        return result
    }

    /// Times `student` on one raw input at a time; a decoder language model (about a second an answer) on 20 calls
    /// and batches of 16 instead of 300 calls and batches of 256.
    static func profile(_ student: StructuredStudent, sample: [String]) throws -> LatencyProfile {
        let slow = student.family == .slm
        return try LatencyProfiler.profile(
            inputs: sample, calls: slow ? 20 : 300, warmup: slow ? 2 : 30, batch: slow ? 16 : 256
        ) { texts in
            Float(try student.predict(texts)[0].confidence)
        }
    }

    /// The learned strategy's rule: once some trained candidate is recommended, a run whose every candidate, even
    /// `z` standard deviations above its prediction (corrected by what this task measured), stays below the bar
    /// cannot change the recommendation; returns the reason per candidate, or nil when the run should train.
    static func ruledOut(
        _ members: [StructuredCandidate], trials: [String: TrialResult], metric: Metric, teacherValue: Double,
        settings: SearchSettings
    ) -> [String: String]? {
        let current = Recommender.recommend(
            trials: Array(trials.values).sorted { $0.id < $1.id }, metric: metric.rawValue,
            teacherValue: teacherValue, constraints: settings.constraints
        ).candidate.flatMap { trials[$0] }
        guard let current else { return nil }
        let corrected = SearchEngine.correctedPredictions(
            settings.predictions, measured: trials, floor: 0.01, offsetSpread: settings.historyOffsetSpread ?? 1)
        let (z, maxDrop) = (settings.confidenceZ, settings.constraints.maxDrop)
        var reasons: [String: String] = [:]
        for candidate in members {
            guard let prediction = corrected[candidate.id], prediction.gap + z * prediction.gapSD < -maxDrop else {
                return nil
            }
            reasons[candidate.id] = SearchEngine.notTrainedReason(prediction, current: current, z: z, maxDrop: maxDrop)
        }
        return reasons
    }

    /// A candidate decided without a trained student (failed, skipped or pruned before it trained), with the reason.
    static func untrained(_ candidate: StructuredCandidate, _ status: TrialStatus, reason: String) -> TrialResult {
        TrialResult(
            id: candidate.id, family: candidate.family, config: candidate.config, precision: candidate.precision,
            params: 0, sizeBytes: 0, flopsPerExample: 0, metrics: [:], fidelity: 0, status: status,
            onFrontier: false, reason: reason)
    }

    /// A candidate that failed, with the reason.
    static func failure(_ candidate: StructuredCandidate, _ error: any Error) -> TrialResult {
        untrained(candidate, .failed, reason: "\(error)")
    }

    /// Trains (or indexes) `candidate` on the train rows whose teacher answer is valid; at a `fidelity` below 1
    /// (halving's screening), a fields run on that share of its epochs and an slm run on that share of its rows.
    static func train(
        _ candidate: StructuredCandidate, task: StructuredTaskData, seed: UInt64, fidelity: Double = 1
    ) throws -> StructuredStudent {
        var candidate = candidate
        if fidelity < 1 {
            let scaled = { (count: Int) in max(1, Int((Double(count) * fidelity).rounded(.up))) }
            candidate.epochs = candidate.family == .fields ? scaled(candidate.epochs) : candidate.epochs
            let rows = min(candidate.trainRows, task.train.teacher.lazy.filter { $0 != nil }.count)
            candidate.trainRows = candidate.family == .slm ? max(8, scaled(rows)) : candidate.trainRows
        }
        let featurizer = HashedTextFeaturizer(bucketsLog2: candidate.bucketsLog2)
        switch candidate.family {
        case .nearest:
            return .nearest(
                try NearestAnswer(texts: task.train.texts, answers: task.train.teacher, featurizer: featurizer))
        case .fields:
            return .fields(
                try FieldsStudent.train(
                    texts: task.train.texts, answers: task.train.teacher, schema: task.schema,
                    validationTexts: task.validation.texts, validationAnswers: task.validation.teacher,
                    config: FieldsConfig(
                        bucketsLog2: candidate.bucketsLog2, hidden: candidate.hidden, epochs: candidate.epochs),
                    seed: seed))
        case .slm:
            return .slm(
                try SlmStudent.train(
                    texts: task.train.texts, answers: task.train.teacher, tokens: task.train.teacherTokens,
                    schema: task.schema,
                    config: LoRAConfig(
                        rank: candidate.rank, alpha: Double(2 * candidate.rank), depth: candidate.depth,
                        epochs: candidate.epochs, maxTrainRows: candidate.trainRows, seed: seed),
                    modelFile: URL(fileURLWithPath: candidate.model)))
        default:
            throw SearchError("\(candidate.family.rawValue) is not a structured family")
        }
    }
}

/// A structured search's result: the outcome every report renders, and the recommended student to export.
public struct StructuredOutcome: Sendable {
    /// Trials, frontier, recommendation, teacher.
    public var outcome: SearchOutcome
    /// The recommended student, when the recommendation names one.
    public var recommended: StructuredStudent?
}

extension StructuredTaskData {
    /// The teacher's median latency: task.json or the job, else the median of the validation and test rows'
    /// `latency_ms`.
    public var teacherLatencyMs: Double? {
        if let latency = teacher.latencyMsP50 { return latency }
        let recorded = (validation.rows.teacherLatencyMs + test.rows.teacherLatencyMs).compactMap { $0 }.sorted()
        return recorded.isEmpty ? nil : LatencyProfiler.percentile(recorded, 0.5)
    }

    /// The teacher's cost of a million calls (token prices × the rows' usage, else the per-request price).
    public var teacherCostPer1M: Double? {
        let usage = (validation.rows.teacherUsage + test.rows.teacherUsage).compactMap { $0 }
        if let inputPrice = teacher.inputPerMTokUSD, let outputPrice = teacher.outputPerMTokUSD, !usage.isEmpty {
            return usage.reduce(0.0) { $0 + Double($1.input) * inputPrice + Double($1.output) * outputPrice }
                / Double(usage.count)
        }
        return teacher.costPer1kRequestsUSD.map { $0 * 1000 }
    }

    /// Rows per answering model over every split (nil when no row records one).
    public var teacherModels: [String: Int]? {
        var counts: [String: Int] = [:]
        for split in splits {
            for model in split.rows.teacherModels.compactMap({ $0 }) { counts[model, default: 0] += 1 }
        }
        return counts.isEmpty ? nil : counts
    }
}

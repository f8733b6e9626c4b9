import Foundation
import RetortData

/// Every candidate's result in catalog order, with the frontier and the recommendation on validation.
struct RankedTrials {
    /// Every candidate's result, catalog order (invented candidates last).
    var ordered: [TrialResult]
    /// Frontier ids, best quality first, `"teacher"` among them when it is on the frontier.
    var frontier: [String]
    /// The recommendation on validation (a cascade may replace it later, CascadeRecommendation).
    var recommendation: Recommendation
    /// The teacher's median latency, ms, when known.
    var teacherLatency: Double?
    /// The selection adjustment the recommendation used, when candidates had bootstrap replicates.
    var selection: SelectionAdjustment?
    /// What the point estimates alone would recommend, when it differs from ``recommendation`` (for comparison).
    var pointEstimatePick: String?
    /// What the point estimates alone would recommend among cascades, when no student passes either rule and it
    /// differs from the recommendation.
    var pointEstimateCascade: CascadeChoice?
    /// How speed was compared (measured latency and its tolerance), when latencies were settled.
    var speed: SpeedComparison?
}

extension SearchRun {
    /// The frontier and the recommendation: every decided candidate with its prediction, the Pareto frontier over
    /// (quality, latency tier, FLOPs, size) with the teacher as a point, and the ``Recommender``'s choice.
    func frontierAndRecommendation() throws -> RankedTrials {
        try events(.phase("frontier and recommendation"))
        var ordered = candidates.compactMap { trials[$0.id] }
        for index in ordered.indices {
            ordered[index].predicted = settings.predictions[ordered[index].id]
            if candidates.first(where: { $0.id == ordered[index].id })?.invented == true {
                ordered[index].invented = true
            }
        }
        let selection = try selectionAdjustment(&ordered)
        let speed = try SearchEngine.settleSpeed(
            &ordered, metric: metric.rawValue, teacherValue: teacher.value, constraints: settings.constraints,
            tolerance: settings.speedTolerance, usdPerVCPUHour: settings.usdPerVCPUHour
        ) { id in
            guard let trial = trials[id], let bundle = try bundle(id, epochs: trial.epochsRun ?? 0) else { return nil }
            return try LatencyProfiler.profile(bundle, inputs: Array(task.validation.inputs.prefix(512)))
        }
        return SearchEngine.rank(
            ordered, metric: metric.rawValue, teacherValue: teacher.value,
            teacherLatency: SearchEngine.teacherLatencyMs(task), constraints: settings.constraints,
            selection: selection, speed: speed)
    }

    /// Each complete full-fidelity candidate's paired validation difference replicates (its bundle's validation answers
    /// scored on the teacher's resamples), its standard error set on `ordered`, and the selection adjustment over them.
    func selectionAdjustment(_ ordered: inout [TrialResult]) throws -> SelectionAdjustment? {
        guard let teacherReplicates = teacher.validation.replicates[metric] else { return nil }
        var replicates: [String: [Float]] = [:]
        var differences: [String: Double] = [:]
        for index in ordered.indices {
            let trial = ordered[index]
            guard trial.status == .complete, trial.fidelity >= 1, let (group, candidate) = member[trial.id],
                let difference = trial.differenceToTeacher?.value,
                let bundle = try bundle(trial.id, epochs: trial.epochsRun ?? 0)
            else { continue }
            let probabilities = try bundle.model.probabilities(
                features(group.featureKey).validation(at: candidate.precision))
            let evaluation = try teacher.validationEvaluator.evaluate(probabilities.argmaxPerRow())
            guard let own = evaluation.replicates[metric] else { continue }
            let paired = zip(own, teacherReplicates).map { $0 - $1 }
            replicates[trial.id] = paired
            differences[trial.id] = difference
            ordered[index].differenceSE = SelectionAdjustment.standardError(paired)
        }
        return SelectionAdjustment.make(replicates: replicates, differences: differences)
    }
}

extension SearchEngine {
    /// Measures the close calls among `trials` again (``SpeedComparison/settle(_:contenders:usdPerVCPUHour:profile:)``):
    /// the contenders are the students on the frontier and those within `max_drop` of the teacher on validation.
    static func settleSpeed(
        _ trials: inout [TrialResult], metric: String, teacherValue: Double, constraints: Constraints,
        tolerance: Double, usdPerVCPUHour: Double, profile: (String) throws -> LatencyProfile?
    ) throws -> SpeedComparison {
        let provisional = rank(
            trials, metric: metric, teacherValue: teacherValue, teacherLatency: nil, constraints: constraints,
            speed: SpeedComparison(relativeTolerance: tolerance))
        let bar = teacherValue - constraints.maxDrop
        let qualifying = trials.filter {
            $0.status == .complete && $0.fidelity >= 1 && ($0.metrics[metric]?.value ?? -.infinity) >= bar - 1e-12
        }
        var contenders = provisional.frontier.filter { $0 != "teacher" }
        contenders += qualifying.map(\.id).filter { !contenders.contains($0) }
        return try SpeedComparison.settle(
            &trials, contenders: contenders, tolerance: tolerance, usdPerVCPUHour: usdPerVCPUHour, profile: profile)
    }

    /// Ranks decided trials (any task kind): the device latency estimates, the Pareto frontier over (quality, speed,
    /// size) with the teacher as a point, and the ``Recommender``'s choice. Speed is compared by measured latency
    /// under `speed` (``SpeedComparison``), else by FLOPs.
    static func rank(
        _ trials: [TrialResult], metric: String, teacherValue: Double, teacherLatency: Double?,
        constraints: Constraints, selection: SelectionAdjustment? = nil, speed: SpeedComparison? = nil
    ) -> RankedTrials {
        var ordered = trials
        if constraints.device != nil {
            for index in ordered.indices {
                ordered[index].deviceLatencyMsP50 = ordered[index].latencyMsP50.map {
                    $0 * (constraints.latencyScale ?? 1)
                }
            }
        }
        var points = ordered.filter { $0.status == .complete }.map { trial in
            // Between students, measured latency beyond the run's tolerance, then FLOPs within a family; a student
            // measured slower than the teacher is placed behind it.
            let slowerThanTeacher = teacherLatency.map { (trial.latencyMsP50 ?? 0) > $0 } ?? false
            return FrontierPoint(
                id: trial.id, quality: trial.metrics[metric]?.value ?? -.infinity,
                latencyTier: slowerThanTeacher ? 2 : 0, flops: Double(trial.flopsPerExample),
                size: Double(trial.sizeBytes), latencyMs: trial.latencyMsP50, family: trial.family.rawValue,
                speed: speed)
        }
        points.append(
            FrontierPoint(id: "teacher", quality: teacherValue, latencyTier: 1, flops: .infinity, size: .infinity))
        let frontier = paretoFrontier(of: points).sorted {
            $0.quality > $1.quality || ($0.quality == $1.quality && $0.id < $1.id)
        }.map(\.id)
        if let selection {
            for index in ordered.indices {
                guard let se = ordered[index].differenceSE, let value = ordered[index].metrics[metric]?.value else {
                    continue
                }
                ordered[index].pWithinMaxDrop = selection.probabilityWithin(
                    difference: value - teacherValue, se: se, maxDrop: constraints.maxDrop)
            }
        }
        let recommendation = Recommender.recommend(
            trials: ordered, metric: metric, teacherValue: teacherValue, constraints: constraints,
            selection: selection, speed: speed)
        let pointPick = Recommender.recommend(
            trials: ordered, metric: metric, teacherValue: teacherValue, constraints: constraints, speed: speed
        ).candidate
        return RankedTrials(
            ordered: ordered, frontier: frontier, recommendation: recommendation, teacherLatency: teacherLatency,
            selection: selection, pointEstimatePick: pointPick != recommendation.candidate ? pointPick : nil,
            speed: speed)
    }
}

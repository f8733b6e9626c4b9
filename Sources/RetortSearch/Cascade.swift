import Foundation
import RetortEvals
import RetortNumerics

/// One operating point of a cascade: the student answers the rows whose top probability is at least `threshold`
/// and hands the rest to the teacher.
public struct CascadePoint: Codable, Sendable, Equatable {
    /// The student answers when its top probability is at least this.
    public var threshold: Double
    /// Share of the rows the student answers.
    public var coverage: Double
    /// The student's agreement with the teacher on the rows it answers (bootstrap CI over the split's rows).
    public var agreement: MetricEstimate?
    /// The cascade's metrics on every row (the student's labels where it answers, the teacher's elsewhere).
    public var metrics: [String: MetricEstimate]
    /// Cost per 1M inputs: the student on every input plus the teacher on the rest.
    public var blendedCostPer1MUSD: Double?
    /// Median latency over inputs: the student's p50 when it answers more than half of them, else the student's plus
    /// the teacher's.
    public var blendedLatencyMsP50: Double?
    /// Per primary-metric name: the paired bootstrap replicates of `cascade − teacher` (kept in memory for the
    /// recommendation's confidence, never written).
    public var differenceReplicates: [String: [Float]] = [:]
    /// The probability, adjusted for picking among every validation point of every curve, that the cascade's true
    /// drop against the teacher is within `max_drop` (set on validation points when a recommendation is decided).
    public var pWithinMaxDrop: Double?

    /// A point with every figure given.
    public init(
        threshold: Double, coverage: Double, agreement: MetricEstimate?, metrics: [String: MetricEstimate],
        blendedCostPer1MUSD: Double?, blendedLatencyMsP50: Double?
    ) {
        self.threshold = threshold
        self.coverage = coverage
        self.agreement = agreement
        self.metrics = metrics
        self.blendedCostPer1MUSD = blendedCostPer1MUSD
        self.blendedLatencyMsP50 = blendedLatencyMsP50
    }

    enum CodingKeys: String, CodingKey {
        case threshold, coverage, agreement, metrics
        case blendedCostPer1MUSD = "blended_cost_per_1m_usd"
        case blendedLatencyMsP50 = "blended_latency_ms_p50"
        case pWithinMaxDrop = "p_within_max_drop"
    }
}

/// A cascade named by its student and threshold (report.json `recommendation.point_estimate_cascade`).
public struct CascadeChoice: Codable, Sendable, Equatable {
    /// The student.
    public var candidate: String
    /// The student answers when its confidence is at least this.
    public var threshold: Double

    /// A cascade of `candidate` at `threshold`.
    public init(candidate: String, threshold: Double) {
        self.candidate = candidate
        self.threshold = threshold
    }
}

/// A frontier student's cascade curve on validation (what a decision may use) and on test (reported).
public struct CascadeCurve: Codable, Sendable, Equatable {
    /// The student.
    public var candidate: String
    /// Points from coverage 1 down, on the validation rows.
    public var validation: [CascadePoint]
    /// The same thresholds applied to the test rows.
    public var test: [CascadePoint]

    /// A curve.
    public init(candidate: String, validation: [CascadePoint], test: [CascadePoint]) {
        self.candidate = candidate
        self.validation = validation
        self.test = test
    }
}

/// Cascade curves (DESIGN.md "Cascades"): sort the rows by the student's top probability; each threshold gives
/// coverage, agreement on the covered rows, the cascade's metrics, and blended cost and latency.
public enum Cascade {
    /// Coverage levels the validation thresholds are placed at: 100%, 95%, …, 5%.
    public static let coverageLevels: [Double] = (1...20).reversed().map { Double($0) / 20 }

    /// Validation thresholds: for each coverage level, the top probability of the row at that rank (ties included,
    /// so the coverage reached can be higher); distinct, descending coverage.
    public static func thresholds(topProbabilities: [Float]) -> [Double] {
        let sorted = topProbabilities.sorted(by: >)
        guard !sorted.isEmpty else { return [] }
        var result: [Double] = []
        for level in coverageLevels {
            let rank = max(1, Int((level * Double(sorted.count)).rounded(.up)))
            let threshold = Double(sorted[min(rank, sorted.count) - 1])
            if result.last != threshold { result.append(threshold) }
        }
        return result
    }

    /// The points of a cascade at `thresholds`, for a student whose class probabilities on the evaluator's rows are
    /// `probabilities` (rows × classes).
    public static func points(
        probabilities: Matrix, thresholds: [Double], evaluator: Evaluator, studentCostPer1M: Double?,
        teacherCostPer1M: Double?, studentLatencyMs: Double?, teacherLatencyMs: Double?,
        teacherEvaluation: Evaluation? = nil
    ) throws -> [CascadePoint] {
        try points(
            confidence: topProbabilities(probabilities), predictions: probabilities.argmaxPerRow(),
            thresholds: thresholds, evaluator: evaluator, studentCostPer1M: studentCostPer1M,
            teacherCostPer1M: teacherCostPer1M, studentLatencyMs: studentLatencyMs, teacherLatencyMs: teacherLatencyMs,
            teacherEvaluation: teacherEvaluation)
    }

    /// The points of a cascade at `thresholds` for any task kind: the student's answers on the evaluator's rows and
    /// its confidence in each (a label student's top probability; a structured student's product of field
    /// probabilities or retrieval similarity).
    public static func points<Kind: AnswerKind>(
        confidence top: [Float], predictions: [Kind.Answer], thresholds: [Double], evaluator: SplitEvaluator<Kind>,
        studentCostPer1M: Double?, teacherCostPer1M: Double?, studentLatencyMs: Double?, teacherLatencyMs: Double?,
        teacherEvaluation: Evaluation? = nil
    ) throws -> [CascadePoint] {
        let teacher = evaluator.teacher
        let kind = evaluator.kind
        var points: [CascadePoint] = []
        for threshold in thresholds {
            let covered = top.map { Double($0) >= threshold }
            let count = covered.count { $0 }
            let coverage = top.isEmpty ? 0 : Double(count) / Double(top.count)
            // Agreement on the covered rows, per resample: Σ w·covered·agrees / Σ w·covered.
            var agreement: MetricEstimate?
            if count > 0 {
                let coveredVector = covered.map { $0 ? Float(1) : 0 }
                let agreeing = zip(covered, zip(predictions, teacher)).map {
                    $0 && kind.same($1.0, $1.1) ? Float(1) : 0
                }
                agreement = try evaluator.estimate(.ratio(numerator: agreeing, denominator: coveredVector)).0
            }
            let evaluation = try evaluator.evaluate(
                labels(top: top, predictions: predictions, teacher: teacher, threshold: threshold))
            let cost = studentCostPer1M.flatMap { student in teacherCostPer1M.map { student + (1 - coverage) * $0 } }
            let latency = studentLatencyMs.flatMap { student in
                teacherLatencyMs.map { coverage > 0.5 ? student : student + $0 }
            }
            var point = CascadePoint(
                threshold: threshold, coverage: coverage, agreement: agreement,
                metrics: Dictionary(uniqueKeysWithValues: evaluation.estimates.map { ($0.key.rawValue, $0.value) }),
                blendedCostPer1MUSD: cost, blendedLatencyMsP50: latency)
            if let teacherEvaluation {
                for (metric, own) in evaluation.replicates {
                    guard let theirs = teacherEvaluation.replicates[metric] else { continue }
                    point.differenceReplicates[metric.rawValue] = zip(own, theirs).map { $0 - $1 }
                }
            }
            points.append(point)
        }
        return points
    }

    /// `curves` with each validation point's probability that the cascade's true drop is within `maxDrop`, adjusted
    /// for picking among every validation point of every curve (one ``SelectionAdjustment`` over them all); points
    /// without replicates keep none.
    public static func withConfidence(
        _ curves: [CascadeCurve], metric: String, teacherValue: Double, maxDrop: Double
    ) -> [CascadeCurve] {
        var replicates: [String: [Float]] = [:]
        var differences: [String: Double] = [:]
        for (c, curve) in curves.enumerated() {
            for (p, point) in curve.validation.enumerated() {
                guard let paired = point.differenceReplicates[metric], let value = point.metrics[metric]?.value else {
                    continue
                }
                replicates["\(c)/\(p)"] = paired
                differences["\(c)/\(p)"] = value - teacherValue
            }
        }
        guard let selection = SelectionAdjustment.make(replicates: replicates, differences: differences) else {
            return curves
        }
        var result = curves
        for c in result.indices {
            for p in result[c].validation.indices {
                guard let paired = replicates["\(c)/\(p)"], let difference = differences["\(c)/\(p)"] else { continue }
                result[c].validation[p].pWithinMaxDrop = selection.probabilityWithin(
                    difference: difference, se: SelectionAdjustment.standardError(paired), maxDrop: maxDrop)
            }
        }
        return result
    }

    /// The cascade `candidate` names (its student and threshold) when `chosen` is not the same cascade.
    public static func choiceIfDifferent(_ candidate: Recommendation, from chosen: Recommendation) -> CascadeChoice? {
        guard case .cascade(let id, let point, _) = candidate else { return nil }
        if case .cascade(let other, let otherPoint, _) = chosen, other == id, otherPoint.threshold == point.threshold {
            return nil
        }
        return CascadeChoice(candidate: id, threshold: point.threshold)
    }

    /// The least a cascade must save against the teacher alone (share of the teacher's cost per 1M) to be recommended.
    public static let minimumSavings = 0.10

    /// Blended costs closer than this share of the teacher's cost count as equal: the student's part of a blended cost
    /// comes from its measured latency and moves from run to run; the teacher's part does not.
    public static let costTolerance = 0.01

    /// Reconsiders a no-distillation answer: among the frontier students' validation cascade points whose cascade
    /// meets the bar (primary metric ≥ teacher − max drop), the one with the lowest blended cost (costs within
    /// ``costTolerance`` of the teacher's cost count as equal), then the widest coverage, then the smallest student
    /// (`sizes`, bytes by candidate), then the candidate id. It is recommended when it saves at least
    /// ``minimumSavings`` of the teacher's cost; otherwise the teacher stays, and the reason says what the best cascade
    /// would have saved.
    public static func reconsider(
        _ recommendation: Recommendation, curves: [CascadeCurve], metric: String, teacherValue: Double,
        teacherCostPer1M: Double?, maxDrop: Double, confidenceName: String = "top probability",
        confidenceLevel: Double = 0.9, sizes: [String: Int] = [:]
    ) -> Recommendation {
        guard case .noDistillation(let reason) = recommendation, let teacherCost = teacherCostPer1M, teacherCost > 0
        else { return recommendation }
        let bar = teacherValue - maxDrop
        let meeting = curves.flatMap { curve in
            curve.validation.filter {
                ($0.metrics[metric]?.value ?? -.infinity) >= bar - 1e-12 && $0.coverage > 0
                    && ($0.pWithinMaxDrop.map { $0 >= confidenceLevel - 1e-12 } ?? true)
            }
            .compactMap { point in point.blendedCostPer1MUSD.map { (curve.candidate, point, $0) } }
        }
        guard
            let best = meeting.min(by: { a, b in
                if abs(a.2 - b.2) > costTolerance * teacherCost { return a.2 < b.2 }
                if a.1.coverage != b.1.coverage { return a.1.coverage > b.1.coverage }
                let (sizeA, sizeB) = (sizes[a.0] ?? .max, sizes[b.0] ?? .max)
                if sizeA != sizeB { return sizeA < sizeB }
                return a.0 < b.0
            })
        else { return recommendation }
        let (candidate, point, cost) = best
        let savings = 1 - cost / teacherCost
        let value = point.metrics[metric]?.value ?? .nan
        let description = String(
            format: "%@ answering %.0f%% of inputs (%@ ≥ %.3f) and the teacher the rest", candidate,
            point.coverage * 100, confidenceName, point.threshold)
        guard savings >= minimumSavings else {
            return .noDistillation(
                reason: reason
                    + String(
                        format:
                            "; the cheapest cascade that meets the bar, %@, would save only %.1f%% of the teacher's cost",
                        description, savings * 100))
        }
        let agreement =
            point.agreement.map {
                String(
                    format: "; agreement with the teacher on its answers %.3f [%.3f, %.3f]", $0.value, $0.ci95[0],
                    $0.ci95[1])
            } ?? ""
        let confidence =
            point.pWithinMaxDrop.map {
                String(
                    format: "; within %.1f pt of the teacher with %.0f%% confidence (adjusted for choosing among the "
                        + "cascades' validation points)", maxDrop * 100, min($0, 0.99) * 100)
            } ?? ""
        return .cascade(
            candidate: candidate, point: point,
            reason: String(
                format:
                    "no student alone meets the bar, but %@ reaches %@ %.4f vs teacher %.4f (allowed drop %.1f pt%@) at $%.4g per 1M vs $%.4g, %.0f%% less%@",
                description, metric, value, teacherValue, maxDrop * 100, confidence, cost, teacherCost,
                savings * 100, agreement))
    }

    /// The cascade's label per row: the student's where its top probability is at least `threshold`, the teacher's
    /// elsewhere.
    public static func labels<Answer>(top: [Float], predictions: [Answer], teacher: [Answer], threshold: Double)
        -> [Answer]
    {
        zip(zip(top, predictions), teacher).map { Double($0.0) >= threshold ? $0.1 : $1 }
    }

    /// Top probability per row.
    public static func topProbabilities(_ probabilities: Matrix) -> [Float] {
        (0..<probabilities.rows).map { row in
            (0..<probabilities.columns).reduce(-Float.infinity) { max($0, probabilities[row, $1]) }
        }
    }
}

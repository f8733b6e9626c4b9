import Foundation
import RetortData
import RetortSearch
import RetortStudents

/// What `retort suggest` predicts for a task from the history, without training: every feasible candidate's
/// predicted gap to the teacher, the predicted frontier and the predicted recommendation (FORMATS.md's `suggest
/// --json` shape).
public struct Suggestion: Encodable, Sendable {
    /// One candidate's prediction.
    public struct Row: Encodable, Sendable {
        /// Candidate id.
        public let id: String
        /// Family name.
        public let family: String
        /// Precision name.
        public let precision: String
        /// Exported size, bytes (structured: predicted from the nearest past trials, as a structured student's size is
        /// known only once trained).
        public let sizeBytes: Int
        /// FLOPs per example (structured: predicted, as the size is).
        public let flopsPerExample: Int
        /// The predicted gap (student − teacher on the validation primary metric), its sd and latency.
        public let predicted: CandidatePrediction
        /// The chance that the candidate's gap clears the allowed drop: the share of the history's own held-out
        /// predictions whose error, in sd units, would have taken this prediction there (`DistanceWidening.chance`).
        public let chanceToMeetBar: Double
        /// Whether no other candidate is predicted at least as good on gap, FLOPs and size and better on one.
        public let onPredictedFrontier: Bool

        enum CodingKeys: String, CodingKey {
            case id, family, precision, predicted
            case sizeBytes = "size_bytes"
            case flopsPerExample = "flops_per_example"
            case chanceToMeetBar = "chance_to_meet_bar"
            case onPredictedFrontier = "on_predicted_frontier"
        }
    }

    /// The task's name.
    public let task: String
    /// Past tasks of the kind the predictions rest on.
    public let historyTasks: Int
    /// The primary metric.
    public let metric: String
    /// `student` or `no-distillation`.
    public let recommendation: String
    /// The predicted recommendation's candidate, if any.
    public let candidate: String?
    /// Every predicted candidate: the predicted frontier first, then by predicted gap ↓ and FLOPs ↑.
    public let candidates: [Row]
    /// The `retort search` command that confirms the prediction.
    public let confirm: String
    /// The nearest past tasks and what their searches found.
    public let similarTasks: [SimilarTask]
    /// The bar on the gap: −max_drop.
    public let bar: Double
    /// How many candidates are predicted to clear the bar.
    public let qualifying: Int
    /// ``MetaFeatures/teacherWarning``: a plain model on the gold labels beats the teacher on validation.
    public let teacherWarning: String?

    enum CodingKeys: String, CodingKey {
        case task, metric, recommendation, candidate, candidates, confirm
        case historyTasks = "history_tasks"
        case similarTasks = "similar_tasks"
        case teacherWarning = "teacher_warning"
    }

    /// The predicted recommendation's row: the student the recommender would pick if every candidate measured its
    /// predicted gap (``qualifies(_:bar:level:)``, ``recommended(among:speed:)``).
    public var pick: Row? { candidates.first { $0.id == candidate } }

    /// The candidate with the highest predicted gap (what to say when none is predicted to qualify).
    public var mostPromising: Row? { candidates.max { $0.predicted.gap < $1.predicted.gap } }

    /// Predicts every feasible candidate of `task` under `settings` with `predictor`; `confirm` is the command to
    /// print. O(candidates × history trials) for the predictions, O(candidates²) for the frontier.
    public static func predict(
        task: TaskData, settings: SearchSettings, seed: UInt64, metric: String, predictor: HistoryPredictor,
        confirm: String
    ) throws -> Suggestion {
        let meta = try MetaFeatures(task: task, seed: seed)
        var predicted: [Predicted] = []
        for candidate in SearchEngine.candidateSpace(task: task, settings: settings) where candidate.status == .complete
        {
            guard
                let prediction = predictor.predict(
                    meta: meta, family: candidate.family, precision: candidate.precision,
                    sizeBytes: candidate.sizeBytes, flops: candidate.flopsPerExample)
            else { continue }
            predicted.append(
                Predicted(
                    id: candidate.id, family: candidate.family, precision: candidate.precision,
                    sizeBytes: candidate.sizeBytes, flops: candidate.flopsPerExample, prediction: prediction))
        }
        return assemble(
            task: task.name, meta: meta, predicted: predicted, bar: -settings.constraints.maxDrop,
            level: settings.constraints.confidenceLevel,
            speed: SpeedComparison(relativeTolerance: settings.speedTolerance),
            metric: metric, predictor: predictor, confirm: confirm)
    }

    /// Predicts every candidate of the catalog's `structured:` section for the structured `task` with `predictor`
    /// (one over past structured tasks), each with its predicted size and FLOPs, leaving out the slm candidates whose
    /// base model is missing (the search skips them); `confirm` is the command to print. O(candidates × history
    /// trials) for the predictions, O(candidates²) for the frontier.
    public static func predict(
        structured task: StructuredTaskData, settings: SearchSettings, seed: UInt64, metric: String,
        predictor: HistoryPredictor, confirm: String
    ) -> Suggestion {
        let meta = MetaFeatures(structured: task, seed: seed)
        var predicted: [Predicted] = []
        for candidate in settings.catalog.structured
        where !candidate.isMissingBaseModel {
            guard let prediction = predictor.predict(meta: meta, candidate: candidate),
                let cost = predictor.predictedCost(meta: meta, candidate: candidate)
            else { continue }
            predicted.append(
                Predicted(
                    id: candidate.id, family: candidate.family, precision: candidate.precision,
                    sizeBytes: cost.sizeBytes, flops: cost.flops, prediction: prediction))
        }
        return assemble(
            task: task.name, meta: meta, predicted: predicted, bar: -settings.constraints.maxDrop,
            level: settings.constraints.confidenceLevel,
            speed: SpeedComparison(relativeTolerance: settings.speedTolerance),
            metric: metric, predictor: predictor, confirm: confirm)
    }

    /// A candidate with its prediction, before the frontier and the pick.
    struct Predicted {
        let id: String
        let family: Family
        let precision: Precision
        let sizeBytes: Int
        let flops: Int
        let prediction: CandidatePrediction
    }

    /// The predicted frontier, the pick and the table order of `predicted`.
    static func assemble(
        task: String, meta: MetaFeatures, predicted: [Predicted], bar: Double, level: Double, speed: SpeedComparison,
        metric: String, predictor: HistoryPredictor, confirm: String
    ) -> Suggestion {
        // Predicted frontier: the search's own dominance over predicted gap ↑, FLOPs ↓, size ↓.
        let frontier = Set(
            paretoFrontier(
                of: predicted.map {
                    FrontierPoint(
                        id: $0.id, quality: $0.prediction.gap, latencyTier: 0, flops: Double($0.flops),
                        size: Double($0.sizeBytes))
                }
            ).map(\.id))
        let rows = predicted.map { candidate in
            Row(
                id: candidate.id, family: candidate.family.rawValue, precision: candidate.precision.rawValue,
                sizeBytes: candidate.sizeBytes, flopsPerExample: candidate.flops, predicted: candidate.prediction,
                chanceToMeetBar: predictor.widening.chance(candidate.prediction, reaches: bar),
                onPredictedFrontier: frontier.contains(candidate.id))
        }
        let qualifying = rows.filter { qualifies($0.predicted, bar: bar, level: level) }
        let pick = recommended(among: qualifying, speed: speed)
        let sorted = rows.sorted {
            ($0.onPredictedFrontier ? 0 : 1, -$0.predicted.gap, $0.flopsPerExample)
                < ($1.onPredictedFrontier ? 0 : 1, -$1.predicted.gap, $1.flopsPerExample)
        }
        return Suggestion(
            task: task, historyTasks: predictor.taskCount, metric: metric,
            recommendation: pick == nil ? "no-distillation" : "student", candidate: pick?.id, candidates: sorted,
            confirm: confirm, similarTasks: predictor.similarTasks(to: meta), bar: bar, qualifying: qualifying.count,
            teacherWarning: meta.teacherWarning)
    }

    /// Whether a candidate that measured its predicted gap would qualify: the gap clears the bar and, with a predicted
    /// standard error of measurement, the chance that its true gap does, Φ((gap − bar) / se), reaches the
    /// recommendation's confidence `level` (`SearchEngine.clearsBar`, as `SearchEngine.confidentlyQualifies` checks a
    /// measured student). It leaves out the adjustment for choosing among candidates, so it is the looser check.
    static func qualifies(_ prediction: CandidatePrediction, bar: Double, level: Double) -> Bool {
        guard prediction.gap >= bar - 1e-12 else { return false }
        return SearchEngine.clearsBar(slack: prediction.gap - bar, se: prediction.differenceSE, level: level)
    }

    /// The recommender's choice among `qualifying` rows on their predictions (`Recommender.cheapest`): the predicted
    /// equally fast (p50 within `speed`'s tolerance of the fastest), then the smallest, the fewest FLOPs; without
    /// predicted latencies, the fewest FLOPs, then the smallest; then the higher predicted gap, the id.
    static func recommended(among qualifying: [Row], speed: SpeedComparison) -> Row? {
        Recommender.cheapest(
            qualifying, speed: speed, latency: \.predicted.latencyMsP50, sizeBytes: \.sizeBytes,
            flops: \.flopsPerExample, value: \.predicted.gap, id: \.id
        )?.chosen
    }
}

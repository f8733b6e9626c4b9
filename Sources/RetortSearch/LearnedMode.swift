import Foundation

/// Which schedule the learned strategy used and why (report.json `search.learned_mode`, an addition to FORMATS.md
/// §4). When the history says little about the task, the learned strategy runs Pareto-aware successive halving
/// instead of its own waves, so it never spends more than halving would and never loses, to a prediction, a student
/// halving would have found: with too few past tasks of the kind (``minimumTasks``), with neighbours farther than
/// ``maximumRelativeDistance`` times the history's typical distance (median over the feasible candidates'
/// predictions, see `CandidatePrediction.relativeDistance`), or with predicted intervals wider than
/// ``maximumRelativeWidth`` times the history's usual (median standard deviation over the feasible candidates against
/// `SearchSettings.historyTypicalSD`, the median of the history's own leave-one-task-out predictions).
///
/// In the learned schedule itself, the distance-widened intervals and the pooled correction
/// (`SearchEngine.correctedPredictions`) keep a candidate whose interval could reach the bar from being ruled out on
/// a prediction; ruling out a candidate that is no cheaper to run than a measured recommendation stays (it cannot
/// change the answer).
public struct LearnedMode: Sendable, Codable, Equatable {
    /// The two schedules.
    public enum Schedule: String, Sendable, Codable {
        /// History-ordered waves, ruling out and screening (LearnedStrategy).
        case learned
        /// Pareto-aware successive halving (HalvingStrategy): the history said too little.
        case halving
        /// Exhaustive (every candidate at full fidelity): the history said too little, and the search had named no
        /// strategy (`SearchSettings.learnedFallback`), so it runs what it would have run without a history.
        case exhaustive
    }

    /// The schedule used.
    public var schedule: Schedule
    /// Why, in words (the evidence either way).
    public var reason: String

    /// A mode.
    public init(schedule: Schedule, reason: String) {
        self.schedule = schedule
        self.reason = reason
    }

    /// Past tasks of the kind below which the learned strategy runs halving (the count from which a search that names
    /// no strategy uses `learned`).
    public static let minimumTasks = 3
    /// Median relative distance of the predictions' neighbours above which the learned strategy runs halving; also the
    /// reach of the history's widening, beyond which a prediction is uninformed (`DistanceWidening.reach`).
    public static let maximumRelativeDistance = 4.0
    /// Median predicted standard deviation, in units of the history's usual one, above which it runs halving.
    public static let maximumRelativeWidth = 3.0

    /// The mode for training runs `groups` under `settings` (its predictions, history task count and z).
    static func choose(groups: [TrainingGroup], settings: SearchSettings) -> LearnedMode {
        let tasks = settings.historyTasks ?? 0
        guard tasks >= minimumTasks else {
            return LearnedMode(
                schedule: .halving,
                reason: "the history holds \(tasks) task(s) of this kind, fewer than \(minimumTasks)")
        }
        let members = groups.flatMap(\.members)
        let predictions = members.compactMap { settings.predictions[$0.id] }
        guard !members.isEmpty, 2 * predictions.count >= members.count else {
            return LearnedMode(
                schedule: .halving,
                reason: "history predicts \(predictions.count) of \(members.count) feasible candidates, fewer than half"
            )
        }
        let distances = predictions.compactMap(\.relativeDistance).sorted()
        let median = distances.isEmpty ? nil : distances[distances.count / 2]
        if let median, median > maximumRelativeDistance {
            return LearnedMode(
                schedule: .halving,
                reason: String(
                    format:
                        "the nearest past trials are %.1f× farther than past tasks are from each other (median; more than %.0f×)",
                    median, maximumRelativeDistance))
        }
        let deviations = predictions.map(\.gapSD).sorted()
        let deviation = deviations[deviations.count / 2]
        if let typical = settings.historyTypicalSD, typical > 0, deviation > maximumRelativeWidth * typical {
            return LearnedMode(
                schedule: .halving,
                reason: String(
                    format:
                        "the predicted intervals are %.1f× wider than the history's own (median sd %.4f against %.4f; more than %.0f×)",
                    deviation / typical, deviation, typical, maximumRelativeWidth))
        }
        let uncertain = groups.filter { SearchEngine.isUncertain($0, settings: settings) }.count
        return LearnedMode(
            schedule: .learned,
            reason: String(
                format:
                    "%d past tasks of this kind; %@%@the predictions place %d of %d training runs on one side of the bar%@",
                tasks,
                median.map { String(format: "nearest past trials at %.1f× the typical distance (median); ", $0) } ?? "",
                settings.historyTypicalSD.map {
                    String(
                        format: "predicted sd %.4f, %.1f× the history's %.4f (median); ", deviation, deviation / $0, $0)
                } ?? "",
                groups.count - uncertain, groups.count,
                settings.historyOffsetSpread.map {
                    String(format: "; once this task's offset is measured, %.2f of each deviation remains (κ)", $0)
                } ?? ""))
    }
}

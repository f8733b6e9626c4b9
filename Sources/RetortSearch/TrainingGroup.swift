import Foundation
import RetortData
import RetortEvals
import RetortNumerics
import RetortStudents

/// A training group: the candidates that share one training run (they differ only in precision).
struct TrainingGroup: Sendable {
    let key: String
    var members: [Candidate]
    let architecture: Architecture
    let featureKey: FeatureKey
    let flops: Int
    let options: TrainingOptions
    let seed: UInt64
    /// Bytes of featurizer state that ship with a member of each precision (numeric standardization statistics, or an
    /// encoder-head's encoder files).
    let stateBytes: [Precision: Int]

    /// A member's planned serialized size: its weights at its precision plus the featurizer state.
    func size(of candidate: Candidate) -> Int {
        architecture.weightBytes(at: candidate.precision) + stateBytes[candidate.precision, default: 0]
    }

    /// The planned size of the run's smallest member (its most compressed precision); `Int.max` for a group with no
    /// members, which candidate spaces never hold.
    var smallestSize: Int { members.map { size(of: $0) }.min() ?? .max }

    /// Whether the run trains over epochs (or rounds) that a schedule can cut: every family but the closed-form
    /// prototype, which finishes in one "epoch" whatever the fidelity.
    var isTrainable: Bool { architecture.family != .prototype }

    /// The full-fidelity epochs (or rounds) of the trainable runs among `groups`.
    static func trainableEpochs(_ groups: [TrainingGroup]) -> [Int] {
        groups.filter(\.isTrainable).map(\.options.epochs)
    }
}

/// What one worker does for one group in one rung (handed to a ``TrialExecutor``).
public struct RungWork: Sendable {
    let group: TrainingGroup
    let features: FeatureSet
    let alive: [Candidate]
    let targetEpochs: Int
    let rung: Int
    let session: TrainingSession?
    let checkpoint: URL?
    let deadline: UInt64
    let evaluator: Evaluator
    let teacherValidation: Evaluation
    let metric: Metric
    let reported: [Metric]
    /// The search seed (the validation evaluator's resamples are drawn from `seed + 1`).
    let seed: UInt64
    /// Bootstrap resamples of the validation evaluator.
    let resamples: Int
}

/// What a worker returns.
public struct RungOutput: Sendable {
    let groupKey: String
    /// The trained session; nil when the rung was replayed from the journal.
    let session: TrainingSession?
    let records: [JournalRecord]
    let cutByBudget: Bool
    let epochsTrained: Int
}

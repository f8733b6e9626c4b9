import Foundation
import RetortData
import RetortStudents

/// The expanded candidate space of a task: size, FLOPs and feasibility of every candidate, known before training,
/// and the training groups (candidates that share one training run and differ only in precision).
struct CandidateSpace {
    /// Candidates that will train, grouped by training run, in catalog order.
    var groups: [TrainingGroup] = []
    /// Candidates decided before training (over a limit, or too large for this machine), by id.
    var blocked: [String: TrialResult] = [:]
    /// Every candidate's record before training (metrics empty), in catalog order.
    var all: [TrialResult] = []

    init(
        candidates: [Candidate], task: TaskData, constraints: Constraints, seed: UInt64,
        features: (FeatureKey) -> FeatureSet
    ) {
        let classes = task.vocabulary.count
        let memoryBytes = Double(ProcessInfo.processInfo.physicalMemory)
        for candidate in candidates {
            let featureSet = features(candidate.featureKey)
            let architecture = candidate.architecture(
                kind: task.kind,
                inputDimension: candidate.family == .encoderHead
                    ? featureSet.featurizer.outputDimension : task.inputDimension, classes: classes)
            let flops =
                architecture.flopsPerExample(meanNonzeros: featureSet.train.meanNonzerosPerRow) + featureSet.extraFlops
            let size =
                architecture.weightBytes(at: candidate.precision) + featureSet.stateBytes(at: candidate.precision)
            var record = TrialResult(
                id: candidate.id, family: candidate.family, config: candidate.config, precision: candidate.precision,
                params: architecture.parameterCount + featureSet.extraParams, sizeBytes: size, flopsPerExample: flops,
                metrics: [:], fidelity: 0,
                status: .complete, onFrontier: false)
            var blockedBy: (TrialStatus, String)?
            if let reason = featureSet.unavailable {
                blockedBy = (.skipped, reason)
            } else if let limit = constraints.maxModelBytes, size > limit {
                blockedBy = (.skipped, "size \(ByteSize.format(size)) > limit \(ByteSize.format(limit)); not trained")
            } else if let limit = constraints.maxFlops, flops > limit {
                blockedBy = (.skipped, "\(flops) FLOPs per example > limit \(limit); not trained")
            } else if Double(architecture.parameterCount) * 16 > memoryBytes / 2 {
                // Training holds the weights four times (weights, two Adam moments, the best copy).
                blockedBy = (
                    .failed,
                    String(
                        format:
                            "needs about %.1f GB to train; this machine has %.1f GB: use fewer buckets or narrower layers",
                        Double(architecture.parameterCount) * 16 / 1e9, memoryBytes / 1e9)
                )
            }
            if let (status, reason) = blockedBy {
                record.status = status
                record.reason = reason
                blocked[candidate.id] = record
                all.append(record)
                continue
            }
            all.append(record)
            if let index = groups.firstIndex(where: { $0.key == candidate.trainingKey }) {
                groups[index].members.append(candidate)
            } else {
                groups.append(
                    TrainingGroup(
                        key: candidate.trainingKey, members: [candidate], architecture: architecture,
                        featureKey: candidate.featureKey, flops: flops, options: candidate.training,
                        seed: seed ^ (UInt64(SearchFingerprint.hash(candidate.trainingKey), radix: 16) ?? 0),
                        stateBytes: Dictionary(
                            uniqueKeysWithValues: Precision.allCases.map { ($0, featureSet.stateBytes(at: $0)) })))
            }
        }
    }
}

extension SearchEngine {
    /// The expanded candidate space of `task` under `settings`: every candidate with its params, size and FLOPs;
    /// those that cannot train carry status `skipped` or `failed` and the reason, the rest status `complete` with no
    /// metrics (they are feasible, nothing is trained).
    public static func candidateSpace(task: TaskData, settings: SearchSettings) -> [TrialResult] {
        let candidates = settings.catalog.candidates(for: task)
        var cache = FeatureSet.encoderSets(
            task: task, keys: Array(Set(candidates.map(\.featureKey))),
            precisions: Dictionary(grouping: candidates, by: \.featureKey).mapValues { Set($0.map(\.precision)) },
            plan: true)
        return CandidateSpace(
            candidates: candidates, task: task, constraints: settings.constraints,
            seed: settings.seed,
            features: { key in
                if let cached = cache[key] { return cached }
                let computed = FeatureSet(task: task, key: key)
                cache[key] = computed
                return computed
            }
        ).all
    }
}

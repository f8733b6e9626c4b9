import Foundation
import RetortData

/// Every candidate's input features for every split, computed once per feature key before anything trains (the
/// search's second phase). Encoder-head keys share one encoder pass per (folder, max length).
struct Featurization: Sendable {
    /// Featurized splits by key.
    let sets: [FeatureKey: FeatureSet]
    /// Seconds the encoder passes took, each pass counted once (0 without encoder-head candidates).
    let encoderSeconds: Double

    /// Featurizes `task` for `candidates`, announcing the phase (and the encoder seconds when there are any).
    init(task: TaskData, candidates: [Candidate], events: @Sendable (SearchEvent) throws -> Void) throws {
        try events(.phase("featurize \(task.train.count)/\(task.validation.count)/\(task.test.count) rows"))
        let keys = Set(candidates.map(\.featureKey))
        var featureSets = FeatureSet.encoderSets(
            task: task, keys: Array(keys),
            precisions: Dictionary(grouping: candidates, by: \.featureKey).mapValues { Set($0.map(\.precision)) },
            plan: false)
        // One pass per (folder, max length) group: every key of a group carries that group's seconds.
        let encoderSeconds = Dictionary(
            featureSets.compactMap { key, set in key.encoder.map { ("\($0.path)#\($0.maxLength)", set.seconds) } },
            uniquingKeysWith: { first, _ in first }
        ).values.reduce(0, +)
        if encoderSeconds > 0 {
            try events(
                .phase(
                    String(format: "encoder vectors for every split and depth: %.1f s, counted once", encoderSeconds))
            )
        }
        for key in keys where key.encoder == nil {
            featureSets[key] = FeatureSet(task: task, key: key)
        }
        sets = featureSets
        self.encoderSeconds = encoderSeconds
    }

    /// The featurized splits of `key` (computed on the spot for a key not featurized up front).
    func features(_ key: FeatureKey, task: TaskData) -> FeatureSet {
        sets[key] ?? FeatureSet(task: task, key: key)
    }
}

import Foundation
import RetortData
import RetortNumerics
import RetortStudents

extension SearchRun {
    /// After a rung: checkpoints the training runs that go on (and the finished ones, for export) and forgets the
    /// pruned ones. A crash before a checkpoint loses only compute: training is deterministic, so retraining reaches
    /// the same state.
    mutating func checkpoint(_ outputs: [RungOutput], decided: Set<String>) throws {
        let aliveGroups = Set(alive.compactMap { member[$0]?.group.key })
        let completeGroups = Set(
            decided.filter { trials[$0]?.status == .complete }.compactMap { member[$0]?.group.key })
        for output in outputs where output.epochsTrained > 0 {
            let key = output.groupKey
            guard aliveGroups.contains(key) || completeGroups.contains(key) else {
                sessions[key] = nil
                continue
            }
            if let storage, let session = sessions[key] {
                try session.checkpointData().write(
                    to: storage.checkpoints.appendingPathComponent(SearchEngine.checkpointName(key)), options: .atomic)
                // A finished run is read back from its (small, best-weights-only) checkpoint when needed.
                if !aliveGroups.contains(key) { sessions[key] = nil }
            }
        }
    }

    /// The exported form of candidate `id` trained for `epochs` (see ``SearchEngine/bundleFor``).
    func bundle(_ id: String, epochs: Int) throws -> ModelBundle? {
        guard let (group, candidate) = member[id] else { return nil }
        return try SearchEngine.bundleFor(
            candidate, group: group, features: features(group.featureKey), sessions: sessions, storage: storage,
            labels: task.vocabulary.labels, epochs: epochs, task: task)
    }
}

extension SearchEngine {
    /// The exported form of `candidate`: its group's best weights at the candidate's precision, from memory, from
    /// its checkpoint, or (when an interruption came before the checkpoint) retrained to its journaled `epochs`.
    static func bundleFor(
        _ candidate: Candidate, group: TrainingGroup, features: FeatureSet, sessions: [String: TrainingSession],
        storage: RunStorage?, labels: [String], epochs: Int, task: TaskData
    ) throws -> ModelBundle {
        var best: StudentModel
        let checkpoint = storage?.checkpoints.appendingPathComponent(checkpointName(group.key))
        if let session = sessions[group.key] {
            best = session.bestModel
        } else if let checkpoint, let data = FileManager.default.contents(atPath: checkpoint.path),
            let restored = try? TrainingSession(
                restoring: data, file: checkpoint.lastPathComponent, architecture: group.architecture,
                train: emptySplit(group), options: group.options),
            restored.epochsRun == epochs
        {
            best = restored.bestModel
        } else {
            let (train, validation) = features.trainingSplits(of: task)
            var session = TrainingSession(
                architecture: group.architecture, train: train, options: group.options, seed: group.seed)
            try session.train(untilEpoch: epochs, train: train, validation: validation)
            best = session.bestModel
        }
        best = best.quantized(to: candidate.precision)
        return ModelBundle(
            candidate: candidate.id, model: best, featurizer: features.featurizer(at: candidate.precision),
            labels: labels)
    }

    /// A one-row placeholder split (restoring a checkpoint needs the split's shape only).
    static func emptySplit(_ group: TrainingGroup) -> TrainingSplit {
        let probabilities = Matrix(rows: 1, columns: group.architecture.outputDimension, repeating: 1)
        return TrainingSplit(
            features: .dense(Matrix(rows: 1, columns: 1)), teacherProbabilities: probabilities, hardLabels: [0])
    }

    /// A training group's checkpoint file name.
    static func checkpointName(_ key: String) -> String { "\(key).safetensors" }
}

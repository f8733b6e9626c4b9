import Foundation
import RetortData

extension SearchRun {
    /// When the budget ran out: every racing candidate that trained is decided as it stands, and those that never
    /// started are pruned (and announced). Returns the decided candidates that trained.
    mutating func settleAfterBudget() throws -> [String] {
        let decided = alive.filter { latest[$0] != nil }
        let untouched = alive.filter { latest[$0] == nil }
        alive.removeAll()
        for id in untouched.sorted() {
            guard let (group, candidate) = member[id] else { continue }
            trials[id] = TrialResult(
                id: id, family: candidate.family, config: candidate.config, precision: candidate.precision,
                params: group.architecture.parameterCount, sizeBytes: group.size(of: candidate),
                flopsPerExample: group.flops, metrics: [:], fidelity: 0, status: .pruned, onFrontier: false,
                reason: String(format: "the budget of %.0f s ran out before it started", settings.budgetSeconds))
            if let trial = trials[id] { try announce(trial) }
        }
        return Array(decided)
    }

    /// Records the decided candidates `decided` of rung `rung` as trials: complete at full fidelity, else pruned with
    /// the budget's reason (when it cut them) or the strategy's.
    mutating func recordDecided(_ decided: Set<String>, rung: Int, strategy: any RungStrategy) {
        for id in decided.sorted() {
            guard let (group, candidate) = member[id], let record = latest[id] else { continue }
            var trial = TrialResult(
                id: id, family: candidate.family, config: candidate.config, precision: candidate.precision,
                params: group.architecture.parameterCount, sizeBytes: record.sizeBytes ?? group.size(of: candidate),
                flopsPerExample: record.flops ?? group.flops, metrics: record.metrics ?? [:],
                differenceToTeacher: record.differenceToTeacher, fidelity: record.fidelity ?? 0, status: .complete,
                onFrontier: false, epochsRun: record.epochs, bestEpoch: record.bestEpoch,
                trainSeconds: trainSeconds[group.key])
            if (record.fidelity ?? 0) < 1 {
                trial.status = .pruned
                trial.reason =
                    record.cutByBudget == true || budgetHit
                    ? String(
                        format: "cut by the budget of %.0f s at fidelity %.3f (rung %d of %d)", settings.budgetSeconds,
                        record.fidelity ?? 0, rung + 1, strategy.rungCount)
                    : strategy.prunedReason(record, rung: rung, settings: settings)
            }
            trials[id] = trial
        }
    }
}

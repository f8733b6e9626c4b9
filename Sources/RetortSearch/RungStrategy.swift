import Foundation
import RetortData

/// What one rung trains: the training runs and the share of each run's epochs they train to.
struct RungPlan {
    /// Training runs to train (with at least one member still racing); empty ends the search.
    var groups: [TrainingGroup]
    /// Share of each run's epochs to reach, in (0, 1].
    var fidelity: Double
}

/// A search schedule: how many rungs, which training runs each rung trains and at what fidelity, and which candidates
/// a finished rung decides. ``SearchStrategy`` names the implementations: ``ExhaustiveStrategy`` (every run once at
/// full fidelity), ``HalvingStrategy`` (Pareto-aware successive halving, see `HalvingStrategy.survivors`) and
/// ``LearnedStrategy`` (history-ordered waves, ruling out and screening, invented sizes).
///
/// `SearchEngine.run` calls `plan`, trains the plan (RungTraining), then, unless the budget ran out, `decide`.
protocol RungStrategy {
    /// Rungs at most (the search may stop earlier).
    var rungCount: Int { get }

    /// The training runs rung `rung` trains. Strategies that rule candidates out before training decide them here.
    mutating func plan(rung: Int, run: inout SearchRun) throws -> RungPlan

    /// After rung `rung` finished within the budget: the alive candidates it decides (removed from `run.alive`).
    mutating func decide(rung: Int, run: inout SearchRun) -> [String]

    /// Why a candidate decided below full fidelity (and not cut by the budget) was pruned.
    func prunedReason(_ record: JournalRecord, rung: Int, settings: SearchSettings) -> String

    /// Why the search stopped when the budget did not run out and some candidate was feasible.
    func stoppedBecause(feasible: Int, settings: SearchSettings) -> String

    /// The learned strategy's schedule and why (nil for the others).
    var learnedMode: LearnedMode? { get }
}

extension RungStrategy {
    var learnedMode: LearnedMode? { nil }

    /// Halving's wording: the rung the candidate was pruned after and its fidelity.
    func prunedReason(_ record: JournalRecord, rung: Int, settings: SearchSettings) -> String {
        String(
            format: "pruned after rung %d of %d at fidelity %.3f (not among the best 1/%d)", rung + 1, rungCount,
            record.fidelity ?? 0, settings.eta)
    }

    /// Every training run with a member still racing, at the fidelity of rung `rung` of `rungCount`: η^(r − (R − 1)).
    func racingPlan(rung: Int, run: SearchRun) -> RungPlan {
        RungPlan(
            groups: run.groups.filter { group in group.members.contains { run.alive.contains($0.id) } },
            fidelity: pow(Double(run.settings.eta), Double(rung - (rungCount - 1))))
    }
}

extension SearchStrategy {
    /// The schedule that implements this strategy for `run`'s candidate space.
    func schedule(for run: SearchRun) -> any RungStrategy {
        switch self {
        case .exhaustive: ExhaustiveStrategy()
        case .halving: HalvingStrategy(run: run)
        case .learned: LearnedStrategy(run: run)
        }
    }
}

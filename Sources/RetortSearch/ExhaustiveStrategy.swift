import Foundation
import RetortData

/// Every feasible candidate trained once at full fidelity: one rung, nothing pruned (the reference the other
/// strategies are measured against).
struct ExhaustiveStrategy: RungStrategy {
    let rungCount = 1

    func plan(rung: Int, run: inout SearchRun) throws -> RungPlan { racingPlan(rung: rung, run: run) }

    /// Every candidate that trained is decided.
    func decide(rung: Int, run: inout SearchRun) -> [String] {
        let decided = Array(run.alive)
        run.alive.removeAll()
        return decided
    }

    func stoppedBecause(feasible: Int, settings: SearchSettings) -> String { "every feasible candidate was trained" }
}

import Foundation
import RetortData

/// Pareto-aware successive halving (Jamieson & Talwalkar 2016): rung r of R trains every racing run to
/// η^(r − (R − 1)) of its epochs; after each rung but the last the best 1/η go on (``survivors(rung:run:)``).
struct HalvingStrategy: RungStrategy {
    let rungCount: Int

    /// The rung count for `run`'s space: as many as `maxRungs` allows while η^r stays within both the feasible
    /// candidate count and the shortest trainable run's epochs. Closed-form students (prototype, one "epoch") finish in
    /// the first rung whatever the schedule; they do not shrink it (with them counted, the default catalog's halving
    /// had a single rung: it was exhaustive).
    init(run: SearchRun) {
        let settings = run.settings
        let minimumEpochs = TrainingGroup.trainableEpochs(run.groups).min() ?? 1
        var r = 0
        while r + 2 <= settings.maxRungs && pow(Double(settings.eta), Double(r + 1)) <= Double(run.feasible)
            && pow(Double(settings.eta), Double(r + 1)) <= Double(minimumEpochs)
        {
            r += 1
        }
        rungCount = r + 1
    }

    func plan(rung: Int, run: inout SearchRun) throws -> RungPlan {
        let plan = racingPlan(rung: rung, run: run)
        if !plan.groups.isEmpty && rungCount > 1 {
            try run.events(
                .phase(
                    String(
                        format: "rung %d/%d at fidelity %.3f: %d candidates", rung + 1, rungCount, plan.fidelity,
                        run.alive.count)))
        }
        return plan
    }

    /// After the last rung every candidate is decided; before it, those that are not ``survivors(rung:run:)``.
    func decide(rung: Int, run: inout SearchRun) -> [String] {
        guard rung < rungCount - 1 else {
            let decided = Array(run.alive)
            run.alive.removeAll()
            return decided
        }
        let surviving = survivors(run: run)
        var decided: [String] = []
        for id in run.alive.sorted()
        where run.latest[id]?.finished == true || !surviving.contains(run.latest[id]?.group ?? "") {
            run.alive.remove(id)
            decided.append(id)
        }
        return decided
    }

    /// How halving picks survivors: finished candidates are complete (no more training would change them); of the rest,
    /// the best 1/η (rounded up) by Pareto rank over (quality, FLOPs, size), then crowding distance, go on. Precision
    /// variants share their training run, so a surviving run carries all its alive variants along at no extra cost.
    /// Returns the surviving group keys.
    func survivors(run: SearchRun) -> Set<String> {
        let racing = run.alive.filter { run.latest[$0]?.finished != true }.sorted()
        let points = racing.compactMap { id -> FrontierPoint? in
            guard let (group, candidate) = run.member[id] else { return nil }
            return FrontierPoint(
                id: id, quality: run.latest[id]?.metrics?[run.metric.rawValue]?.value ?? -.infinity, latencyTier: 0,
                flops: Double(group.flops), size: Double(group.size(of: candidate)))
        }
        let keep = Self.places(racing: racing.count, eta: run.settings.eta)
        return Set(ParetoRanking.best(keep, of: points).compactMap { run.latest[$0.id]?.group })
    }

    /// How many of `racing` runs go on after a rung: the best 1/η, rounded up (η below 1 counts as 1). Halving's rungs,
    /// the learned screen's steps (``SearchEngine/screenStep(_:quality:finished:eta:)``) and structured halving share it;
    /// each ranks the runs its own way.
    static func places(racing: Int, eta: Int) -> Int {
        Int((Double(racing) / Double(max(eta, 1))).rounded(.up))
    }

    func stoppedBecause(feasible: Int, settings: SearchSettings) -> String { "the last rung finished" }
}

import Foundation
import RetortData
import RetortEvals
import RetortStudents

/// Pareto-aware successive halving for a structured search (`--strategy halving`), the label search's rule on
/// structured candidates: rung r of R trains every racing training run at fidelity η^(r − (R − 1)) and scores its
/// candidates on validation; after each rung but the last, the best 1/η of the racing training runs (rounded up) go on,
/// ordered by their best candidate's Pareto rank over (quality, FLOPs, size), then crowding distance; the rest are
/// pruned with their screening scores. The last rung is the exhaustive search's full training, scoring and timing.
///
/// Runs, not candidates, are counted: every run carries its precision variants, whose smaller copies rank high on
/// size alone, so keeping the best 1/η of the candidates kept nearly every run (3 of 4 on the tests' synthetic task,
/// which then trained more epochs than the exhaustive search).
///
/// Fidelity is what a run learns from: a `fields` run trains that share of its epochs, an `slm` run that share of its
/// training rows. Every screened candidate answers all of validation: scored on a seeded third of it instead,
/// ha-extract-en's best fields run tied with smaller ones and was pruned (its cascade cost 3× as much per request),
/// though a decoder student's answers are then most of its screen. `nearest` is an index (nothing to screen): it goes
/// straight to the last rung, as closed-form label students finish in the first.
struct StructuredHalving {
    /// The rungs, the last one at full fidelity.
    let rungCount: Int
    /// η.
    let eta: Int

    /// Whether `candidate`'s training run races (it learns, and its base model is there).
    static func races(_ candidate: StructuredCandidate) -> Bool {
        switch candidate.family {
        case .fields: true
        case .slm: !candidate.isMissingBaseModel
        default: false
        }
    }

    /// As many rungs as `settings.maxRungs` allows while η^r stays within the racing training runs and the fewest
    /// epochs of a fields run (an slm run's rows shrink instead).
    init(candidates: [StructuredCandidate], settings: SearchSettings) {
        eta = settings.eta
        let racing = Dictionary(grouping: candidates.filter(Self.races), by: \.trainingKey).values.compactMap(\.first)
        let minimumEpochs = racing.filter { $0.family == .fields }.map(\.epochs).min() ?? Int.max
        var r = 0
        while r + 2 <= settings.maxRungs && pow(Double(eta), Double(r + 1)) <= Double(racing.count)
            && pow(Double(eta), Double(r + 1)) <= Double(minimumEpochs)
        {
            r += 1
        }
        rungCount = settings.strategy == .halving ? r + 1 : 1
    }

    /// The fidelity of rung `rung`.
    func fidelity(_ rung: Int) -> Double { pow(Double(eta), Double(rung - (rungCount - 1))) }

    /// What the screening rungs did.
    struct Screening {
        /// Training runs whose every candidate is decided (pruned, or failed), so the last rung leaves them.
        var settled: Set<String> = []
        /// Candidate-epochs spent (an slm run's epochs weighted by its share of rows).
        var epochs = 0.0
        /// Training runs trained or taken back from the journal.
        var trainingRuns = 0
        /// Whether the budget ran out during a rung.
        var budgetHit = false
    }

    /// Runs every rung but the last over the racing training runs of `order`; pruned and failed candidates go to
    /// `decide`. A resumed run takes each run's scores at a rung back from the journal instead of training it again.
    func screen(
        task: StructuredTaskData, settings: SearchSettings, groups: [String: [StructuredCandidate]], order: [String],
        metric: Metric, validation: SplitEvaluator<Structured>, journal: StructuredJournal?, sample: [String],
        elapsed: () -> Double, announce: (SearchEvent) -> Void, decide: (TrialResult) throws -> Void
    ) throws -> Screening {
        var result = Screening()
        var racing = order.filter { groups[$0]?.first.map(Self.races) ?? false }
        for rung in 0..<(rungCount - 1) {
            let fidelity = fidelity(rung)
            let ids = racing.flatMap { groups[$0]?.map(\.id) ?? [] }
            announce(
                .phase(
                    String(
                        format: "rung %d/%d at fidelity %.3f: %d candidates", rung + 1, rungCount, fidelity, ids.count))
            )
            try journal?.queue(rung: rung, fidelity: fidelity, candidates: ids)
            var scored: [String: TrialResult] = [:]
            // Runs train in waves of `workers` on the executor, as the last rung's do.
            var wave: [String] = []
            func trainWave() throws {
                guard !wave.isEmpty else { return }
                let outputs = try settings.executor.trainStructured(
                    wave.map { groups[$0] ?? [] }, fidelity: fidelity, task: task, seed: settings.seed)
                for (key, run) in zip(wave, outputs) {
                    let members = groups[key] ?? []
                    if let error = run.error {
                        for candidate in members { try decide(StructuredSearch.failure(candidate, error)) }
                        result.settled.insert(key)
                        continue
                    }
                    result.trainingRuns += 1
                    let epochs = members[0].family == .slm ? run.epochsRun * fidelity : run.epochsRun
                    result.epochs += epochs
                    for (candidate, answered) in zip(members, run.members) {
                        // A student that fails to answer fails alone.
                        let student: StructuredStudent
                        let evaluation: Evaluation
                        do {
                            let output = try answered.get()
                            student = output.student
                            evaluation = try validation.evaluate(output.answers.map { Optional($0.answer) })
                        } catch {
                            try decide(StructuredSearch.failure(candidate, error))
                            continue
                        }
                        let trial = TrialResult(
                            id: candidate.id, family: candidate.family, config: candidate.config,
                            precision: candidate.precision, params: student.params, sizeBytes: student.sizeBytes,
                            flopsPerExample: student.flopsPerExample(sample: sample),
                            metrics: Dictionary(
                                uniqueKeysWithValues: evaluation.estimates.map { ($0.key.rawValue, $0.value) }),
                            fidelity: fidelity, status: .complete, onFrontier: false, epochsRun: Int(epochs.rounded()),
                            trainSeconds: run.seconds)
                        try journal?.screened(trial, rung: rung)
                        scored[candidate.id] = trial
                    }
                    if !members.contains(where: { scored[$0.id] != nil }) { result.settled.insert(key) }
                }
                wave.removeAll()
            }
            for key in racing {
                if wave.count >= max(1, settings.workers) { try trainWave() }
                guard elapsed() < settings.budgetSeconds else {
                    result.budgetHit = true
                    break
                }
                let members = groups[key] ?? []
                if let restored = journal?.screened(members, rung: rung) {
                    for trial in restored { scored[trial.id] = trial }
                    result.trainingRuns += 1
                    result.epochs += Double(restored.first?.epochsRun ?? 0)
                    continue
                }
                try journal?.started(members, rung: rung)
                wave.append(key)
            }
            try trainWave()
            // The best 1/η of the scored runs go on; the rest are pruned. Runs the budget left unscored stay (the
            // last rung decides them: the budget has run out).
            let points = scored.values.sorted { $0.id < $1.id }.map {
                FrontierPoint(
                    id: $0.id, quality: $0.metrics[metric.rawValue]?.value ?? -.infinity, latencyTier: 0,
                    flops: Double($0.flopsPerExample), size: Double($0.sizeBytes))
            }
            let runOf = Dictionary(
                uniqueKeysWithValues: groups.flatMap { key, members in members.map { ($0.id, key) } })
            let scoredRuns = Set(points.compactMap { runOf[$0.id] })
            let keep = HalvingStrategy.places(racing: scoredRuns.count, eta: eta)
            var surviving: [String] = []
            for point in ParetoRanking.best(points.count, of: points) where surviving.count < keep {
                if let run = runOf[point.id], !surviving.contains(run) { surviving.append(run) }
            }
            for group in racing {
                let members = groups[group] ?? []
                let decided = members.compactMap { scored[$0.id] }
                guard !decided.isEmpty, !surviving.contains(group) else { continue }
                result.settled.insert(group)
                for var trial in decided {
                    trial.status = .pruned
                    trial.reason = String(
                        format: "pruned after rung %d of %d at fidelity %.3f (not among the best 1/%d)", rung + 1,
                        rungCount, fidelity, eta)
                    try decide(trial)
                }
            }
            racing = racing.filter { group in
                !result.settled.contains(group) && groups[group]?.contains { scored[$0.id] != nil } == true
            }
            if result.budgetHit { break }
        }
        return result
    }
}

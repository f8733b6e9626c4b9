import Foundation
import RetortData

/// Guided by history (`SearchSettings.predictions`): training runs go in waves, in `learnedOrder`; before each wave,
/// what this task measured corrects the predictions and runs that can no longer change the recommendation are ruled
/// out untrained (``ruleOut(rung:current:adjusted:run:)``). Runs the corrected predictions cannot place are screened
/// together on halving's ladder of fidelities, one step deeper (η^(−R) … 1/η, R halving's rung count), the best 1/η
/// going on at each step (``decideScreen(run:)``), so a screen never costs more than halving would spend on the same
/// runs. When the queue runs dry, sizes between frontier neighbours are invented (InventedCandidates) and trained in
/// one more wave when they could change the recommendation. The rules themselves are in LearnedSchedule.
///
/// When the history says little about the task (``LearnedMode``), none of this happens: the search is Pareto-aware
/// successive halving (``HalvingStrategy``), so it spends no more than halving and finds what halving finds; or, when
/// the search named no strategy and the history chose `learned`, the exhaustive search it would have run.
struct LearnedStrategy: RungStrategy {
    let rungCount: Int
    /// Learned waves, or halving when the history says too little.
    let mode: LearnedMode
    /// The schedule every call goes to when the history says too little: halving, or exhaustive for a search that
    /// named no strategy (`SearchSettings.learnedFallback`).
    var fallback: (any RungStrategy)?
    /// Training runs still queued, in priority order.
    var pending: [TrainingGroup]
    /// The wave of the current rung.
    var wave: [TrainingGroup] = []
    /// Whether the current wave is a low-fidelity screen.
    var screening = false
    /// The screen's fidelities, lowest first: halving's rungs but the last (at least 1/η).
    let ladder: [Double]
    /// The step of the ladder the current or next screen is at.
    var ladderStep = 0
    /// Screened runs that went on and are screened again at the next step.
    var climbing: [TrainingGroup] = []
    /// Group keys screened already (a run is screened at most once).
    var screened = Set<String>()
    /// Whether the invented candidates have been made.
    var invented = false
    /// What halving's schedule would spend on this search's runs (``halvingBudget(groups:rungs:eta:)``): sizes beyond
    /// the catalog are invented only while the search stays within it.
    var halvingBudget = 0.0
    /// Runs ruled out only because they are no cheaper to run and no smaller than the current recommendation: they are
    /// decided when the queue runs dry, against the recommendation as the final one checks it
    /// (``verifyParked(adjusted:run:)``), since the current one may not survive that check.
    var parked: [TrainingGroup] = []
    /// The current recommendations runs were parked against.
    var parkedAgainst = Set<String>()
    /// Students the final check found not to qualify: never the current recommendation again.
    var rejected = Set<String>()
    /// Parked runs sent back to the queue: screened on halving's ladder like uncertain runs, so that a failed check
    /// costs what halving would spend on them, not a full run each.
    var returned = Set<String>()
    /// Feasible candidates ruled out untrained.
    var notTrained = 0
    /// Candidates screened at low fidelity and pruned.
    var screenedOut = 0
    /// The phase line naming the run sent on beside a screen's best where the screen would end
    /// (``SearchEngine/smallerContender(_:goingOn:)``), reported when the next rung is planned.
    var contenderNote: String?

    /// The schedule of `run`: a rung per training run and ladder step at most, plus eight for invented sizes.
    init(run: SearchRun) {
        var mode = LearnedMode.choose(groups: run.groups, settings: run.settings)
        let halvingRungs = HalvingStrategy(run: run).rungCount
        ladder = Self.ladder(
            halvingRungs: halvingRungs, eta: run.settings.eta,
            epochs: TrainingGroup.trainableEpochs(run.groups))
        if mode.schedule != .learned {
            let schedule: any RungStrategy
            if run.settings.learnedFallback == .exhaustive {
                mode.schedule = .exhaustive
                schedule = ExhaustiveStrategy()
            } else {
                schedule = HalvingStrategy(run: run)
            }
            self.mode = mode
            fallback = schedule
            rungCount = schedule.rungCount
            pending = []
        } else {
            self.mode = mode
            rungCount = max(1, run.groups.count) * ladder.count + 8
            halvingBudget = Self.halvingBudget(groups: run.groups, rungs: halvingRungs, eta: run.settings.eta)
            pending = SearchEngine.learnedOrder(run.groups, settings: run.settings)
        }
    }

    var learnedMode: LearnedMode? { mode }

    /// Screen fidelities for a search whose halving would run `halvingRungs` rungs (R), lowest first: halving's rungs
    /// but the last, η^(s − (R − 1)) for s = 0 … R − 2 (1/η alone when halving has a single rung), and, when R ≥ 2 and
    /// every trainable run would still train at least ``minimumScreenEpochs`` there, one step below halving's first,
    /// η^(−R). The deeper step is what Hyperband's most aggressive bracket adds: a screen holds only runs the predictions
    /// cannot place, most of which it prunes, and those cost 1/η of what halving's first rung would. With fewer
    /// epochs the step would rank runs on their first pass over the data, which can prune the run halving would keep.
    /// `epochs`: the full-fidelity epochs (or rounds) of the search's trainable runs.
    static func ladder(halvingRungs: Int, eta: Int, epochs: [Int]) -> [Double] {
        let steps = max(1, halvingRungs - 1)
        let rungs = (0..<steps).map { pow(Double(eta), Double($0 - steps)) }
        let deeper = pow(Double(eta), Double(-halvingRungs))
        guard halvingRungs >= 2, !epochs.isEmpty,
            epochs.allSatisfy({ Int((deeper * Double($0)).rounded(.up)) >= minimumScreenEpochs })
        else { return rungs }
        return [deeper] + rungs
    }

    /// The fewest epochs (or rounds) a screen step below halving's first rung trains a run for.
    static let minimumScreenEpochs = 2

    /// The candidate-epochs halving's schedule plans for `groups` over `rungs` rungs: rung r trains ⌈n/η^r⌉ runs from
    /// fidelity η^(r − 1 − (R − 1)) to η^(r − (R − 1)) of the mean epochs of the trainable runs (a resumed run pays
    /// only the difference), and each closed-form run (prototype) one epoch. Early stopping makes halving spend a
    /// little less; the survivors' own epochs may differ from the mean.
    static func halvingBudget(groups: [TrainingGroup], rungs: Int, eta: Int) -> Double {
        let epochs = TrainingGroup.trainableEpochs(groups)
        return halvingBudget(epochs: epochs, closedForm: groups.count - epochs.count, rungs: rungs, eta: eta)
    }

    /// ``halvingBudget(groups:rungs:eta:)`` from the trainable runs' `epochs` and the count of closed-form runs.
    static func halvingBudget(epochs runEpochs: [Int], closedForm: Int, rungs: Int, eta: Int) -> Double {
        guard !runEpochs.isEmpty else { return Double(closedForm) }
        let epochs = Double(runEpochs.reduce(0, +)) / Double(runEpochs.count)
        let r = max(1, rungs)
        var (total, runs, previous) = (0.0, Double(runEpochs.count), 0.0)
        for rung in 0..<r {
            let fidelity = pow(Double(eta), Double(rung - (r - 1)))
            total += runs * (fidelity - previous) * epochs
            previous = fidelity
            runs = (runs / Double(eta)).rounded(.up)
        }
        return total + Double(closedForm)
    }

    /// Each trial's training run (its group key), so precision variants count as one residual.
    static func trainingRun(_ run: SearchRun) -> (String) -> String {
        let member = run.member
        return { member[$0]?.group.key ?? $0 }
    }

    mutating func plan(rung: Int, run: inout SearchRun) throws -> RungPlan {
        if var fallback {
            if rung == 0 {
                try run.events(.phase("learned strategy runs \(mode.schedule.rawValue): \(mode.reason)"))
            }
            defer { self.fallback = fallback }
            return try fallback.plan(rung: rung, run: &run)
        }
        if let contenderNote {
            try run.events(.phase(contenderNote))
            self.contenderNote = nil
        }
        // Rule out what cannot change the current recommendation, then take the next wave. The current one is chosen
        // among the students that qualify with the confidence the final recommendation asks for, so nothing is ruled
        // out against a student that only its point estimate lets through.
        let constraints = run.settings.constraints
        let rejected = rejected
        let current = Recommender.recommend(
            trials: run.candidates.compactMap { run.trials[$0.id] }.filter {
                !rejected.contains($0.id) && SearchEngine.confidentlyQualifies($0, constraints: constraints)
            }, metric: run.metric.rawValue, teacherValue: run.teacher.value, constraints: constraints
        ).candidate.flatMap { run.trials[$0] }
        // What this task has shown so far corrects the predictions (a shared offset and spread): the trained runs'
        // residuals correct the trained runs' predictions, and the closed-form runs' their own
        // (``SearchEngine/correctedByKind(_:measured:isTrained:run:floor:offsetSpread:)``).
        var adjusted = run.settings
        let member = run.member
        let (residuals, corrected) = SearchEngine.correctedByKind(
            run.settings.predictions, measured: run.trials, isTrained: { member[$0]?.group.isTrainable ?? true },
            run: Self.trainingRun(run), floor: 0.01, offsetSpread: run.settings.historyOffsetSpread ?? 1)
        if rung > 0 {
            adjusted.predictions = corrected
            try ruleOut(rung: rung, current: current, adjusted: adjusted, run: &run)
        }
        if !climbing.isEmpty {
            // The survivors of the last screen step go on to the next one.
            wave = climbing
            climbing = []
            screening = true
            let fidelity = ladder[ladderStep]
            try run.events(
                .phase(
                    String(
                        format: "screening step %d/%d: %d training run(s) at fidelity %.3f, the best 1/%d go on: %@",
                        ladderStep + 1, ladder.count, wave.count, fidelity, run.settings.eta,
                        wave.flatMap { $0.members.map(\.id) }.joined(separator: ", "))))
            return RungPlan(groups: wave, fidelity: fidelity)
        }
        if pending.isEmpty && climbing.isEmpty && !parked.isEmpty {
            try verifyParked(adjusted: adjusted, run: &run)
        }
        if pending.isEmpty && !invented {
            invented = true
            try inventBeyondCatalog(current: current, run: &run)
        }
        // Runs the corrected predictions cannot place go through a halving screen once this task has measured enough
        // full runs for its own spread to replace the history's.
        let next = SearchEngine.nextWave(
            pending, screened: screened, settings: adjusted,
            offsetRunsNeeded: SearchEngine.minimumResidualsToScreen - residuals.count,
            size: max(2, run.settings.workers), forced: returned)
        wave = next.wave
        screening = next.screening
        let keys = Set(wave.map(\.key))
        pending.removeAll { keys.contains($0.key) }
        var fidelity = 1.0
        if screening {
            screened.formUnion(keys)
            ladderStep = 0
            fidelity = ladder[0]
            try run.events(
                .phase(
                    String(
                        format: "screening %d uncertain training run(s) at fidelity %.3f, the best 1/%d go on: %@",
                        wave.count, fidelity, run.settings.eta,
                        wave.flatMap { $0.members.map(\.id) }.joined(separator: ", "))))
        }
        return RungPlan(groups: wave, fidelity: fidelity)
    }

    /// Drops the pending (and climbing) runs that cannot change `current` under the `adjusted` predictions: their
    /// alive members are decided untrained (skipped), or, when a screen already measured them, pruned with what they
    /// reached.
    mutating func ruleOut(rung: Int, current: TrialResult?, adjusted: SearchSettings, run: inout SearchRun) throws {
        let (keep, drop) = SearchEngine.partitionPending(pending, current: current, settings: adjusted)
        pending = keep
        let (stillClimbing, dropClimbing) = SearchEngine.partitionPending(
            climbing, current: current, settings: adjusted)
        climbing = stillClimbing
        // A run dropped only for its cost waits for the final check of the recommendation it was dropped against.
        let (onCost, onQuality) = SearchEngine.partitionPending(
            drop + dropClimbing, current: nil, settings: adjusted)
        if let current, !onCost.isEmpty {
            parked += onCost
            parkedAgainst.insert(current.id)
        }
        try decideUntrained(onQuality, current: current, adjusted: adjusted, run: &run)
    }

    /// When nothing else is left to train: checks the recommendations runs were parked against as the final
    /// recommendation will (``SelectionAdjustment`` over every measured student), and decides the parked runs against
    /// the recommendation that passes it. A parked run that could change that one (it is cheaper to run or smaller, or
    /// no student passes) goes back to the queue, to be screened on halving's ladder with the others sent back; the
    /// others are ruled out untrained. A current recommendation that fails the check is never the current one again.
    mutating func verifyParked(adjusted: SearchSettings, run: inout SearchRun) throws {
        var ordered = run.candidates.compactMap { run.trials[$0.id] }
        let selection = try run.selectionAdjustment(&ordered)
        let check = SearchEngine.checkParked(
            parked, rejected: rejected, trials: ordered, selection: selection,
            metric: run.metric.rawValue, teacherValue: run.teacher.value, settings: adjusted)
        try run.events(
            .phase(
                "final check of the recommendation the parked runs were ruled out against ("
                    + parkedAgainst.sorted().joined(separator: ", ") + "): "
                    + (check.verified.map { "\($0.id) qualifies as the final recommendation will" }
                        ?? "no student qualifies as the final recommendation will")
                    + "; \(check.back.count) parked training run(s) go back to the queue, \(check.decided.count) are "
                    + "ruled out"))
        rejected = check.rejected
        parked = []
        parkedAgainst = []
        // Never more than halving: the runs sent back are screened only as far as what halving's schedule plans for
        // the whole search allows (in priority order, each costing what halving's rungs would spend on it).
        let back = SearchEngine.learnedOrder(check.back, settings: adjusted)
        let rungs = ladder.count + 1
        let eta = run.settings.eta
        var fitting = back.count
        while fitting > 0
            && run.candidateEpochs + Self.halvingBudget(groups: Array(back.prefix(fitting)), rungs: rungs, eta: eta)
                > halvingBudget + 1e-9
        {
            fitting -= 1
        }
        pending = Array(back.prefix(fitting))
        returned.formUnion(pending.map(\.key))
        try decideUntrained(check.decided, current: check.verified, adjusted: adjusted, run: &run)
        if fitting < back.count {
            try run.events(
                .phase(
                    String(
                        format:
                            "%d of the parked training runs sent back not trained: %.0f candidate-epochs spent, and screening them would pass the %.0f that halving's schedule plans",
                        back.count - fitting, run.candidateEpochs, halvingBudget)))
            try decideUntrained(
                Array(back.dropFirst(fitting)), current: nil, adjusted: adjusted, run: &run,
                reason: String(
                    format:
                        "the recommendation it was ruled out against failed the final check, and screening it again "
                        + "would pass the %.0f candidate-epochs halving's schedule plans (%.0f spent)",
                    halvingBudget, run.candidateEpochs))
        }
    }

    /// Decides the alive members of `groups` untrained (skipped), or, when a screen already measured them, pruned with
    /// what they reached; the reason names the prediction and `current`, or `reason` after the prediction.
    mutating func decideUntrained(
        _ groups: [TrainingGroup], current: TrialResult?, adjusted: SearchSettings, run: inout SearchRun,
        reason: String? = nil
    ) throws {
        let settings = run.settings
        for group in groups {
            for candidate in group.members where run.alive.contains(candidate.id) {
                run.alive.remove(candidate.id)
                notTrained += 1
                let prediction = adjusted.predictions[candidate.id] ?? settings.predictions[candidate.id]
                let why =
                    reason.map { reason in
                        "not trained (learned strategy): "
                            + (prediction.map {
                                String(
                                    format: "predicted gap %+.4f ± %.4f from %d similar past trials; ", $0.gap,
                                    $0.gapSD, $0.neighbours)
                            } ?? "") + reason
                    }
                    ?? SearchEngine.notTrainedReason(
                        prediction, current: current, z: settings.confidenceZ, maxDrop: settings.constraints.maxDrop)
                if let record = run.latest[candidate.id] {
                    // Screened at low fidelity and kept, then ruled out before its full run: report what it reached,
                    // as pruned.
                    notTrained -= 1
                    screenedOut += 1
                    run.sessions[group.key] = nil
                    run.trials[candidate.id] = TrialResult(
                        id: candidate.id, family: candidate.family, config: candidate.config,
                        precision: candidate.precision, params: group.architecture.parameterCount,
                        sizeBytes: group.size(of: candidate), flopsPerExample: group.flops,
                        metrics: record.metrics ?? [:], differenceToTeacher: record.differenceToTeacher,
                        fidelity: record.fidelity ?? 0, status: .pruned, onFrontier: false,
                        epochsRun: record.epochs, bestEpoch: record.bestEpoch,
                        trainSeconds: run.trainSeconds[group.key],
                        reason: String(format: "screened at fidelity %.3f, then ", record.fidelity ?? 0)
                            + why.replacingOccurrences(
                                of: "not trained (learned strategy)", with: "not trained further"))
                } else {
                    run.trials[candidate.id] = TrialResult(
                        id: candidate.id, family: candidate.family, config: candidate.config,
                        precision: candidate.precision, params: group.architecture.parameterCount,
                        sizeBytes: group.size(of: candidate), flopsPerExample: group.flops, metrics: [:],
                        fidelity: 0, status: .skipped, onFrontier: false, reason: why)
                }
                if let trial = run.trials[candidate.id] { try run.announce(trial) }
            }
        }
    }

    /// Beyond the catalog: sizes between frontier neighbours (`inventCandidates`), queued as one more wave when their
    /// interpolated prediction says they could change the recommendation `current`.
    mutating func inventBeyondCatalog(current: TrialResult?, run: inout SearchRun) throws {
        var worthIt: [Candidate] = []
        for (candidate, prediction) in SearchEngine.inventCandidates(
            trials: run.candidates.compactMap { run.trials[$0.id] }, candidates: run.candidates,
            metric: run.metric.rawValue)
        {
            run.settings.predictions[candidate.id] = prediction
            worthIt.append(candidate)
        }
        let task = run.task
        let featurization = run.featurization
        let extra = CandidateSpace(
            candidates: worthIt, task: task, constraints: run.settings.constraints, seed: run.settings.seed,
            features: { featurization.features($0, task: task) })
        let (keep, _) = SearchEngine.partitionPending(extra.groups, current: current, settings: run.settings)
        let kept = keep.flatMap(\.members)
        guard !kept.isEmpty else { return }
        // Never more than halving: the invented runs train only when their epochs fit in what halving would spend.
        let cost = Double(keep.map(\.options.epochs).reduce(0, +))
        guard run.candidateEpochs + cost <= halvingBudget else {
            try run.events(
                .phase(
                    String(
                        format:
                            "beyond the catalog: %d invented candidate(s) not trained: %.0f candidate-epochs spent and %.0f more would pass the %.0f that halving's schedule plans",
                        kept.count, run.candidateEpochs, cost, halvingBudget)))
            return
        }
        run.candidates += kept
        for group in keep {
            for candidate in group.members {
                run.member[candidate.id] = (group, candidate)
                run.alive.insert(candidate.id)
            }
        }
        pending = keep
        try run.events(
            .phase(
                "beyond the catalog: \(kept.count) invented candidate(s) between frontier neighbours: "
                    + kept.map(\.id).joined(separator: ", ")))
    }

    /// A full-fidelity wave decides everything it trained; a screen decides what it prunes (``decideScreen(run:)``).
    mutating func decide(rung: Int, run: inout SearchRun) -> [String] {
        if var fallback {
            defer { self.fallback = fallback }
            return fallback.decide(rung: rung, run: &run)
        }
        if screening { return decideScreen(run: &run) }
        let trained = Set(wave.flatMap { $0.members.map(\.id) }).intersection(run.alive)
        run.alive.subtract(trained)
        return Array(trained)
    }

    /// After a screen step: the best 1/η of the screened runs go on (``SearchEngine/screenStep(_:quality:finished:eta:)``),
    /// to the ladder's next step or, after its last (or when one run is left: it would win every step), to the front of
    /// the queue for their full run. Where the screen would so end, the smallest pruned run smaller than every run going
    /// on goes on with them (``SearchEngine/smallerContender(_:goingOn:)``), so two runs climb while steps are left. The
    /// others are pruned at this fidelity, and a run that finished during the screen is decided with what it measured.
    mutating func decideScreen(run: inout SearchRun) -> [String] {
        let latest = run.latest
        let metric = run.metric.rawValue
        func quality(_ group: TrainingGroup) -> Double {
            group.members.compactMap { latest[$0.id]?.metrics?[metric]?.value }.max() ?? -.infinity
        }
        func finished(_ group: TrainingGroup) -> Bool {
            group.members.allSatisfy { latest[$0.id]?.finished == true }
        }
        var step = SearchEngine.screenStep(wave, quality: quality, finished: finished, eta: run.settings.eta)
        let stepsLeft = ladderStep + 1 < ladder.count
        if !(stepsLeft && step.goOn.count > 1),
            let contender = SearchEngine.smallerContender(step.pruned, goingOn: step.goOn)
        {
            // The screen would end here, its best going to a full run: the recommender's smaller alternative goes on
            // with it, up the ladder while steps are left, else to a full run of its own should the rule-outs keep it.
            step.goOn.append(contender)
            step.pruned.removeAll { $0.key == contender.key }
            contenderNote =
                "also going on beside the screen's best: " + contender.members.map(\.id).joined(separator: ", ")
                + " (smaller, and the recommender would take it should both qualify)"
        }
        let climbs = stepsLeft && step.goOn.count > 1
        let pruned = Set(step.pruned.flatMap { $0.members.map(\.id) }).intersection(run.alive)
        let decided = pruned.union(Set(step.finished.flatMap { $0.members.map(\.id) }).intersection(run.alive))
        screenedOut += pruned.count
        run.alive.subtract(decided)
        if climbs {
            ladderStep += 1
            climbing = step.goOn
        } else {
            pending = step.goOn + pending
        }
        return Array(decided)
    }

    /// The screen's wording: how many runs it compared.
    func prunedReason(_ record: JournalRecord, rung: Int, settings: SearchSettings) -> String {
        if let fallback { return fallback.prunedReason(record, rung: rung, settings: settings) }
        return String(
            format: "screened at fidelity %.3f with %d other uncertain training run(s); not among the best 1/%d",
            record.fidelity ?? 0, max(0, wave.count - 1), settings.eta)
    }

    func stoppedBecause(feasible: Int, settings: SearchSettings) -> String {
        if let fallback {
            return fallback.stoppedBecause(feasible: feasible, settings: settings)
                + " (the learned strategy ran \(mode.schedule.rawValue): \(mode.reason))"
        }
        return String(
            format:
                "no untrained candidate could change the recommendation at z = %.1f (%d of %d feasible candidates not trained%@)",
            settings.confidenceZ, notTrained, feasible,
            screenedOut > 0 ? String(format: ", %d screened at low fidelity and pruned", screenedOut) : "")
    }
}

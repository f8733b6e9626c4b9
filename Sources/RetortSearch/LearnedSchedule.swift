import Foundation
import RetortNumerics
import RetortStudents

/// The learned strategy's scheduling rules, from the predictions in `SearchSettings.predictions`.
extension SearchEngine {
    /// Training runs in the order to train them: first those predicted to qualify (prediction ≥ −max drop), in the
    /// order `Recommender.cheapest` prefers students in, on the predicted figures: the runs predicted as
    /// fast as the tier's fastest (p50 within the speed tolerance), smallest first, then the fewest FLOPs; then the
    /// rest, fewest FLOPs first, then smallest; then those that qualify only optimistically (prediction + z·sd) in the
    /// same order, or most promising first when no run is predicted to qualify (the likely answer is then "no
    /// distillation", and the runs nearest the bar are the ones that confirm or refute it); runs without a prediction
    /// count as uncertain; last, those that cannot qualify even optimistically, most promising first (the first two of
    /// them confirm a "no distillation").
    static func learnedOrder(_ groups: [TrainingGroup], settings: SearchSettings) -> [TrainingGroup] {
        let bar = -settings.constraints.maxDrop
        func tier(_ group: TrainingGroup) -> Int {
            let predictions = group.members.map { settings.predictions[$0.id] }
            if predictions.contains(where: { $0 == nil }) { return 1 }
            let compact = predictions.compactMap { $0 }
            if compact.contains(where: { $0.gap >= bar }) { return 0 }
            if compact.contains(where: { $0.gap + settings.confidenceZ * $0.gapSD >= bar }) { return 1 }
            return 2
        }
        struct Ranked {
            let group: TrainingGroup
            let tier: Int
            let bestGap: Double
            let smallest: Int
            let latency: Double?
        }
        let ranked = groups.map { group in
            Ranked(
                group: group, tier: tier(group),
                bestGap: group.members.compactMap { settings.predictions[$0.id]?.gap }.max() ?? 0,
                smallest: group.smallestSize,
                latency: predictedLatency(group, settings: settings))
        }
        let speed = SpeedComparison(relativeTolerance: settings.speedTolerance)
        let equallyFast = Set(
            Dictionary(grouping: ranked, by: \.tier).values.flatMap { level in
                Recommender.equallyFast(level, speed: speed, latency: \.latency) ?? []
            }.map(\.group.key))
        let noneLikely = !ranked.contains { $0.tier == 0 }
        return ranked.sorted { a, b in
            if a.tier != b.tier { return a.tier < b.tier }
            if (a.tier == 2 || noneLikely) && a.bestGap != b.bestGap { return a.bestGap > b.bestGap }
            let (fastA, fastB) = (equallyFast.contains(a.group.key), equallyFast.contains(b.group.key))
            if fastA != fastB { return fastA }
            if fastA && a.smallest != b.smallest { return a.smallest < b.smallest }
            if a.group.flops != b.group.flops { return a.group.flops < b.group.flops }
            if a.smallest != b.smallest { return a.smallest < b.smallest }
            return a.group.key < b.group.key
        }.map(\.group)
    }

    /// Whether predictions cannot place a training run on either side of the bar: no member reaches it confidently
    /// (prediction − z·sd ≥ bar), yet one could (prediction + z·sd ≥ bar). A member without a prediction makes the run
    /// uncertain.
    public static func isUncertain(_ predictions: [CandidatePrediction?], bar: Double, z: Double) -> Bool {
        if predictions.contains(where: { $0 == nil }) { return true }
        let compact = predictions.compactMap { $0 }
        return !compact.contains { $0.gap - z * $0.gapSD >= bar } && compact.contains { $0.gap + z * $0.gapSD >= bar }
    }

    static func isUncertain(_ group: TrainingGroup, settings: SearchSettings) -> Bool {
        isUncertain(
            group.members.map { settings.predictions[$0.id] }, bar: -settings.constraints.maxDrop,
            z: settings.confidenceZ)
    }

    /// The next learned wave from the pending runs (in priority order). `offsetRunsNeeded`: how many more full runs
    /// this task's offset still needs before a screen is allowed (``minimumResidualsToScreen`` less the residuals
    /// measured; 0 or less: a screen is allowed). With a screen allowed and two or more unscreened runs uncertain under
    /// `settings.predictions` (already corrected by this task's residuals), those runs wait for one halving screen
    /// together, which comes when the next run in line is one of them; until then, and without a screen, the wave is
    /// the first `size` runs in line that do not wait, at full fidelity (runs that confidently reach the bar keep this
    /// treatment). Unscreened runs in `forced` (parked runs sent back to the queue) are screened as if uncertain,
    /// whatever the count says. A wave that measures the offset holds no more than the runs it still needs (at least
    /// one), since a run beyond them would be trained in full only because a worker was free, where the screen would
    /// rank it at a fraction of its epochs.
    static func nextWave(
        _ pending: [TrainingGroup], screened: Set<String>, settings: SearchSettings, offsetRunsNeeded: Int, size: Int,
        forced: Set<String> = []
    ) -> (wave: [TrainingGroup], screening: Bool) {
        let screen = offsetRunsNeeded <= 0
        let uncertain = Set(
            pending.filter {
                !screened.contains($0.key)
                    && (forced.contains($0.key) || (screen && isUncertain($0, settings: settings)))
            }.map(\.key))
        guard uncertain.count > 1 else {
            // Before a screen is allowed, the full runs that measure this task's offset are, when the next run in line
            // is uncertain, the uncertain runs predicted to qualify (all uncertain runs when none is) that are cheapest
            // to train: any of them teaches the offset and could be the answer, and a screen then ranks the costly ones
            // at a fraction of their epochs. The first is the one with the fewest configured epochs (ties in line
            // order, the recommender's preference): its measurement can rule every other run out, so its place in line
            // counts more than its cost (taking the run expected to train the fewest epochs first reached ≥ 3× on 11 of
            // 27 held-out tasks on bench-learning, against 18, for 42% more candidate-epochs). The runs beside it only
            // add residuals, so they are those the history expects to train the fewest epochs
            // (``expectedEpochs(_:settings:)``): a wide network that early stopping ends at half its epochs costs less
            // than a narrow one that trains them all. Of those, the wave keeps the ones that could change the first's
            // predicted pick, unless they cost more than twice the first (below).
            if !screen, let first = pending.first, isUncertain(first, settings: settings) {
                let uncertainRuns = pending.enumerated().filter { isUncertain($0.element, settings: settings) }
                let likely = uncertainRuns.filter { run in
                    run.element.members.contains { predictedToQualify($0, settings: settings) }
                }
                let cheapest = (likely.isEmpty ? uncertainRuns : likely)
                    .sorted { ($0.element.options.epochs, $0.offset) < ($1.element.options.epochs, $1.offset) }
                let others = cheapest.dropFirst().map {
                    (run: $0.element, offset: $0.offset, epochs: expectedEpochs($0.element, settings: settings))
                }.sorted { ($0.epochs, $0.offset) < ($1.epochs, $1.offset) }.map(\.run)
                let head = cheapest.prefix(1).map(\.element)
                var chosen = wave(head + others, settings: settings, size: min(size, offsetRunsNeeded))
                // A run beside the first is there for its residual. The wave takes one that could change the first's
                // predicted pick; when that one is expected to train more than twice the first's epochs, the run
                // expected to train the fewest (within that limit) teaches the offset as well, for less.
                if let firstRun = head.first {
                    let limit = 2 * expectedEpochs(firstRun, settings: settings)
                    var spare = others.filter { run in
                        expectedEpochs(run, settings: settings) <= limit && !chosen.contains { $0.key == run.key }
                    }
                    for index in chosen.indices.dropFirst()
                    where !spare.isEmpty && expectedEpochs(chosen[index], settings: settings) > limit {
                        chosen[index] = spare.removeFirst()
                    }
                }
                return (chosen, false)
            }
            return (wave(pending, settings: settings, size: size), false)
        }
        if let first = pending.first, uncertain.contains(first.key) {
            return (pending.filter { uncertain.contains($0.key) }, true)
        }
        return (wave(pending.filter { !uncertain.contains($0.key) }, settings: settings, size: size), false)
    }

    /// One step of a screen on halving's ladder: of the runs still training (`finished` is false), the best 1/η
    /// (rounded up) by `quality` (their best member's measured quality), then fewer FLOPs, then the key, go on; the
    /// other runs still training are pruned. A run that finished during the step (early stopping, or a closed-form
    /// prototype, complete after its one pass) is complete and decided with what it measured: as in halving
    /// (``HalvingStrategy/survivors(run:)``) it neither takes one of the places nor counts toward them, so a finished
    /// prototype, measured in full, cannot push out a run measured at a fraction of its epochs.
    static func screenStep(
        _ wave: [TrainingGroup], quality: (TrainingGroup) -> Double, finished: (TrainingGroup) -> Bool, eta: Int
    ) -> (goOn: [TrainingGroup], pruned: [TrainingGroup], finished: [TrainingGroup]) {
        let racing = wave.filter { !finished($0) }.sorted { a, b in
            let (qa, qb) = (quality(a), quality(b))
            return qa != qb ? qa > qb : (a.flops, a.key) < (b.flops, b.key)
        }
        let places = HalvingStrategy.places(racing: racing.count, eta: eta)
        return (Array(racing.prefix(places)), Array(racing.dropFirst(places)), wave.filter(finished))
    }

    /// The run that goes on beside the leader where a screen would end (its last step, or one run left before it): of
    /// the runs the step `pruned`, the smallest (by its smallest member, then the key) that is smaller than every run
    /// `goingOn`; nil when none is. The screen ranks by quality at a fraction of the epochs, where the recommender takes
    /// the smallest student that qualifies: a smaller network trains more slowly, so it can trail at 1/3 of its epochs
    /// and still qualify at all of them. Halving keeps such a run by Pareto rank over size; measured on bench-learning,
    /// ranking every step that way sent small, costly runs (100-round boosted trees) on and cost more than it saved, so
    /// the screen keeps one such run, and only where it would end. With steps left, the two climb on; after the last,
    /// it is in line as any run is, and the rule-outs drop it if it can no longer change the recommendation.
    static func smallerContender(_ pruned: [TrainingGroup], goingOn: [TrainingGroup]) -> TrainingGroup? {
        let bound = goingOn.map(\.smallestSize).min() ?? .max
        return pruned.filter { $0.smallestSize < bound }.min { ($0.smallestSize, $0.key) < ($1.smallestSize, $1.key) }
    }

    /// The epochs (or rounds) a training run is expected to train at full fidelity: its configured epochs times the
    /// mean share its members are predicted to train before early stopping ends the run
    /// (`CandidatePrediction.epochsFraction`), or all of them when no member's prediction says.
    static func expectedEpochs(_ group: TrainingGroup, settings: SearchSettings) -> Double {
        let fractions = group.members.compactMap { settings.predictions[$0.id]?.epochsFraction }
        let share = fractions.isEmpty ? 1 : fractions.reduce(0, +) / Double(fractions.count)
        return Double(group.options.epochs) * share
    }

    /// A full-fidelity wave of at most `size` runs from `line` (in order): its first run, then the next runs in line
    /// that could still change the recommendation should the first run's predicted pick become it
    /// (``predictedPick(_:settings:)``, ``partitionPending(_:current:settings:)``); without a predicted pick, the next
    /// in line. A run left out stays in line: if the first does not qualify as predicted, a later wave trains it, and if
    /// it does, the rule-outs decide it against the measured recommendation. A wave may so be shorter than `size`: the
    /// learned strategy spends candidate-epochs only where they can change the answer.
    static func wave(_ line: [TrainingGroup], settings: SearchSettings, size: Int) -> [TrainingGroup] {
        guard let first = line.first else { return [] }
        guard let pick = predictedPick(first, settings: settings) else { return Array(line.prefix(size)) }
        let rest = partitionPending(Array(line.dropFirst()), current: pick, settings: settings).keep
        return [first] + rest.prefix(max(0, size - 1))
    }

    /// Whether the history predicts `candidate` to qualify: its predicted gap is at least −max drop (false without a
    /// prediction).
    static func predictedToQualify(_ candidate: Candidate, settings: SearchSettings) -> Bool {
        (settings.predictions[candidate.id]?.gap ?? -.infinity) >= -settings.constraints.maxDrop
    }

    /// The student a training run is predicted to give the recommender: of its members predicted to qualify
    /// (prediction ≥ −max drop), the smallest (then the id), as a trial that measured nothing but its size and FLOPs;
    /// nil when no member is predicted to qualify.
    static func predictedPick(_ group: TrainingGroup, settings: SearchSettings) -> TrialResult? {
        let qualifying = group.members.filter { predictedToQualify($0, settings: settings) }
        guard
            let member = qualifying.min(by: {
                (group.size(of: $0), $0.id) < (group.size(of: $1), $1.id)
            })
        else { return nil }
        return TrialResult(
            id: member.id, family: member.family, config: [:], precision: member.precision, params: 0,
            sizeBytes: group.size(of: member), flopsPerExample: group.flops, metrics: [:], fidelity: 1,
            status: .complete, onFrontier: false)
    }

    /// The smallest predicted p50 of a training run's members, nil when none has one.
    static func predictedLatency(_ group: TrainingGroup, settings: SearchSettings) -> Double? {
        group.members.compactMap { settings.predictions[$0.id]?.latencyMsP50 }.filter { $0 > 0 }.min()
    }

    /// Whether `candidate` (of `group`), no smaller than `current`, could still be the recommendation by being clearly
    /// faster (p50 below `current`'s by more than the speed tolerance, the only way a larger student wins). It cannot
    /// with no fewer FLOPs; with fewer, it could unless both have a predicted p50 and the candidate's is not even
    /// √(1 + tolerance) below `current`'s (halfway to "clearly faster" on a log scale: a prediction has to be off by
    /// that factor, 1.41× at the default tolerance, for this to rule out a winner). Predicted p50s are compared with
    /// each other, both from the history, so a machine uniformly faster or slower than the history's does not matter.
    static func couldBeClearlyFaster(
        _ candidate: Candidate, in group: TrainingGroup, than current: TrialResult, settings: SearchSettings
    ) -> Bool {
        guard group.flops < current.flopsPerExample else { return false }
        guard let own = settings.predictions[candidate.id]?.latencyMsP50, own > 0,
            let theirs = settings.predictions[current.id]?.latencyMsP50, theirs > 0
        else { return true }
        return own * (1 + settings.speedTolerance).squareRoot() < theirs
    }

    /// Splits pending runs into those that could still change the recommendation `current` and those that cannot:
    /// a member could when, optimistically (prediction + z·sd), it reaches the bar and it is smaller than `current`
    /// (the recommender prefers the smallest of the students about as fast as the fastest, so a smaller student with
    /// more FLOPs can win) or could be clearly faster (``couldBeClearlyFaster(_:in:than:settings:)``); with no
    /// recommendation yet, reaching the bar is enough. Members without a prediction always could.
    static func partitionPending(
        _ pending: [TrainingGroup], current: TrialResult?, settings: SearchSettings
    ) -> (keep: [TrainingGroup], drop: [TrainingGroup]) {
        let bar = -settings.constraints.maxDrop
        func couldChange(_ candidate: Candidate, in group: TrainingGroup) -> Bool {
            guard let prediction = settings.predictions[candidate.id] else { return true }
            guard prediction.gap + settings.confidenceZ * prediction.gapSD >= bar - 1e-12 else { return false }
            guard let current else { return true }
            if group.size(of: candidate) < current.sizeBytes { return true }
            return couldBeClearlyFaster(candidate, in: group, than: current, settings: settings)
        }
        var keep: [TrainingGroup] = []
        var drop: [TrainingGroup] = []
        for group in pending {
            if group.members.contains(where: { couldChange($0, in: group) }) {
                keep.append(group)
            } else {
                drop.append(group)
            }
        }
        return (keep, drop)
    }

    /// The final check of the current recommendations that `parked` runs were ruled out against: the
    /// recommendation among `trials` (less the `rejected`) with the `selection` adjustment, as the final one is made;
    /// `rejected` with every measured student that fails it alone; and the parked runs split into those that could
    /// change the verified recommendation (cheaper to run or smaller, or no student passes: `back` to the queue) and
    /// those that cannot (`decided`).
    static func checkParked(
        _ parked: [TrainingGroup], rejected: Set<String>, trials: [TrialResult],
        selection: SelectionAdjustment?, metric: String, teacherValue: Double, settings: SearchSettings
    ) -> (verified: TrialResult?, back: [TrainingGroup], decided: [TrainingGroup], rejected: Set<String>) {
        let constraints = settings.constraints
        func recommended(_ candidates: [TrialResult]) -> String? {
            Recommender.recommend(
                trials: candidates, metric: metric, teacherValue: teacherValue, constraints: constraints,
                selection: selection
            ).candidate
        }
        let verified = recommended(trials.filter { !rejected.contains($0.id) }).flatMap { id in
            trials.first { $0.id == id }
        }
        // Every measured student that fails the check (the precision variants of a failed one too) is rejected, so
        // the next current recommendation is not one the check would fail again.
        var stillRejected = rejected
        for trial in trials where trial.status == .complete && trial.fidelity >= 1 && trial.id != verified?.id {
            if recommended([trial]) != trial.id { stillRejected.insert(trial.id) }
        }
        let (back, decided) = partitionPending(parked, current: verified, settings: settings)
        return (verified, back, decided, stillRejected)
    }

    /// Whether `trial` qualifies with the confidence the recommendation asks for (`Constraints.confidenceLevel`): the
    /// probability that its true difference to the teacher is within the allowed drop, from a normal approximation of
    /// its bootstrap 95% interval. Unlike the final recommendation it is not adjusted for choosing among candidates
    /// (the search has not measured them all), so it is the looser of the two.
    public static func confidentlyQualifies(_ trial: TrialResult, constraints: Constraints) -> Bool {
        guard trial.status == .complete, trial.fidelity >= 1, let difference = trial.differenceToTeacher else {
            return false
        }
        let slack = difference.value + constraints.maxDrop
        guard difference.ci95.count == 2 else { return slack >= -1e-12 }
        let se = (difference.ci95[1] - difference.ci95[0]) / (2 * 1.959964)
        return clearsBar(slack: slack, se: se, level: constraints.confidenceLevel)
    }

    /// Whether a difference `slack` above the bar, measured with standard error `se`, is truly above it with
    /// probability at least `level`, Φ(slack / se) ≥ level (a normal approximation, not adjusted for choosing among
    /// candidates); without a positive `se`, the point decides.
    public static func clearsBar(slack: Double, se: Double?, level: Double) -> Bool {
        guard let se, se > 0 else { return slack >= -1e-12 }
        return StandardNormal.cdf(slack / se) >= level - 1e-12
    }

    /// Training runs of this task measured at full fidelity before uncertain runs are screened: two, the fewest that
    /// give this task a spread of its own to pool with the history's (``priorResiduals``). Runs of both kinds count
    /// (``correctedByKind(_:measured:isTrained:run:floor:offsetSpread:)``). Three (as many as the history's spread is
    /// worth) reached ≥ 3× on 14 of 27 held-out tasks on bench-learning, two with ``smallerContender(_:goingOn:)`` on
    /// 17, with one more answer as good as halving's (18 once a costly run beside the first gives way, in
    /// ``nextWave(_:screened:settings:offsetRunsNeeded:size:forced:)``): a screen of more runs costs less than a third
    /// full run, once it keeps the recommender's smaller alternative.
    static let minimumResidualsToScreen = 2

    /// This task's residuals (measured gap − predicted gap) of complete full-fidelity trials with a prediction, one per
    /// training run: the precision variants of one run share its trained network, so their residuals are one piece of
    /// evidence, not several, and count as their mean. `run` names each trial's training run (its group key; by
    /// default the trial itself).
    static func residuals(
        _ predictions: [String: CandidatePrediction], measured: [String: TrialResult],
        run: (String) -> String = { $0 }
    ) -> [Double] {
        var byRun: [String: (sum: Double, count: Int)] = [:]
        for trial in measured.values {
            guard trial.status == .complete, trial.fidelity >= 1, let value = trial.differenceToTeacher?.value,
                let predicted = predictions[trial.id]
            else { continue }
            byRun[run(trial.id), default: (0, 0)].sum += value - predicted.gap
            byRun[run(trial.id), default: (0, 0)].count += 1
        }
        return byRun.sorted { $0.key < $1.key }.map { $0.value.sum / Double($0.value.count) }
    }

    /// Predictions corrected by what this task measured: each trained run's residual (measured gap − predicted gap,
    /// ``residuals(_:measured:run:)``) estimates the task's offset from the past tasks it was compared with; the mean
    /// of the n residuals shifts every prediction. What remains is each candidate's spread around that offset, pooled
    /// from this task's residuals (sample variance s²) and the history's:
    ///
    ///     σ² = ((n − 1) · s² + ν₀ · (κ · sd_history)²) / (n − 1 + ν₀),   sd² = max(floor², σ² · (1 + 1/n))
    ///
    /// with ν₀ = ``priorResiduals`` and 1 + 1/n the predictive variance of a new candidate around an offset estimated
    /// from n residuals. κ (`offsetSpread`, `SearchSettings.historyOffsetSpread`) is how much of the history's
    /// predicted deviation is left once a task's offset is known, fitted on the history itself
    /// (`DistanceWidening.offsetSpread`; 1 when unknown keeps the whole deviation). The history's spread keeps the
    /// weight of ν₀ residuals, so three runs that happen to measure as predicted cannot shrink every interval to the
    /// floor and rule out, untrained, a student whose interval could still reach the bar.
    static func correctedPredictions(
        _ predictions: [String: CandidatePrediction], measured: [String: TrialResult], floor: Double,
        offsetSpread: Double = 1, run: (String) -> String = { $0 }
    ) -> [String: CandidatePrediction] {
        correctedPredictions(
            predictions, residuals: residuals(predictions, measured: measured, run: run), floor: floor,
            offsetSpread: offsetSpread)
    }

    /// ``correctedPredictions(_:measured:floor:offsetSpread:run:)`` from this task's `residuals`
    /// (``residuals(_:measured:run:)``), for a caller that needs them too.
    static func correctedPredictions(
        _ predictions: [String: CandidatePrediction], residuals: [Double], floor: Double, offsetSpread: Double
    ) -> [String: CandidatePrediction] {
        guard !residuals.isEmpty else { return predictions }
        let n = Double(residuals.count)
        let offset = residuals.reduce(0, +) / n
        let squares = residuals.reduce(0) { $0 + ($1 - offset) * ($1 - offset) }
        let prior = Double(priorResiduals)
        let kappa = min(max(offsetSpread, 0), 1)
        return predictions.mapValues { prediction in
            var corrected = prediction
            corrected.gap += offset
            let history = kappa * prediction.gapSD
            let pooled = (squares + prior * history * history) / (n - 1 + prior)
            corrected.gapSD = max(floor * floor, pooled * (1 + 1 / n)).squareRoot()
            return corrected
        }
    }

    /// ``correctedPredictions(_:residuals:floor:offsetSpread:)`` for each kind of run by its own residuals: a trained
    /// run (one that trains over epochs or rounds, `isTrained`) by the trained runs', a closed-form run (prototype) by
    /// the closed-form runs'. A nearest-centroid prototype misses its prediction for other reasons than a trained
    /// student does: on the benchmark's held-out tasks its residual was −0.26 where the trained runs' averaged +0.01
    /// (letter-merge), −0.14 against +0.00 (letter), −0.09 against +0.02 (keel-penbased), while the trained runs'
    /// residuals had an sd of 0.001–0.010 on 11 of the 12 numeric tasks (0.08 on keel-tae); counted with them, it moved
    /// every trained run's prediction by a third of its miss. `residuals`: both kinds', one per training run: what a
    /// screen waits for is this task's measured runs, and a prototype's costs one epoch.
    static func correctedByKind(
        _ predictions: [String: CandidatePrediction], measured: [String: TrialResult], isTrained: (String) -> Bool,
        run: (String) -> String, floor: Double, offsetSpread: Double
    ) -> (residuals: [Double], predictions: [String: CandidatePrediction]) {
        let trained = predictions.filter { isTrained($0.key) }
        let closedForm = predictions.filter { !isTrained($0.key) }
        let trainedResiduals = residuals(trained, measured: measured, run: run)
        let closedFormResiduals = residuals(closedForm, measured: measured, run: run)
        let corrected = correctedPredictions(
            trained, residuals: trainedResiduals, floor: floor, offsetSpread: offsetSpread
        ).merging(
            correctedPredictions(closedForm, residuals: closedFormResiduals, floor: floor, offsetSpread: offsetSpread)
        ) { a, _ in a }
        return (trainedResiduals + closedFormResiduals, corrected)
    }

    /// ν₀ in ``correctedPredictions(_:measured:floor:offsetSpread:run:)``: how many of this task's residuals the
    /// history's spread is worth.
    static let priorResiduals = 3

    /// New sizes between neighbours on the frontier of what trained: for two frontier members of the same family
    /// (`mlp` with one hidden layer, or `embedding-bag`) that differ only in width (by 2× or more), the geometric mean
    /// width rounded to a multiple of 8, in the pair's precision, when no candidate of that width exists yet. Each
    /// comes with a prediction interpolated from its two neighbours' measured gaps (their mean, with half their
    /// difference, at least `floor`, as the standard deviation), so the stop rule can judge it like any other.
    public static func inventCandidates(
        trials: [TrialResult], candidates: [Candidate], metric: String, floor: Double = 0.01
    ) -> [(candidate: Candidate, prediction: CandidatePrediction)] {
        let complete = trials.filter { $0.status == .complete && $0.fidelity >= 1 }
        let byTrial = Dictionary(uniqueKeysWithValues: complete.map { ($0.id, $0) })
        let points = complete.map {
            FrontierPoint(
                id: $0.id, quality: $0.metrics[metric]?.value ?? -.infinity, latencyTier: 0,
                flops: Double($0.flopsPerExample), size: Double($0.sizeBytes))
        }
        let onFrontier = Set(paretoFrontier(of: points).map(\.id))
        let byId = Dictionary(uniqueKeysWithValues: candidates.map { ($0.id, $0) })
        let frontier = candidates.filter {
            onFrontier.contains($0.id) && $0.hidden.count == 1 && ($0.family == .mlp || $0.family == .embeddingBag)
        }
        var existing = Set(candidates.map(\.id))
        var made: [(Candidate, CandidatePrediction)] = []
        for a in frontier {
            for b in frontier where b.hidden[0] >= 2 * a.hidden[0] {
                // Same family, features, precision and training: only the width differs.
                var probe = b
                probe.hidden = a.hidden
                guard probe.id == a.id else { continue }
                let width = max(8, Int(((Double(a.hidden[0]) * Double(b.hidden[0])).squareRoot() / 8).rounded()) * 8)
                guard width > a.hidden[0], width < b.hidden[0] else { continue }
                var candidate = a
                candidate.hidden = [width]
                candidate.invented = true
                guard byId[candidate.id] == nil, existing.insert(candidate.id).inserted,
                    let low = byTrial[a.id]?.differenceToTeacher?.value,
                    let high = byTrial[b.id]?.differenceToTeacher?.value
                else { continue }
                made.append(
                    (
                        candidate,
                        CandidatePrediction(
                            gap: (low + high) / 2, gapSD: max(abs(high - low) / 2, floor), latencyMsP50: nil,
                            neighbours: 2)
                    ))
            }
        }
        return made
    }

    /// Why a candidate was not trained, with the prediction it was judged on.
    static func notTrainedReason(_ prediction: CandidatePrediction?, current: TrialResult?, z: Double, maxDrop: Double)
        -> String
    {
        guard let prediction else { return "not trained: the search stopped (learned strategy)" }
        let predicted = String(
            format: "predicted gap %+.4f ± %.4f from %d similar past trials", prediction.gap, prediction.gapSD,
            prediction.neighbours)
        if prediction.gap + z * prediction.gapSD < -maxDrop {
            return String(
                format: "not trained (learned strategy): %@; even +%.1f sd stays below the bar of %+.4f", predicted, z,
                -maxDrop)
        }
        return "not trained (learned strategy): \(predicted); it is neither smaller than the recommendation"
            + (current.map { " \($0.id)" } ?? "") + " nor could it be clearly faster"
            + (prediction.latencyMsP50.map { String(format: " (predicted p50 %.4f ms)", $0) } ?? "")
    }
}

import Foundation
import RetortData
import RetortEvals
import RetortNumerics
import RetortStudents

/// Where a search keeps its journal and checkpoints, and what it resumes from.
public struct RunStorage: Sendable {
    /// The journal (header, a record per candidate per finished rung, latency records).
    public var journal: Journal
    /// Folder for training checkpoints (one file per training group, rewritten after every rung).
    public var checkpoints: URL
    /// Records of an interrupted run to continue from (nil for a new run).
    public var resume: [JournalRecord]?
    /// Job name for the journal header.
    public var jobName: String
    /// Job file or task folder, for `--resume` without a job.
    public var source: String
    /// Job settings to record in the header (see ``JournalRecord/options``).
    public var options: [String: String]

    /// Storage for a run.
    public init(
        journal: Journal, checkpoints: URL, resume: [JournalRecord]?, jobName: String, source: String,
        options: [String: String] = [:]
    ) {
        self.options = options
        self.journal = journal
        self.checkpoints = checkpoints
        self.resume = resume
        self.jobName = jobName
        self.source = source
    }
}

/// A training group: the candidates that share one training run (they differ only in precision).
struct TrainingGroup: Sendable {
    let key: String
    var members: [Candidate]
    let architecture: Architecture
    let featureKey: FeatureKey
    let flops: Int
    let options: TrainingOptions
    let seed: UInt64
    /// Bytes of featurizer state that ship with a member of each precision (numeric standardization statistics, or an
    /// encoder-head's encoder files).
    let stateBytes: [Precision: Int]

    /// A member's planned serialized size: its weights at its precision plus the featurizer state.
    func size(of candidate: Candidate) -> Int {
        architecture.weightBytes(at: candidate.precision) + stateBytes[candidate.precision, default: 0]
    }
}

/// What one worker does for one group in one rung (handed to a ``TrialExecutor``).
public struct RungWork: Sendable {
    let group: TrainingGroup
    let features: FeatureSet
    let alive: [Candidate]
    let targetEpochs: Int
    let rung: Int
    let session: TrainingSession?
    let checkpoint: URL?
    let deadline: UInt64
    let evaluator: Evaluator
    let teacherValidation: Evaluation
    let metric: Metric
    let reported: [Metric]
    /// The search seed (the validation evaluator's resamples are drawn from `seed + 1`).
    let seed: UInt64
    /// Bootstrap resamples of the validation evaluator.
    let resamples: Int
}

/// What a worker returns.
public struct RungOutput: Sendable {
    let groupKey: String
    /// The trained session; nil when the rung was replayed from the journal.
    let session: TrainingSession?
    let records: [JournalRecord]
    let cutByBudget: Bool
    let epochsTrained: Int
}

/// The search: candidate space, scheduler (exhaustive or Pareto-aware successive halving, parallel workers, hard
/// budget, journal and resume), frontier, recommendation and test-set evaluation.
public enum SearchEngine {
    /// Runs the search on `task`. With `storage`, every finished rung is journaled and checkpointed, and
    /// `storage.resume` continues an interrupted run.
    public static func run(
        task: TaskData, settings: SearchSettings, storage: RunStorage?,
        events announce: @escaping @Sendable (SearchEvent) -> Void = { _ in }
    ) async throws -> SearchOutcome {
        // Phases also go to the journal, for a live view of the run (`retort ui`). A journal that cannot be written
        // stops the search (its resume promise depends on every record).
        let events: @Sendable (SearchEvent) throws -> Void = { event in
            if case .phase(let name) = event, let storage {
                var record = JournalRecord(type: "phase")
                record.phase = name
                record.time = Date().timeIntervalSince1970
                try storage.journal.append(record, sync: false)
            }
            announce(event)
        }
        // The learned strategy adds predictions for the candidates it invents.
        var settings = settings
        let start = DispatchTime.now().uptimeNanoseconds
        let deadline = start &+ UInt64(max(0, min(settings.budgetSeconds, 1e9)) * 1e9)
        func elapsed() -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
        let classes = task.vocabulary.count
        let metric = try primaryMetric(task: task, settings: settings)
        let reported =
            settings.suite.metrics.contains(metric) ? settings.suite.metrics : settings.suite.metrics + [metric]

        var candidates = settings.catalog.candidates(for: task.kind)
        guard !candidates.isEmpty else {
            throw SearchError(
                "the candidate catalog lists no \(task.kind.rawValue) candidates; add a \"\(task.kind.rawValue):\" section"
            )
        }
        if let storage {
            try writeOrCheckHeader(storage: storage, task: task, settings: settings, candidates: candidates)
        }

        try events(.phase("evaluate the teacher"))
        let validationEvaluator = Evaluator(
            split: task.validation, classes: classes, resamples: settings.suite.resamples, seed: settings.seed &+ 1)
        let testEvaluator = Evaluator(
            split: task.test, classes: classes, resamples: settings.suite.resamples, seed: settings.seed &+ 2)
        let teacherValidation = try validationEvaluator.evaluate(task.validation.teacherLabels)
        let teacherTest = try testEvaluator.evaluate(task.test.teacherLabels)
        guard let teacherValue = teacherValidation.estimates[metric]?.value else {
            throw SearchError("the teacher has no \(metric.rawValue) on validation")
        }

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
        func features(_ key: FeatureKey) -> FeatureSet {
            featureSets[key] ?? FeatureSet(task: task, key: key)
        }

        // Candidate space: groups sharing a training run; infeasible candidates are decided before training.
        let space = CandidateSpace(
            candidates: candidates, task: task, constraints: settings.constraints, seed: settings.seed,
            features: features)
        var trials = space.blocked
        let groups = space.groups
        var member = Dictionary(
            uniqueKeysWithValues: groups.flatMap { group in group.members.map { ($0.id, (group, $0)) } })
        for trial in trials.values.sorted(by: { $0.id < $1.id }) {
            try events(.trial(trial, index: 0, total: candidates.count))
        }

        let feasible = groups.reduce(0) { $0 + $1.members.count }
        // Closed-form students (prototype, one "epoch") finish in the first rung whatever the schedule; they must not
        // shrink it (with them counted, the default catalog's halving had a single rung: it was exhaustive).
        let minimumEpochs = groups.filter { $0.architecture.family != .prototype }.map(\.options.epochs).min() ?? 1
        let rungCount: Int
        switch settings.strategy {
        case .exhaustive: rungCount = 1
        case .learned: rungCount = max(1, groups.count) + 8
        case .halving:
            var r = 0
            while r + 2 <= settings.maxRungs && pow(Double(settings.eta), Double(r + 1)) <= Double(feasible)
                && pow(Double(settings.eta), Double(r + 1)) <= Double(minimumEpochs)
            {
                r += 1
            }
            rungCount = r + 1
        }
        let resumeRecords = Dictionary(
            grouping: (storage?.resume ?? []).filter { $0.type == "rung" },
            by: { "\($0.candidate ?? "")#\($0.rung ?? -1)" })
        var latencyRecords: [String: JournalRecord] = [:]
        for record in storage?.resume ?? [] where record.type == "latency" {
            if let candidate = record.candidate { latencyRecords[candidate] = record }
        }

        var alive = Set(groups.flatMap { $0.members.map(\.id) })
        var sessions: [String: TrainingSession] = [:]
        var latest: [String: JournalRecord] = [:]
        var candidateEpochs = 0.0
        var trainSeconds: [String: Double] = [:]
        var epochsSoFar: [String: Int] = [:]
        var announced = trials.count
        var trainingRuns = Set<String>()
        var budgetHit = false
        // The longest training step in flight when the budget ran out, the longest validation evaluation of a run it
        // cut, and when the last training run ended.
        var epochInFlight: Double?
        var cutEvaluation: Double?
        var trainingEnded: UInt64?
        var best: (candidate: String, value: Double)?
        let total = candidates.count
        // Learned strategy: training runs in priority order; what is left when nothing left could change the
        // recommendation is never trained.
        var pending = settings.strategy == .learned ? learnedOrder(groups, settings: settings) : []
        var wave: [TrainingGroup] = []
        var notTrained = 0
        var invented = false
        // Learned strategy: runs still uncertain after this task's residual correction are screened at 1/η of their
        // epochs, halving-style, and only the best 1/η of each screen go on at full fidelity.
        var screened = Set<String>()
        var screening = false
        var screenedOut = 0
        try events(
            .phase(
                "\(settings.strategy.rawValue): \(feasible) feasible candidates in \(groups.count) training runs, "
                    + "\(rungCount) rung(s), \(settings.workers) worker(s), budget \(Int(settings.budgetSeconds)) s"))

        for rung in 0..<rungCount {
            var fidelity = pow(Double(settings.eta), Double(rung - (rungCount - 1)))
            var active = groups.filter { group in group.members.contains { alive.contains($0.id) } }
            if settings.strategy == .learned {
                fidelity = 1
                // Rule out what cannot change the current recommendation, then take the next wave.
                let current = Recommender.recommend(
                    trials: candidates.compactMap { trials[$0.id] }, metric: metric.rawValue,
                    teacherValue: teacherValue, constraints: settings.constraints
                ).candidate.flatMap { trials[$0] }
                // What this task has shown so far corrects the predictions (a shared offset and spread).
                var adjusted = settings
                if rung > 0 {
                    adjusted.predictions = correctedPredictions(
                        settings.predictions, measured: trials, floor: 0.01)
                    let (keep, drop) = partitionPending(pending, current: current, settings: adjusted)
                    pending = keep
                    for group in drop {
                        for candidate in group.members where alive.contains(candidate.id) {
                            alive.remove(candidate.id)
                            notTrained += 1
                            let prediction = settings.predictions[candidate.id]
                            let why = notTrainedReason(
                                adjusted.predictions[candidate.id] ?? prediction, current: current,
                                z: settings.confidenceZ, maxDrop: settings.constraints.maxDrop)
                            if let record = latest[candidate.id] {
                                // Screened at low fidelity and kept, then ruled out before its full run: report what
                                // it reached, as pruned.
                                notTrained -= 1
                                screenedOut += 1
                                sessions[group.key] = nil
                                trials[candidate.id] = TrialResult(
                                    id: candidate.id, family: candidate.family, config: candidate.config,
                                    precision: candidate.precision, params: group.architecture.parameterCount,
                                    sizeBytes: group.size(of: candidate), flopsPerExample: group.flops,
                                    metrics: record.metrics ?? [:], differenceToTeacher: record.differenceToTeacher,
                                    fidelity: record.fidelity ?? 0, status: .pruned, onFrontier: false,
                                    epochsRun: record.epochs, bestEpoch: record.bestEpoch,
                                    trainSeconds: trainSeconds[group.key],
                                    reason: String(format: "screened at fidelity %.3f, then ", record.fidelity ?? 0)
                                        + why.replacingOccurrences(
                                            of: "not trained (learned strategy)", with: "not trained further"))
                            } else {
                                trials[candidate.id] = TrialResult(
                                    id: candidate.id, family: candidate.family, config: candidate.config,
                                    precision: candidate.precision, params: group.architecture.parameterCount,
                                    sizeBytes: group.size(of: candidate), flopsPerExample: group.flops, metrics: [:],
                                    fidelity: 0, status: .skipped, onFrontier: false, reason: why)
                            }
                            if let trial = trials[candidate.id] {
                                announced += 1
                                try events(.trial(trial, index: announced, total: total))
                            }
                        }
                    }
                }
                if pending.isEmpty && !invented {
                    // Beyond the catalog: sizes between frontier neighbours, trained in one more wave when their
                    // interpolated prediction says they could change the recommendation.
                    invented = true
                    var worthIt: [Candidate] = []
                    for (candidate, prediction) in inventCandidates(
                        trials: candidates.compactMap { trials[$0.id] }, candidates: candidates,
                        metric: metric.rawValue)
                    {
                        settings.predictions[candidate.id] = prediction
                        worthIt.append(candidate)
                    }
                    let extra = CandidateSpace(
                        candidates: worthIt, task: task, constraints: settings.constraints, seed: settings.seed,
                        features: features)
                    let (keep, _) = partitionPending(extra.groups, current: current, settings: settings)
                    let kept = keep.flatMap(\.members)
                    if !kept.isEmpty {
                        candidates += kept
                        for group in keep {
                            for candidate in group.members {
                                member[candidate.id] = (group, candidate)
                                alive.insert(candidate.id)
                            }
                        }
                        pending = keep
                        try events(
                            .phase(
                                "beyond the catalog: \(kept.count) invented candidate(s) between frontier neighbours: "
                                    + kept.map(\.id).joined(separator: ", ")))
                    }
                }
                // Runs the corrected predictions cannot place go through a halving screen once this task has measured
                // enough full runs for its own spread to replace the history's.
                let next = nextWave(
                    pending, screened: screened, settings: adjusted,
                    screen: residualCount(settings.predictions, measured: trials) >= minimumResidualsToScreen,
                    size: max(2, settings.workers))
                wave = next.wave
                screening = next.screening
                let keys = Set(wave.map(\.key))
                pending.removeAll { keys.contains($0.key) }
                if screening {
                    screened.formUnion(keys)
                    fidelity = 1 / Double(settings.eta)
                    try events(
                        .phase(
                            String(
                                format:
                                    "screening %d uncertain training run(s) at fidelity %.3f, the best 1/%d go on: %@",
                                wave.count, fidelity, settings.eta,
                                wave.flatMap { $0.members.map(\.id) }.joined(separator: ", "))))
                }
                active = wave
            }
            guard !active.isEmpty else { break }
            if rungCount > 1 && settings.strategy != .learned {
                try events(
                    .phase(
                        String(
                            format: "rung %d/%d at fidelity %.3f: %d candidates", rung + 1, rungCount, fidelity,
                            alive.count)))
            }
            // Cancellation (Ctrl-C, or a caller giving up) stops between rungs; the journal lets --resume continue.
            try Task.checkCancellation()
            var work: [RungWork] = []
            var replayed: [RungOutput] = []
            for group in active {
                let members = group.members.filter { alive.contains($0.id) }
                let target = max(1, Int((fidelity * Double(group.options.epochs)).rounded(.up)))
                let recorded = members.compactMap { resumeRecords["\($0.id)#\(rung)"]?.last }
                if recorded.count == members.count, let first = recorded.first {
                    // Journaled before the interruption: replay, train nothing.
                    replayed.append(
                        RungOutput(
                            groupKey: group.key, session: nil, records: recorded,
                            cutByBudget: first.cutByBudget ?? false,
                            epochsTrained: 0))
                    continue
                }
                let checkpoint = storage.map { $0.checkpoints.appendingPathComponent(checkpointName(group.key)) }
                work.append(
                    RungWork(
                        group: group, features: features(group.featureKey), alive: members, targetEpochs: target,
                        rung: rung, session: sessions[group.key], checkpoint: checkpoint, deadline: deadline,
                        evaluator: validationEvaluator, teacherValidation: teacherValidation, metric: metric,
                        reported: reported, seed: settings.seed, resamples: settings.suite.resamples))
            }
            if let storage, !work.isEmpty {
                var queue = JournalRecord(type: "queue")
                queue.rung = rung
                queue.fidelity = fidelity
                queue.candidates = work.flatMap { $0.alive.map(\.id) }
                queue.time = Date().timeIntervalSince1970
                try storage.journal.append(queue, sync: false)
            }
            let totalInRung = work.count + replayed.count
            var finishedInRung = replayed.count
            var outputs = replayed
            let executor = settings.executor
            try await withThrowingTaskGroup(of: RungOutput.self) { taskGroup in
                var next = 0
                func submit() throws {
                    guard next < work.count else { return }
                    let item = work[next]
                    next += 1
                    if let storage {
                        var start = JournalRecord(type: "start")
                        start.rung = rung
                        start.group = item.group.key
                        start.candidates = item.alive.map(\.id)
                        start.time = Date().timeIntervalSince1970
                        try storage.journal.append(start, sync: false)
                    }
                    taskGroup.addTask { try await executor.run(item, task: task) }
                }
                for _ in 0..<min(settings.workers, work.count) { try submit() }
                while let output = try await taskGroup.next() {
                    trainingEnded = DispatchTime.now().uptimeNanoseconds
                    outputs.append(output)
                    finishedInRung += 1
                    for record in output.records.sorted(by: { ($0.candidate ?? "") < ($1.candidate ?? "") }) {
                        try storage?.journal.append(record)
                        if let value = record.metrics?[metric.rawValue]?.value,
                            best.map({ value > $0.value }) ?? true, let candidate = record.candidate
                        {
                            best = (candidate, value)
                        }
                    }
                    let secondsLeft = max(0, settings.budgetSeconds - elapsed())
                    try events(
                        .progress(
                            SearchProgress(
                                rung: rung, rungs: rungCount, alive: alive.count, best: best, secondsLeft: secondsLeft,
                                finishedInRung: finishedInRung, totalInRung: totalInRung)))
                    if DispatchTime.now().uptimeNanoseconds < deadline { try submit() }
                }
            }
            let skippedByBudget = work.count - (outputs.count - replayed.count)
            if skippedByBudget > 0 { budgetHit = true }
            // Deterministic bookkeeping, whatever order the workers finished in.
            outputs.sort { $0.groupKey < $1.groupKey }
            var decidedNow: [String] = []
            for output in outputs {
                if let session = output.session, output.epochsTrained > 0 { sessions[output.groupKey] = session }
                // Counted from the schedule (journaled epochs), so a resumed run reports what an uninterrupted one would.
                let reached = output.records.first?.epochs ?? 0
                candidateEpochs += Double(max(0, reached - (epochsSoFar[output.groupKey] ?? 0)))
                epochsSoFar[output.groupKey] = max(reached, epochsSoFar[output.groupKey] ?? 0)
                trainingRuns.insert(output.groupKey)
                trainSeconds[output.groupKey, default: 0] += output.records.first?.trainSeconds ?? 0
                if let seconds = output.records.first?.epochInFlightSeconds {
                    epochInFlight = max(epochInFlight ?? 0, seconds)
                }
                if let seconds = output.records.first?.evaluationSeconds {
                    cutEvaluation = max(cutEvaluation ?? 0, seconds)
                }
                for record in output.records {
                    guard let id = record.candidate else { continue }
                    latest[id] = record
                    if output.cutByBudget {
                        budgetHit = true
                        alive.remove(id)
                        decidedNow.append(id)
                    }
                }
            }
            if budgetHit {
                for id in alive {
                    if latest[id] != nil { decidedNow.append(id) }
                }
                let untouched = alive.filter { latest[$0] == nil }
                alive.removeAll()
                for id in untouched.sorted() {
                    guard let (group, candidate) = member[id] else { continue }
                    trials[id] = TrialResult(
                        id: id, family: candidate.family, config: candidate.config, precision: candidate.precision,
                        params: group.architecture.parameterCount,
                        sizeBytes: group.size(of: candidate),
                        flopsPerExample: group.flops, metrics: [:], fidelity: 0, status: .pruned, onFrontier: false,
                        reason: String(format: "the budget of %.0f s ran out before it started", settings.budgetSeconds)
                    )
                    if let trial = trials[id] {
                        announced += 1
                        try events(.trial(trial, index: announced, total: total))
                    }
                }
            } else if settings.strategy == .learned && screening {
                // The best 1/η of the screened runs (by their best member's measured quality, then cheaper first) go
                // to the front of the queue for their full run; the others are pruned at this fidelity. A run that
                // finished (early stopping) during the screen is complete already.
                func quality(_ group: TrainingGroup) -> Double {
                    group.members.compactMap { latest[$0.id]?.metrics?[metric.rawValue]?.value }.max() ?? -.infinity
                }
                let ranked = wave.sorted { a, b in
                    quality(a) != quality(b) ? quality(a) > quality(b) : (a.flops, a.key) < (b.flops, b.key)
                }
                let keep = ranked.prefix(Int((Double(wave.count) / Double(settings.eta)).rounded(.up)))
                let keepKeys = Set(keep.map(\.key))
                var next: [TrainingGroup] = []
                for group in ranked {
                    let ids = Set(group.members.map(\.id)).intersection(alive)
                    let finished = group.members.allSatisfy { latest[$0.id]?.finished == true }
                    if !keepKeys.contains(group.key) || finished {
                        decidedNow.append(contentsOf: ids)
                        alive.subtract(ids)
                        if !keepKeys.contains(group.key) { screenedOut += ids.count }
                    } else {
                        next.append(group)
                    }
                }
                pending = next + pending
            } else if settings.strategy == .learned {
                let trained = Set(wave.flatMap { $0.members.map(\.id) }).intersection(alive)
                decidedNow.append(contentsOf: trained)
                alive.subtract(trained)
            } else if rung < rungCount - 1 {
                // Finished candidates are complete (no more training would change them); the rest race on.
                let racing = alive.filter { latest[$0]?.finished != true }.sorted()
                let points = racing.compactMap { id -> FrontierPoint? in
                    guard let (group, candidate) = member[id] else { return nil }
                    return FrontierPoint(
                        id: id, quality: latest[id]?.metrics?[metric.rawValue]?.value ?? -.infinity, latencyTier: 0,
                        flops: Double(group.flops), size: Double(group.size(of: candidate)))
                }
                // The best 1/η of the racing candidates go on (Pareto rank, then crowding distance); precision variants
                // share their training run, so a surviving run carries all its alive variants along at no extra cost.
                let keep = Int((Double(racing.count) / Double(settings.eta)).rounded(.up))
                let survivingGroups = Set(ParetoRanking.best(keep, of: points).compactMap { latest[$0.id]?.group })
                for id in alive.sorted()
                where latest[id]?.finished == true || !survivingGroups.contains(latest[id]?.group ?? "") {
                    alive.remove(id)
                    decidedNow.append(id)
                }
            } else {
                decidedNow.append(contentsOf: alive)
                alive.removeAll()
            }
            for id in Set(decidedNow).sorted() {
                guard let (group, candidate) = member[id], let record = latest[id] else { continue }
                var trial = TrialResult(
                    id: id, family: candidate.family, config: candidate.config, precision: candidate.precision,
                    params: group.architecture.parameterCount,
                    sizeBytes: record.sizeBytes ?? group.size(of: candidate),
                    flopsPerExample: record.flops ?? group.flops, metrics: record.metrics ?? [:],
                    differenceToTeacher: record.differenceToTeacher, fidelity: record.fidelity ?? 0, status: .complete,
                    onFrontier: false, epochsRun: record.epochs, bestEpoch: record.bestEpoch,
                    trainSeconds: trainSeconds[group.key])
                let complete = (record.fidelity ?? 0) >= 1
                if !complete {
                    trial.status = .pruned
                    trial.reason =
                        settings.strategy == .learned && !budgetHit && record.cutByBudget != true
                        ? String(
                            format:
                                "screened at fidelity %.3f with %d other uncertain training run(s); not among the best 1/%d",
                            record.fidelity ?? 0, max(0, wave.count - 1), settings.eta)
                        : record.cutByBudget == true || budgetHit
                            ? String(
                                format: "cut by the budget of %.0f s at fidelity %.3f (rung %d of %d)",
                                settings.budgetSeconds,
                                record.fidelity ?? 0, rung + 1, rungCount)
                            : String(
                                format: "pruned after rung %d of %d at fidelity %.3f (not among the best 1/%d)",
                                rung + 1,
                                rungCount, record.fidelity ?? 0, settings.eta)
                }
                trials[id] = trial
            }
            // Checkpoint the runs that go on (and the finished ones, for export); forget the pruned ones. A crash before
            // a checkpoint loses only compute: training is deterministic, so retraining reaches the same state.
            let aliveGroups = Set(alive.compactMap { member[$0]?.0.key })
            let completeGroups = Set(
                decidedNow.filter { trials[$0]?.status == .complete }.compactMap { member[$0]?.0.key })
            for output in outputs where output.epochsTrained > 0 {
                let key = output.groupKey
                guard aliveGroups.contains(key) || completeGroups.contains(key) else {
                    sessions[key] = nil
                    continue
                }
                if let storage, let session = sessions[key] {
                    try session.checkpointData().write(
                        to: storage.checkpoints.appendingPathComponent(checkpointName(key)), options: .atomic)
                    // A finished run is read back from its (small, best-weights-only) checkpoint when needed.
                    if !aliveGroups.contains(key) { sessions[key] = nil }
                }
            }
            // Latency: measured once per complete candidate, serially, while no worker trains.
            for id in Set(decidedNow).sorted() {
                guard var trial = trials[id], trial.status == .complete, trial.epochsRun ?? 0 > 0,
                    let (group, candidate) = member[id]
                else {
                    continue
                }
                let profile: LatencyProfile
                if let record = latencyRecords[id], let p50 = record.p50, let p95 = record.p95 {
                    profile = LatencyProfile(p50: p50, p95: p95, throughput: record.throughput ?? 0)
                } else {
                    let bundle = try bundleFor(
                        candidate, group: group, features: features(group.featureKey), sessions: sessions,
                        storage: storage, labels: task.vocabulary.labels, epochs: trial.epochsRun ?? 0, task: task)
                    profile = try LatencyProfiler.profile(bundle, inputs: Array(task.validation.inputs.prefix(512)))
                    var record = JournalRecord(type: "latency")
                    record.candidate = id
                    record.p50 = profile.p50
                    record.p95 = profile.p95
                    record.throughput = profile.throughput
                    try storage?.journal.append(record)
                }
                trial.latencyMsP50 = profile.p50
                trial.latencyMsP95 = profile.p95
                trial.throughputPerSecond = profile.throughput
                trial.costPer1MUSD = profile.p50 / 1000 * 1e6 * settings.usdPerVCPUHour / 3600
                trials[id] = trial
                announced += 1
                try events(.trial(trial, index: announced, total: total))
            }
            if budgetHit { break }
        }

        try events(.phase("frontier and recommendation"))
        var ordered = candidates.compactMap { trials[$0.id] }
        for index in ordered.indices {
            ordered[index].predicted = settings.predictions[ordered[index].id]
            if candidates.first(where: { $0.id == ordered[index].id })?.invented == true {
                ordered[index].invented = true
            }
        }
        if settings.constraints.device != nil {
            for index in ordered.indices {
                ordered[index].deviceLatencyMsP50 = ordered[index].latencyMsP50.map {
                    $0 * (settings.constraints.latencyScale ?? 1)
                }
            }
        }
        let teacherLatency = teacherLatencyMs(task)
        let complete = ordered.filter { $0.status == .complete }
        var points = complete.map { trial in
            // Between students, FLOPs stand in for latency (deterministic); a student measured slower than the
            // teacher is placed behind it.
            let slowerThanTeacher = teacherLatency.map { (trial.latencyMsP50 ?? 0) > $0 } ?? false
            return FrontierPoint(
                id: trial.id, quality: trial.metrics[metric.rawValue]?.value ?? -.infinity,
                latencyTier: slowerThanTeacher ? 2 : 0, flops: Double(trial.flopsPerExample),
                size: Double(trial.sizeBytes))
        }
        points.append(
            FrontierPoint(id: "teacher", quality: teacherValue, latencyTier: 1, flops: .infinity, size: .infinity))
        let frontier = paretoFrontier(of: points).sorted {
            $0.quality > $1.quality || ($0.quality == $1.quality && $0.id < $1.id)
        }.map(\.id)
        var recommendation = Recommender.recommend(
            trials: ordered, metric: metric.rawValue, teacherValue: teacherValue, constraints: settings.constraints)

        try events(.phase("test-set evaluation of the frontier"))
        var recommendationTest: [String: MetricEstimate]?
        var recommendationDifference: MetricEstimate?
        var recommendedBundle: ModelBundle?
        var cascades: [CascadeCurve] = []
        // Frontier students' test probabilities, for a cascade recommendation's paired test difference.
        var frontierTestProbabilities: [String: Matrix] = [:]
        // Test figures for the frontier, the recommendation and each family's best on validation (the per-family
        // comparison); nothing on the test set feeds back into a decision.
        var familyLeaders: [Family: TrialResult] = [:]
        for trial in complete {
            let value = trial.metrics[metric.rawValue]?.value ?? -.infinity
            if value > familyLeaders[trial.family]?.metrics[metric.rawValue]?.value ?? -.infinity {
                familyLeaders[trial.family] = trial
            }
        }
        let leaders = Set(familyLeaders.values.map(\.id))
        for index in ordered.indices {
            let id = ordered[index].id
            ordered[index].onFrontier = frontier.contains(id)
            guard ordered[index].status == .complete,
                ordered[index].onFrontier || id == recommendation.candidate || leaders.contains(id),
                let (group, candidate) = member[id]
            else { continue }
            let bundle = try bundleFor(
                candidate, group: group, features: features(group.featureKey), sessions: sessions, storage: storage,
                labels: task.vocabulary.labels, epochs: ordered[index].epochsRun ?? 0, task: task)
            let testProbabilities = try bundle.model.probabilities(
                features(group.featureKey).test(at: candidate.precision))
            let predictions = testProbabilities.argmaxPerRow()
            let evaluation = try testEvaluator.evaluate(predictions)
            if ordered[index].onFrontier {
                // The cascade curve: thresholds placed on validation, applied to test as they are.
                let validationProbabilities = try bundle.model.probabilities(
                    features(group.featureKey).validation(at: candidate.precision))
                let thresholds = Cascade.thresholds(topProbabilities: Cascade.topProbabilities(validationProbabilities))
                func points(_ probabilities: Matrix, _ evaluator: Evaluator) throws -> [CascadePoint] {
                    try Cascade.points(
                        probabilities: probabilities, thresholds: thresholds, evaluator: evaluator,
                        studentCostPer1M: ordered[index].costPer1MUSD, teacherCostPer1M: teacherCostPer1M(task),
                        studentLatencyMs: ordered[index].latencyMsP50, teacherLatencyMs: teacherLatency)
                }
                frontierTestProbabilities[id] = testProbabilities
                cascades.append(
                    CascadeCurve(
                        candidate: id, validation: try points(validationProbabilities, validationEvaluator),
                        test: try points(testProbabilities, testEvaluator)))
            }
            let metrics = Dictionary(uniqueKeysWithValues: evaluation.estimates.map { ($0.key.rawValue, $0.value) })
            ordered[index].testMetrics = metrics
            if id == recommendation.candidate {
                recommendationTest = metrics
                recommendationDifference = evaluation.difference(
                    to: teacherTest, on: metric, resampler: testEvaluator.resampler)
                recommendedBundle = bundle
            }
        }
        // A cascade can turn "keep the teacher" into "a student on its sure inputs, the teacher on the rest".
        let allowed = Set(
            ordered.filter { trial in
                (settings.constraints.maxModelBytes.map { trial.sizeBytes <= $0 } ?? true)
                    && (settings.constraints.maxLatencyMs.map {
                        (trial.latencyMsP50 ?? .infinity) * (settings.constraints.latencyScale ?? 1) <= $0
                    } ?? true)
            }.map(\.id))
        let reconsidered = Cascade.reconsider(
            recommendation, curves: cascades.filter { allowed.contains($0.candidate) }, metric: metric.rawValue,
            teacherValue: teacherValue,
            teacherCostPer1M: teacherCostPer1M(task), maxDrop: settings.constraints.maxDrop)
        if case .cascade(let id, let point, _) = reconsidered, let index = ordered.firstIndex(where: { $0.id == id }),
            let (group, candidate) = member[id], let curve = cascades.first(where: { $0.candidate == id }),
            let testPoint = curve.test.first(where: { $0.threshold == point.threshold })
        {
            recommendation = reconsidered
            recommendedBundle = try bundleFor(
                candidate, group: group, features: features(group.featureKey), sessions: sessions, storage: storage,
                labels: task.vocabulary.labels, epochs: ordered[index].epochsRun ?? 0, task: task)
            recommendationTest = testPoint.metrics
            // The paired test difference: the cascade's labels (student where sure, teacher elsewhere) vs the teacher.
            if let probabilities = frontierTestProbabilities[id] {
                let labels = Cascade.labels(
                    top: Cascade.topProbabilities(probabilities), predictions: probabilities.argmaxPerRow(),
                    teacher: testEvaluator.teacherLabels, threshold: point.threshold)
                recommendationDifference = try testEvaluator.evaluate(labels).difference(
                    to: teacherTest, on: metric, resampler: testEvaluator.resampler)
            }
        } else {
            recommendation = reconsidered.cascadePoint == nil ? reconsidered : recommendation
        }
        let teacher = TeacherSummary(
            name: task.teacher.name,
            metrics: Dictionary(uniqueKeysWithValues: teacherTest.estimates.map { ($0.key.rawValue, $0.value) }),
            validationMetrics: Dictionary(
                uniqueKeysWithValues: teacherValidation.estimates.map { ($0.key.rawValue, $0.value) }),
            latencyMsP50: teacherLatency, costPer1MUSD: teacherCostPer1M(task), params: task.teacher.params,
            onFrontier: frontier.contains("teacher"), models: SearchEngine.teacherModels(task))
        let skippedAll = ordered.allSatisfy { $0.status == .skipped }
        let wall = elapsed()
        var summary = SearchSummary(
            strategy: settings.strategy.rawValue, candidateEpochs: candidateEpochs, wallSeconds: wall,
            trials: trainingRuns.count,
            stoppedBecause: budgetHit
                ? String(format: "the budget of %.0f s ran out", settings.budgetSeconds)
                : skippedAll
                    ? "every candidate breaks a constraint"
                    : settings.strategy == .exhaustive
                        ? "every feasible candidate was trained"
                        : settings.strategy == .learned
                            ? String(
                                format:
                                    "no untrained candidate could change the recommendation at z = %.1f (%d of %d feasible candidates not trained%@)",
                                settings.confidenceZ, notTrained, feasible,
                                screenedOut > 0
                                    ? String(format: ", %d screened at low fidelity and pruned", screenedOut) : "")
                            : "the last rung finished",
            encoderSeconds: encoderSeconds > 0 ? encoderSeconds : nil,
            historyTasks: settings.strategy == .learned ? settings.historyTasks : nil,
            similarTasks: settings.strategy == .learned && !settings.similarTasks.isEmpty ? settings.similarTasks : nil,
            executor: settings.executor.summary)
        summary.budgetSeconds = settings.budgetSeconds
        summary.afterTrainingSeconds = trainingEnded.map { Double(DispatchTime.now().uptimeNanoseconds - $0) / 1e9 }
        if budgetHit {
            summary.epochInFlightSeconds = epochInFlight ?? 0
            summary.cutEvaluationSeconds = cutEvaluation ?? 0
            summary.overrunSeconds = max(0, wall - settings.budgetSeconds)
        }
        return SearchOutcome(
            taskName: task.name, kind: task.kind, labels: task.vocabulary.labels, primaryMetric: metric.rawValue,
            teacher: teacher, trials: ordered, frontier: frontier, recommendation: recommendation,
            recommendationTestMetrics: recommendationTest, recommendationTestDifference: recommendationDifference,
            recommendedBundle: recommendedBundle, constraints: settings.constraints, summary: summary,
            seed: settings.seed,
            splitSizes: ["train": task.train.count, "validation": task.validation.count, "test": task.test.count],
            cascades: cascades)
    }

    /// One group's work in one rung, run by a worker: restore or continue its session, train to the rung's epochs
    /// (stopping at the budget), checkpoint, and evaluate every alive member on validation.
    static func runRung(_ work: RungWork, task: TaskData) throws -> RungOutput {
        let group = work.group
        let (train, validation) = work.features.trainingSplits(of: task)
        // Training time includes making (initializing or restoring) the session: a 2^21-bucket embedding is itself
        // a quarter of a second of initialization, which fastText's timed fit also pays.
        let started = DispatchTime.now().uptimeNanoseconds
        var session: TrainingSession
        if let existing = work.session {
            session = existing
        } else if let checkpoint = work.checkpoint, let data = FileManager.default.contents(atPath: checkpoint.path) {
            session = try TrainingSession(
                restoring: data, file: checkpoint.lastPathComponent, architecture: group.architecture, train: train,
                options: group.options)
        } else {
            session = TrainingSession(
                architecture: group.architecture, train: train, options: group.options, seed: group.seed)
        }
        let before = session.epochsRun
        let deadline = work.deadline
        // Epoch by epoch, as `train(untilEpoch:shouldStop:)` runs them, timing each: the step that was running when
        // the budget ran out (making the session, or an epoch) is how far past the budget this training run went.
        var inFlight: Double?
        func timed(since begin: UInt64) {
            let now = DispatchTime.now().uptimeNanoseconds
            if begin < deadline && now > deadline { inFlight = max(inFlight ?? 0, Double(now - begin) / 1e9) }
        }
        timed(since: started)
        while session.epochsRun < work.targetEpochs && !session.isFinished
            && DispatchTime.now().uptimeNanoseconds < deadline
        {
            let epochStarted = DispatchTime.now().uptimeNanoseconds
            try session.runEpochs(1, train: train, validation: validation)
            timed(since: epochStarted)
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        let cut = !session.isFinished && session.epochsRun < work.targetEpochs
        let evaluationStarted = DispatchTime.now().uptimeNanoseconds
        var records: [JournalRecord] = []
        for candidate in work.alive {
            var record = JournalRecord(type: "rung")
            record.candidate = candidate.id
            record.group = group.key
            record.rung = work.rung
            record.epochs = session.epochsRun
            record.fidelity = session.isFinished ? 1 : Double(session.epochsRun) / Double(group.options.epochs)
            record.bestEpoch = session.bestEpoch
            record.finished = session.isFinished
            record.cutByBudget = cut
            record.trainSeconds = seconds
            record.epochInFlightSeconds = inFlight
            if session.epochsRun > 0 {
                let model = session.bestModel.quantized(to: candidate.precision)
                let predictions = try model.probabilities(work.features.validation(at: candidate.precision))
                    .argmaxPerRow()
                if case .trees(let trees) = model {
                    // A booster that stopped early is smaller than planned: report what it is.
                    let bundle = ModelBundle(
                        candidate: candidate.id, model: model, featurizer: work.features.featurizer, labels: [])
                    record.sizeBytes = bundle.sizeBytes
                    record.flops = trees.comparisonsPerExample
                }
                let evaluation = try work.evaluator.evaluate(predictions)
                record.metrics = Dictionary(
                    uniqueKeysWithValues: evaluation.estimates.filter { work.reported.contains($0.key) }.map {
                        ($0.key.rawValue, $0.value)
                    })
                record.differenceToTeacher = evaluation.difference(
                    to: work.teacherValidation, on: work.metric, resampler: work.evaluator.resampler)
            }
            records.append(record)
        }
        // Evaluating the members runs after the budget when training was cut by it: part of the overrun.
        if cut {
            let evaluation = Double(DispatchTime.now().uptimeNanoseconds - evaluationStarted) / 1e9
            for index in records.indices { records[index].evaluationSeconds = evaluation }
        }
        return RungOutput(
            groupKey: group.key, session: session, records: records, cutByBudget: cut,
            epochsTrained: session.epochsRun - before)
    }

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

    static func checkpointName(_ key: String) -> String { "\(key).safetensors" }

    /// Writes the journal header of a new run, or checks that an interrupted run's header matches this job.
    static func writeOrCheckHeader(
        storage: RunStorage, task: TaskData, settings: SearchSettings, candidates: [Candidate]
    ) throws {
        var header = JournalRecord(type: "header")
        header.version = 1
        header.job = storage.jobName
        header.source = storage.source
        header.options = storage.options
        header.taskHash = SearchFingerprint.task(task)
        header.catalogHash = SearchFingerprint.catalog(candidates)
        header.settingsHash = SearchFingerprint.hash(
            "\(settings.seed)|\(settings.strategy.rawValue)|\(settings.eta)|\(settings.maxRungs)|\(settings.constraints.maxModelBytes ?? -1)|"
                + "\(settings.constraints.maxFlops ?? -1)|\(settings.metric ?? "-")|\(settings.suite.resamples)|"
                + "\(settings.suite.metrics.map(\.rawValue))|\(settings.suite.primary?.rawValue ?? "-")")
        guard let resume = storage.resume, let previous = resume.first else {
            try storage.journal.append(header)
            return
        }
        let file = storage.journal.url.relativePath
        if previous.taskHash != header.taskHash {
            throw DataError(
                .badData,
                "this journal was written for other data (job \(previous.job ?? "?")); resume it with the same rows",
                file: file, line: 1)
        }
        if previous.catalogHash != header.catalogHash {
            throw DataError(
                .badData,
                "this journal was written for another candidate catalog; resume with the catalog it was started with",
                file: file, line: 1)
        }
        if previous.settingsHash != header.settingsHash {
            throw DataError(
                .badData,
                "this journal was written with other settings (seed, strategy, constraints, metric or evals); resume with the same ones",
                file: file, line: 1)
        }
    }
    /// The primary metric: the flag or job, else the suite, else accuracy when validation has gold, else agreement.
    public static func primaryMetric(task: TaskData, settings: SearchSettings) throws -> Metric {
        let hasGold = task.validation.hasGold && task.test.hasGold
        if let name = settings.metric {
            guard let metric = Metric(rawValue: name) else {
                throw DataError(
                    .usage,
                    "unknown metric \"\(name)\"; choose from \(Metric.allCases.map(\.rawValue).joined(separator: ", "))"
                )
            }
            if metric == .accuracy && !hasGold {
                throw DataError(
                    .usage, "metric accuracy needs gold labels in validation and test rows; use agreement or macro_f1")
            }
            return metric
        }
        if let primary = settings.suite.primary, primary != .accuracy || hasGold { return primary }
        return hasGold ? .accuracy : .agreement
    }

    /// The teacher's median latency: task.json or the job, else the median of the rows' `latency_ms`.
    static func teacherLatencyMs(_ task: TaskData) -> Double? {
        if let latency = task.teacher.latencyMsP50 { return latency }
        let recorded = (task.validation.teacherLatencyMs + task.test.teacherLatencyMs).compactMap { $0 }.sorted()
        return recorded.isEmpty ? nil : LatencyProfiler.percentile(recorded, 0.5)
    }

    /// The teacher's cost of a million calls: from token prices and the rows' usage when both exist, else
    /// 1000 × `cost_per_1k_requests_usd`.
    static func teacherCostPer1M(_ task: TaskData) -> Double? {
        let usage = (task.validation.teacherUsage + task.test.teacherUsage).compactMap { $0 }
        if let inputPrice = task.teacher.inputPerMTokUSD, let outputPrice = task.teacher.outputPerMTokUSD,
            !usage.isEmpty
        {
            let meanCost =
                usage.reduce(0.0) { $0 + Double($1.input) * inputPrice + Double($1.output) * outputPrice } / 1e6
                / Double(usage.count)
            return meanCost * 1e6
        }
        return task.teacher.costPer1kRequestsUSD.map { $0 * 1000 }
    }
}

extension SearchEngine {
    /// Rows per answering model over every split (nil when no row records one).
    static func teacherModels(_ task: TaskData) -> [String: Int]? {
        var counts: [String: Int] = [:]
        for split in [task.train, task.validation, task.test] {
            for model in split.teacherModels.compactMap({ $0 }) { counts[model, default: 0] += 1 }
        }
        return counts.isEmpty ? nil : counts
    }
}

import Foundation
import RetortData
import RetortEvals

/// The search: candidate space, scheduler (a ``RungStrategy``: exhaustive, Pareto-aware successive halving or learned;
/// parallel workers, hard budget, journal and resume), frontier, recommendation and test-set evaluation.
///
/// A newcomer's map, one file per phase, in the order they run: TeacherEvaluation, Featurization, CandidateSpace,
/// then per rung the strategy's plan (ExhaustiveStrategy, HalvingStrategy, LearnedStrategy), RungTraining (workers,
/// journal), RungWorker (what one worker does), RungDecisions, Checkpoints, LatencyMeasurement; then
/// FrontierAndRecommendation, TestEvaluation, CascadeRecommendation and SearchOutcomeAssembly.
public enum SearchEngine {
    /// Runs the search on `task`. With `storage`, every finished rung is journaled and checkpointed, and
    /// `storage.resume` continues an interrupted run. Events (phases, progress, decided trials) go to `announce` as
    /// they happen. Throws ``SearchError`` or `DataError` on a bad catalog, metric or journal, and `CancellationError`
    /// between rungs when the task is cancelled.
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
        var run = try SearchRun(task: task, settings: settings, storage: storage, events: events)
        var strategy = settings.strategy.schedule(for: run)
        try events(
            .phase(
                "\(settings.strategy.rawValue): \(run.feasible) feasible candidates in \(run.groups.count) training runs, "
                    + "\(strategy.rungCount) rung(s), \(settings.workers) worker(s), budget \(Int(settings.budgetSeconds)) s"
            ))
        for rung in 0..<strategy.rungCount {
            let plan = try strategy.plan(rung: rung, run: &run)
            guard !plan.groups.isEmpty else { break }
            // Cancellation (Ctrl-C, or a caller giving up) stops between rungs; the journal lets --resume continue.
            try Task.checkCancellation()
            let result = try await run.trainRung(plan, rung: rung, rungCount: strategy.rungCount)
            if result.unstarted > 0 { run.budgetHit = true }
            var decided = run.absorb(result.outputs)
            if run.budgetHit {
                decided += try run.settleAfterBudget()
            } else {
                decided += strategy.decide(rung: rung, run: &run)
            }
            let decidedSet = Set(decided)
            run.recordDecided(decidedSet, rung: rung, strategy: strategy)
            try run.checkpoint(result.outputs, decided: decidedSet)
            try run.measureLatency(decidedSet)
            if run.budgetHit { break }
        }
        var ranked = try run.frontierAndRecommendation()
        var figures = try run.testEvaluation(&ranked)
        try run.cascadeRecommendation(&ranked, figures: &figures)
        run.economics(&ranked, figures: &figures)
        return run.outcome(ranked: ranked, figures: figures, strategy: strategy)
    }

    /// The primary metric: the flag or job, else the suite, else the task kind's default (for classification:
    /// accuracy when validation and test have gold, else agreement).
    public static func primaryMetric(task: TaskData, settings: SearchSettings) throws -> Metric {
        try primaryMetric(
            kind: task.answerKind, hasGold: task.validation.hasGold && task.test.hasGold, settings: settings)
    }

    /// The primary metric of a task of `kind` (`hasGold`: validation and test carry gold answers): the flag or job,
    /// else the suite's when the kind knows it, else the kind's default.
    public static func primaryMetric<Kind: AnswerKind>(kind: Kind, hasGold: Bool, settings: SearchSettings) throws
        -> Metric
    {
        if let name = settings.metric {
            let known = kind.metrics(hasGold: true)
            guard let metric = Metric(rawValue: name), known.contains(metric) else {
                throw DataError(
                    .usage,
                    "unknown metric \"\(name)\"; choose from \(known.map(\.rawValue).joined(separator: ", "))"
                )
            }
            if kind.needsGold(metric) && !hasGold {
                throw DataError(
                    .usage,
                    "metric \(metric.rawValue) needs gold labels in validation and test rows; use "
                        + kind.metrics(hasGold: false).map(\.rawValue).joined(separator: " or "))
            }
            return metric
        }
        if let primary = settings.suite.primary, kind.knows(primary), !kind.needsGold(primary) || hasGold {
            return primary
        }
        return kind.defaultMetric(hasGold: hasGold)
    }
}

import Foundation
import RetortData
import RetortSearch

/// The history's side of structured tasks (FORMATS.md §9): their fingerprint, and what past structured searches predict
/// for a new one's candidates.
public enum StructuredHistory {
    /// The task's id in the history: ``SearchFingerprint/structuredTask(_:)`` (its schema and every row), so the same
    /// rows give the same id wherever they live, as ``SearchFingerprint/task(_:)`` does for label tasks.
    public static func fingerprint(_ task: StructuredTaskData) -> String { SearchFingerprint.structuredTask(task) }

    /// The primary metric a structured search of `task` under `settings` scores by (exact match with gold, else
    /// agreement, unless the job names one).
    public static func primaryMetric(task: StructuredTaskData, settings: SearchSettings) throws -> String {
        try SearchEngine.primaryMetric(
            kind: task.answerKind, hasGold: task.validation.hasGold && task.test.hasGold, settings: settings
        ).rawValue
    }

    /// What the history at `path` predicts for `candidates` of the structured task with `meta` scored by `metric`:
    /// every candidate's gap (mean and sd) by id, the nearest past structured tasks, and how many past structured tasks
    /// the predictions rest on (0, with no predictions, when the file is missing or holds no structured task scored by
    /// `metric`).
    public static func predictions(
        fromHistoryAt path: String, meta: MetaFeatures, candidates: [StructuredCandidate], metric: String
    ) throws -> (predictions: [String: CandidatePrediction], similarTasks: [SimilarTask], historyTasks: Int) {
        guard FileManager.default.fileExists(atPath: path) else { return ([:], [], 0) }
        let predictor = try HistoryPredictor(
            store: try HistoryStore(path: path), kind: TaskKind.structured.rawValue, metric: metric)
        guard predictor.taskCount > 0 else { return ([:], [], 0) }
        return (
            predictor.predictions(for: candidates, meta: meta), predictor.similarTasks(to: meta), predictor.taskCount
        )
    }
}

extension SearchSettings {
    /// Lets the history at `path` inform a structured search, as
    /// ``learn(fromHistoryAt:task:meta:strategyChosen:resuming:)`` does a label search's: with past structured tasks
    /// scored by the search's metric, every candidate of the catalog's `structured:` section gets a prediction in
    /// ``predictions`` and the similar tasks are kept as evidence. The strategy is left as it is. Returns how many past
    /// structured tasks the predictions rest on (0: none, or a missing file).
    @discardableResult
    public mutating func learn(fromHistoryAt path: String, structured task: StructuredTaskData, meta: MetaFeatures)
        throws -> Int
    {
        let metric = try StructuredHistory.primaryMetric(task: task, settings: self)
        let learned = try StructuredHistory.predictions(
            fromHistoryAt: path, meta: meta, candidates: catalog.structured, metric: metric)
        guard learned.historyTasks > 0 else { return 0 }
        historyTasks = learned.historyTasks
        similarTasks = learned.similarTasks
        predictions.merge(learned.predictions) { _, new in new }
        return learned.historyTasks
    }
}

extension HistoryStore {
    /// Records the finished structured run in `folder` (its report; the journal's rung records, when it has any) as run
    /// `job/runId` of `task`; returns how many structured tasks the history holds now.
    @discardableResult
    public func record(
        finished folder: URL, job: String, runId: String, structured task: StructuredTaskData, meta: MetaFeatures,
        report: RunReport
    ) throws -> Int {
        let rungs = ((try? JournalRecord.read(folder.appendingPathComponent("journal.jsonl"))) ?? []).filter {
            $0.type == "rung"
        }
        _ = try record(
            HistoryRun(
                id: "\(job)/\(runId)", taskId: StructuredHistory.fingerprint(task), meta: meta, report: report,
                rungs: rungs))
        return try taskCount(kind: TaskKind.structured.rawValue)
    }
}

import Foundation
import RetortData
import RetortSearch

extension SearchSettings {
    /// Lets the history at `path` steer the search: the learned strategy when it was asked for, or when no strategy
    /// was chosen, the run is new and the history holds three or more tasks of this kind. With past tasks of this
    /// kind, every feasible candidate gets a prediction (``HistoryPredictor``) and the similar tasks are kept as
    /// evidence. Returns whether the search is learned; a missing file is an empty history.
    public mutating func learn(
        fromHistoryAt path: String, task: TaskData, meta: MetaFeatures, strategyChosen: Bool, resuming: Bool
    ) throws -> Bool {
        let store = FileManager.default.fileExists(atPath: path) ? try HistoryStore(path: path) : nil
        let kindTasks = try store?.taskCount(kind: task.kind.rawValue) ?? 0
        guard strategy == .learned || (!strategyChosen && kindTasks >= 3 && !resuming) else { return false }
        learnedFallback = strategy == .learned ? .halving : strategy
        strategy = .learned
        if let store, kindTasks > 0 {
            let metric = try SearchEngine.primaryMetric(task: task, settings: self).rawValue
            let predictor = try HistoryPredictor(store: store, kind: task.kind.rawValue, metric: metric)
            historyTasks = predictor.taskCount
            historyTypicalSD = predictor.widening.typicalSD
            historyOffsetSpread = predictor.widening.offsetSpread
            similarTasks = predictor.similarTasks(to: meta)
            for candidate in SearchEngine.candidateSpace(task: task, settings: self) where candidate.status == .complete
            {
                predictions[candidate.id] = predictor.predict(
                    meta: meta, family: candidate.family, precision: candidate.precision,
                    sizeBytes: candidate.sizeBytes, flops: candidate.flopsPerExample)
            }
        }
        return true
    }
}

extension HistoryStore {
    /// Records the finished run in `folder` (its report and the journal's rung records) as run `job/runId` of `task`;
    /// returns how many tasks of the task's kind the history holds now.
    @discardableResult
    public func record(
        finished folder: URL, job: String, runId: String, task: TaskData, meta: MetaFeatures, report: RunReport
    ) throws -> Int {
        let rungs = ((try? JournalRecord.read(folder.appendingPathComponent("journal.jsonl"))) ?? []).filter {
            $0.type == "rung"
        }
        _ = try record(
            HistoryRun(
                id: "\(job)/\(runId)", taskId: SearchFingerprint.task(task), meta: meta, report: report, rungs: rungs))
        return try taskCount(kind: task.kind.rawValue)
    }
}

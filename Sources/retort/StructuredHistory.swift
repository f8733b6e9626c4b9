import Foundation
import RetortData
import RetortHistory
import RetortSearch

/// Records a finished structured run (its run folder `final` and report) in the history at `path` (nil: `--no-history`,
/// nothing recorded), with the task's structured meta-features (`meta`, or computed now when nil). The run folder is
/// complete either way: a history that cannot take the run is a warning, not a failure, as for label runs.
func recordStructuredRun(
    _ final: URL, job: Job, runId: String, task: StructuredTaskData, report: RunReport, history path: String?,
    meta: MetaFeatures? = nil, log: (String) -> Void
) {
    guard let path else { return }
    do {
        let history = try HistoryStore(path: path)
        let tasks = try history.record(
            finished: final, job: job.name, runId: runId, structured: task,
            meta: meta ?? MetaFeatures(structured: task, seed: job.seed), report: report)
        log(
            "history: recorded in \(displayPath(URL(fileURLWithPath: history.path))) (\(tasks) structured task(s) so far)"
        )
    } catch {
        ErrorReporting.printError("warning: the run is complete but was not recorded in the history: \(error)")
    }
}

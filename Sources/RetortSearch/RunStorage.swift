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

import Foundation
import RetortData
import RetortEvals
import RetortNumerics
import RetortStudents

extension SearchEngine {
    /// Writes the journal header of a new run, or checks that an interrupted run's header matches this job.
    static func writeOrCheckHeader(
        storage: RunStorage, task: TaskData, settings: SearchSettings, candidates: [Candidate]
    ) throws {
        try writeOrCheckHeader(
            storage: storage, taskHash: SearchFingerprint.task(task),
            catalogHash: SearchFingerprint.catalog(candidates), settings: settings)
    }

    /// Writes the journal header of a new run, or checks that an interrupted run's header matches: the rows
    /// (`taskHash`), the candidates (`catalogHash`) and the settings that decide trials.
    static func writeOrCheckHeader(
        storage: RunStorage, taskHash: String, catalogHash: String, settings: SearchSettings
    ) throws {
        var header = JournalRecord(type: "header")
        header.version = 1
        header.job = storage.jobName
        header.source = storage.source
        header.options = storage.options
        header.taskHash = taskHash
        header.catalogHash = catalogHash
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
}

import Foundation
import RetortData
import RetortEvals
import RetortStudents
import RetortTestSupport
import Testing

@testable import RetortSearch

/// A structured search's journal and checkpoints: an interrupted run resumes from them, taking back the decided
/// candidates without training them again and reaching the uninterrupted run's figures.
@Suite struct StructuredResumeTests {
    static let catalog = """
        structured:
          - family: nearest
            buckets_log2: 12
          - family: fields
            buckets_log2: 12
            hidden: 0
            epochs: 4
            precision: [fp32, int8]
        """

    static func storage(_ folder: URL, resume: [JournalRecord]? = nil) throws -> RunStorage {
        let checkpoints = folder.appendingPathComponent("checkpoints")
        try FileManager.default.createDirectory(at: checkpoints, withIntermediateDirectories: true)
        return RunStorage(
            journal: try Journal(url: folder.appendingPathComponent("journal.jsonl")), checkpoints: checkpoints,
            resume: resume, jobName: "resume-test", source: "task")
    }

    @Test("an interrupted run resumes from its journal and checkpoints: decided students come back, the rest train")
    func resumes() throws {
        let task = try StructuredTaskData.load(folder: try SyntheticStructured.writeTask())
        var settings = try StructuredSearchTests.settings(catalog: Self.catalog)
        settings.speedTolerance = 4
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("resume-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let first = try StructuredSearch.run(task: task, settings: settings, storage: try Self.storage(folder)).outcome

        // The journal: a header, then a rung record with the whole trial for every candidate.
        let journal = folder.appendingPathComponent("journal.jsonl")
        let records = try JournalRecord.read(journal)
        #expect(records.first?.type == "header" && records.first?.taskHash == SearchFingerprint.structuredTask(task))
        let rungs = records.filter { $0.type == "rung" }
        #expect(rungs.compactMap(\.trial?.id) == ["nearest-b12", "fields-b12-e4-fp32", "fields-b12-e4-int8"])
        for id in ["nearest-b12", "fields-b12-e4-fp32"] {
            let saved = folder.appendingPathComponent("checkpoints/\(id)")
            #expect(StructuredStudent.isStructured(folder: saved))
            #expect(
                FileManager.default.fileExists(atPath: saved.appendingPathComponent("validation-answers.jsonl").path))
        }

        // Interrupt it after the nearest candidate: keep its records, drop the fields run's records and checkpoints.
        let lines = try String(contentsOf: journal, encoding: .utf8).split(separator: "\n")
        let kept = lines.filter { !$0.contains("fields-b12") }
        try (kept.joined(separator: "\n") + "\n").write(to: journal, atomically: true, encoding: .utf8)
        for id in ["fields-b12-e4-fp32", "fields-b12-e4-int8"] {
            try FileManager.default.removeItem(at: folder.appendingPathComponent("checkpoints/\(id)"))
        }
        let interrupted = try JournalRecord.read(journal)
        let second = try StructuredSearch.run(
            task: task, settings: settings, storage: try Self.storage(folder, resume: interrupted)
        ).outcome

        // The nearest candidate came back from its checkpoint (its journaled figures, timings included); the fields run
        // trained again, to the same scores.
        let after = try JournalRecord.read(journal).filter { $0.type == "rung" }.compactMap(\.trial?.id)
        #expect(after == ["nearest-b12", "fields-b12-e4-fp32", "fields-b12-e4-int8"])
        let restored = try #require(second.trials.first { $0.id == "nearest-b12" })
        let original = try #require(rungs.first?.trial)
        #expect(restored.trainSeconds == original.trainSeconds)
        for trial in first.trials {
            let again = try #require(second.trials.first { $0.id == trial.id })
            #expect(again.metrics == trial.metrics, "\(trial.id)")
            #expect(again.differenceToTeacher == trial.differenceToTeacher, "\(trial.id)")
            #expect(again.testMetrics == trial.testMetrics, "\(trial.id)")
            #expect(again.status == trial.status)
        }
        #expect(second.summary.trials == first.summary.trials)
    }

    @Test("a journal of other rows, another catalog or other settings is refused with its line")
    func refusesAnotherRun() throws {
        let task = try StructuredTaskData.load(folder: try SyntheticStructured.writeTask())
        let settings = try StructuredSearchTests.settings(catalog: Self.catalog)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("resume-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        _ = try StructuredSearch.run(task: task, settings: settings, storage: try Self.storage(folder))
        let records = try JournalRecord.read(folder.appendingPathComponent("journal.jsonl"))

        let other = try StructuredTaskData.load(folder: try SyntheticStructured.writeTask(novelItems: true))
        #expect(throws: DataError.self) {
            try StructuredSearch.run(
                task: other, settings: settings, storage: try Self.storage(folder, resume: records))
        }
        let otherCatalog = try StructuredSearchTests.settings(catalog: StructuredSearchTests.nearestCatalog)
        let error = #expect(throws: DataError.self) {
            try StructuredSearch.run(
                task: task, settings: otherCatalog, storage: try Self.storage(folder, resume: records))
        }
        #expect(error?.description.contains("journal.jsonl:1:") == true)
        #expect(error?.description.contains("another candidate catalog") == true)
    }
}

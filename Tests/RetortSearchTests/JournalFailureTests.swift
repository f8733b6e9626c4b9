import Foundation
import RetortData
import RetortTestSupport
import Testing

@testable import RetortSearch

/// Points an open journal at /dev/full: every later write fails with ENOSPC, as on a full disk.
func fillDisk(under journal: Journal) {
    let full = open("/dev/full", O_WRONLY)
    #expect(full >= 0, "/dev/full opens")
    #expect(dup2(full, journal.descriptor) == journal.descriptor)
    close(full)
}

@Suite struct JournalFailureTests {
    @Test(
        "a journal that stops taking writes mid-run stops the search with a located error; the records before it resume to the uninterrupted decisions"
    )
    func fullDiskStopsTheSearch() async throws {
        let task = try HalvingTests().task()
        let catalog = try CandidateCatalog(try YAMLValue.parse(halvingCatalog, file: "c.yaml"))
        let settings = SearchSettings(catalog: catalog, seed: 4, strategy: .halving, workers: 2)
        let full = try await SearchEngine.run(task: task, settings: settings, storage: nil)

        let folder = SyntheticTasks.temporaryFolder()
        let run = try storage(folder)
        let journal = run.journal
        await #expect {
            _ = try await SearchEngine.run(task: task, settings: settings, storage: run) { event in
                // The disk fills up once the first rung is journaled (its records, then this phase line).
                if case .phase(let name) = event, name.hasPrefix("rung 2/") { fillDisk(under: journal) }
            }
        } throws: { error in
            guard let error = error as? DataError else { return false }
            let written = (try? JournalRecord.read(journal.url).count) ?? -1
            return error.code == .io && error.file == journal.url.relativePath && error.line == written + 1
                && error.message.contains("No space left on device")
                && error.message.contains("retort search --resume \(folder.relativePath)")
        }
        let records = try JournalRecord.read(journal.url)
        #expect(records.contains { $0.type == "rung" && $0.rung == 0 } && !records.contains { ($0.rung ?? 0) > 0 })
        #expect(records.last?.phase?.hasPrefix("rung 2/") == true, "the last good record is the one before the failure")

        let resumed = try await SearchEngine.run(
            task: task, settings: settings, storage: try storage(folder, resume: records))
        #expect(decisions(resumed) == decisions(full))
    }

    @Test("a failure on the first record (the header) stops the search before anything trains")
    func fullDiskAtTheHeader() async throws {
        let task = try smallNumericTask(learnable: true)
        let catalog = try CandidateCatalog(try YAMLValue.parse(tinyCatalog, file: "c.yaml"))
        let run = try storage()
        fillDisk(under: run.journal)
        let trained = TrialCounter()
        await #expect {
            _ = try await SearchEngine.run(
                task: task, settings: SearchSettings(catalog: catalog, seed: 3), storage: run
            ) { event in if case .trial = event { trained.increment() } }
        } throws: { error in (error as? DataError)?.line == 1 }
        #expect(trained.value == 0)
    }

    @Test("reopening a journal whose last line a crash cut off drops that part, so the next record starts a line")
    func cutLineIsDroppedOnReopen() throws {
        let url = SyntheticTasks.temporaryFolder().appendingPathComponent("journal.jsonl")
        try FileManager.default.createDirectory(
            at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data((#"{"type":"header","version":1}"# + "\n" + #"{"type":"rung","candidate":"mlp-"#).utf8).write(to: url)
        let journal = try Journal(url: url)
        var record = JournalRecord(type: "rung")
        record.candidate = "linear-fp32"
        try journal.append(record)
        let records = try JournalRecord.read(url)
        #expect(records.map(\.type) == ["header", "rung"] && records.last?.candidate == "linear-fp32")
        // A failed write names the line it could not write: the third.
        fillDisk(under: journal)
        #expect {
            try journal.append(record)
        } throws: { error in (error as? DataError)?.line == 3 && (error as? DataError)?.code == .io }
    }
}

import Foundation
import RetortData
import RetortSearch
import RetortTestSupport
import Testing

@testable import RetortHistory

@Suite struct StarterHistoryTests {
    /// A history of three numeric tasks (different rows, one dataset name each) in `folder`.
    func threeTaskHistory(in folder: URL) async throws -> HistoryStore {
        let store = try HistoryStore(path: folder.appendingPathComponent("h.sqlite").path)
        for seed: UInt64 in [1, 11, 21] {
            var run = try await historyRun(try generatedTask(.numeric, seed: seed), job: "job\(seed)")
            run.report.taskDataset = "synthetic:blobs-\(seed)"
            try store.record(run)
        }
        return store
    }

    @Test("a compact gzip export is smaller, reads back, and a predictor learned from it predicts exactly the same")
    func compactExport() async throws {
        let folder = SyntheticTasks.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let store = try await threeTaskHistory(in: folder)
        let full = try store.exportAll()
        let compact = full.compacted()
        let encoder = JSONEncoder()
        let fullSize = try encoder.encode(full).count
        #expect(try encoder.encode(compact).count < fullSize * 3 / 4)

        let path = folder.appendingPathComponent("starter.json.gz").path
        try compact.write(to: path)
        let bytes = try #require(FileManager.default.contents(atPath: path))
        let compactSize = try encoder.encode(compact).count
        #expect(bytes.prefix(2) == Data([0x1f, 0x8b]), "gzip magic")
        #expect(bytes.count < compactSize / 3)
        let read = try HistoryExport.read(path)
        #expect(read.runs.map(\.id) == full.runs.map(\.id))
        #expect(read.runs.map(\.report.taskDataset) == full.runs.map(\.report.taskDataset))

        let other = try HistoryStore(path: folder.appendingPathComponent("other.sqlite").path)
        #expect(try other.importing(read) == 3)
        let meta = try MetaFeatures(task: try generatedTask(.numeric, seed: 31))
        let before = try HistoryPredictor(store: store, kind: "numeric", metric: "accuracy")
        let after = try HistoryPredictor(store: other, kind: "numeric", metric: "accuracy")
        #expect(before.taskCount == 3 && after.taskCount == 3)
        let trials = full.runs[0].report.candidates
        #expect(!trials.isEmpty)
        for trial in trials {
            let expected = before.predict(
                meta: meta, family: trial.family, precision: trial.precision, sizeBytes: trial.sizeBytes,
                flops: trial.flopsPerExample)
            #expect(expected != nil)
            #expect(
                after.predict(
                    meta: meta, family: trial.family, precision: trial.precision, sizeBytes: trial.sizeBytes,
                    flops: trial.flopsPerExample) == expected)
        }
        // A plain export reads back too, and a truncated gzip file is one clear error.
        let plain = folder.appendingPathComponent("plain.json").path
        try full.write(to: plain)
        #expect(try HistoryExport.read(plain).runs.count == 3)
        let cut = folder.appendingPathComponent("cut.json.gz")
        try bytes.prefix(bytes.count / 2).write(to: cut)
        #expect(throws: DataError.self) { try HistoryExport.read(cut.path) }
    }

    @Test("the starter goes into a history once: forgotten runs do not come back; runs match by dataset")
    func importOnce() async throws {
        let folder = SyntheticTasks.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let source = try await threeTaskHistory(in: folder)
        let path = folder.appendingPathComponent("starter.json.gz").path
        try source.exportAll().compacted().write(to: path)
        let store = try HistoryStore(path: folder.appendingPathComponent("default.sqlite").path)
        #expect(try StarterHistory.importOnce(path, into: store) == 3)
        #expect(try store.list().compactMap(\.dataset).sorted().first == "synthetic:blobs-1")
        #expect(try store.runs(matching: "synthetic:blobs-11").count == 1)
        #expect(try store.forget("synthetic:blobs-11") == 1)
        #expect(try StarterHistory.importOnce(path, into: store) == nil)
        #expect(try store.list().count == 2)
    }

    @Test("a starter imported before the gold-probe headroom existed gets it from the shipped export, once")
    func starterMetaFeaturesFilledIn() async throws {
        let folder = SyntheticTasks.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let export = try await threeTaskHistory(in: folder).exportAll().compacted()
        #expect(export.runs.allSatisfy { $0.meta.goldProbeHeadroom != nil })
        var old = export
        for index in old.runs.indices { old.runs[index].meta.goldProbeHeadroom = nil }
        let oldPath = folder.appendingPathComponent("old.json.gz").path
        try old.write(to: oldPath)
        let store = try HistoryStore(path: folder.appendingPathComponent("default.sqlite").path)
        #expect(try StarterHistory.importOnce(oldPath, into: store) == 3)
        // What an older Retort left: the starter imported, its records without the headroom.
        try store.setMetaValue(StarterHistory.metaFeaturesKey, "")
        #expect(try store.taskMetas().values.allSatisfy { $0.goldProbeHeadroom == nil })
        let newPath = folder.appendingPathComponent("starter.json.gz").path
        try export.write(to: newPath)
        #expect(try StarterHistory.importOnce(newPath, into: store) == nil)
        let expected = Dictionary(export.runs.map { ($0.taskId, $0.meta) }) { first, _ in first }
        #expect(try store.taskMetas() == expected)
        #expect(try store.exportAll().runs.map(\.meta) == export.runs.map(\.meta), "the run records carry it too")
        // Once: a value changed since stays as it is.
        var changed = try #require(expected.first?.value)
        changed.goldProbeHeadroom = 0.5
        try store.replaceMeta(of: try #require(expected.first?.key), with: changed)
        #expect(try StarterHistory.importOnce(newPath, into: store) == nil)
        #expect(try store.taskMetas()[try #require(expected.first?.key)]?.goldProbeHeadroom == 0.5)
    }

    @Test("RETORT_STARTER_HISTORY picks the starter or turns it off; a checkout finds history/starter.json.gz")
    func locate() {
        #expect(StarterHistory.locate(environment: ["RETORT_STARTER_HISTORY": "none"]) == nil)
        #expect(StarterHistory.locate(environment: ["RETORT_STARTER_HISTORY": ""]) == nil)
        #expect(StarterHistory.locate(environment: ["RETORT_STARTER_HISTORY": "/x/s.json.gz"]) == "/x/s.json.gz")
        let found = StarterHistory.locate(environment: [:], executable: URL(fileURLWithPath: "/nonexistent/retort"))
        let shipped = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("history/starter.json.gz").path
        #expect(found == (FileManager.default.fileExists(atPath: shipped) ? shipped : nil))
    }

    @Test("a meta-feature that never varies is scaled by its magnitude, a nearly constant one by 1% of it")
    func scaleFloor() {
        let (mean, scale) = HistoryPredictor.columnStatistics([[1, 5, 0, 100], [3, 5, 0, 100.5]])
        #expect(mean == [2, 5, 0, 100.25])
        #expect(scale[0] == 1)
        #expect(scale[1] == 5, "constant: its own magnitude")
        #expect(scale[2] == 1, "constant zero: magnitude 1")
        #expect(abs(scale[3] - 1.0025) < 1e-12, "std 0.25 is below 1% of 100.25")
    }
}

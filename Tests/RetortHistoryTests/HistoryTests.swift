import Foundation
import RetortData
import RetortHistory
import RetortNumerics
import RetortReports
import RetortSearch
import RetortTestSupport
import Testing

/// A small learnable task of `kind`, loaded.
func generatedTask(_ kind: TaskKind, seed: UInt64 = 1) throws -> TaskData {
    let rows: (Int, UInt64, String) -> [[String: Any]] = { count, seed, prefix in
        kind == .text
            ? SyntheticTasks.textRows(count: count, seed: seed, idPrefix: prefix)
            : SyntheticTasks.numericRows(count: count, learnable: true, seed: seed, idPrefix: prefix)
    }
    let folder = try SyntheticTasks.writeTask(
        name: kind == .text ? "words" : "blobs", kind: kind, train: rows(240, seed, "tr"),
        validation: rows(120, seed + 1, "va"), test: rows(120, seed + 2, "te"))
    return try TaskData.load(Job(task: folder))
}

/// One finished search on `task` as the history records it.
func historyRun(_ task: TaskData, job: String = "job", runId: String = "20260101-000000") async throws -> HistoryRun {
    let catalog = try CandidateCatalog(
        try YAMLValue.parse(
            "numeric:\n  - {family: linear, precision: [fp32, int8], epochs: 5}\ntext:\n  - {family: linear, buckets_log2: [10], epochs: 5}\n",
            file: "c.yaml"))
    let outcome = try await SearchEngine.run(
        task: task, settings: SearchSettings(catalog: catalog, seed: 2), storage: nil)
    let report = RunReport(job: job, runId: runId, createdAt: Date(timeIntervalSince1970: 0), outcome: outcome)
    var rung = JournalRecord(type: "rung")
    rung.candidate = report.candidates.first?.id
    rung.rung = 0
    rung.fidelity = 0.5
    return HistoryRun(
        id: "\(job)/\(runId)", taskId: SearchFingerprint.task(task), meta: try MetaFeatures(task: task), report: report,
        rungs: [rung])
}

@Suite struct HistoryTests {
    @Test("record, list, show, export, import (twice changes nothing), forget")
    func roundTrip() async throws {
        let folder = SyntheticTasks.temporaryFolder()
        let store = try HistoryStore(path: folder.appendingPathComponent("h.sqlite").path)
        let numeric = try await historyRun(try generatedTask(.numeric), job: "a")
        let text = try await historyRun(try generatedTask(.text), job: "b")
        #expect(try store.record(numeric))
        #expect(try store.record(text))
        #expect(try !store.record(numeric), "the same run id is recorded once")
        let list = try store.list()
        #expect(list.map(\.id) == ["a/20260101-000000", "b/20260101-000000"])
        #expect(list[0].trials == numeric.report.candidates.count + 1)
        #expect(try store.taskCount(kind: "numeric") == 1 && store.taskCount(kind: "text") == 1)
        let shown = try #require(try store.runs(matching: "blobs").first)
        #expect(shown.meta == numeric.meta && shown.report.candidates.count == numeric.report.candidates.count)

        let export = try store.exportAll()
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let data = try encoder.encode(export)
        let other = try HistoryStore(path: folder.appendingPathComponent("other.sqlite").path)
        #expect(try other.importing(JSONDecoder().decode(HistoryExport.self, from: data)) == 2)
        #expect(try other.importing(JSONDecoder().decode(HistoryExport.self, from: data)) == 0)
        #expect(try other.list() == list)
        #expect(try encoder.encode(other.exportAll()) == data)

        #expect(try store.forget("words") == 1)
        #expect(try store.list().map(\.id) == ["a/20260101-000000"])
        #expect(try store.taskCount(kind: "text") == 0)
        #expect(try store.forget("nothing-like-this") == 0)
    }

    @Test("meta-features equal a naive computation on generated tasks", arguments: [TaskKind.numeric, .text])
    func metaFeatures(kind: TaskKind) throws {
        let task = try generatedTask(kind, seed: 5)
        let meta = try MetaFeatures(task: task)
        let train = task.train
        #expect(meta.rows == train.count && meta.classes == task.vocabulary.count && meta.kind == kind.rawValue)
        var counts: [Int: Double] = [:]
        for label in train.teacherLabels { counts[label, default: 0] += 1 }
        let entropy = -counts.values.map { $0 / Double(train.count) }.map { $0 * log($0) }.reduce(0, +)
        #expect(abs(meta.classEntropy - entropy) < 1e-9)
        var (maxTotal, entropyTotal) = (0.0, 0.0)
        for i in 0..<train.count {
            var row: [Double] = []
            for j in 0..<task.vocabulary.count { row.append(Double(train.teacherProbabilities[i, j])) }
            maxTotal += row.max()!
            entropyTotal -= row.filter { $0 > 0 }.map { $0 * log($0) }.reduce(0, +)
        }
        #expect(abs(meta.teacherMeanMaxProbability - maxTotal / Double(train.count)) < 1e-9)
        #expect(abs(meta.teacherMeanEntropy - entropyTotal / Double(train.count)) < 1e-9)
        let gold = zip(task.validation.teacherLabels, task.validation.gold).filter { $0.0 == $0.1 }.count
        #expect(meta.teacherGoldAccuracy == Double(gold) / Double(task.validation.count))
        if kind == .text {
            var words = Set<String>()
            var total = 0
            for case .text(let text) in train.inputs {
                let tokens = text.lowercased().split(separator: " ").map(String.init)
                total += tokens.count
                words.formUnion(tokens)
            }
            #expect(meta.dimension == words.count)
            #expect(abs(meta.meanTextLength - Double(total) / Double(train.count)) < 1e-9)
        } else {
            #expect(meta.dimension == task.inputDimension && meta.meanTextLength == 0)
        }
        // The probes learn these tasks (far above the 1/K of chance) and are reproducible.
        #expect(meta.probeCentroidAccuracy > 0.5 && meta.probeLinearAccuracy > 0.5)
        #expect(try MetaFeatures(task: task) == meta)
        #expect(meta.vector.count == 12 && meta.vector.allSatisfy(\.isFinite))
    }

    @Test("a corrupt file, a foreign SQLite database and another schema version give a clear error")
    func refusedFiles() throws {
        let folder = SyntheticTasks.temporaryFolder()
        let corrupt = folder.appendingPathComponent("corrupt.sqlite")
        try Data(repeating: 0x41, count: 4096).write(to: corrupt)
        #expect {
            try HistoryStore(path: corrupt.path)
        } throws: { error in
            (error as? HistoryError)?.description.hasPrefix(corrupt.path + ": error:") == true
        }
        let good = folder.appendingPathComponent("good.sqlite").path
        _ = try HistoryStore(path: good)
        let foreign = folder.appendingPathComponent("foreign.sqlite")
        try FileManager.default.copyItem(atPath: good, toPath: foreign.path)
        try rewrite(foreign.path, sql: "UPDATE meta SET value = 'something-else' WHERE key = 'format'")
        #expect {
            try HistoryStore(path: foreign.path)
        } throws: { error in
            (error as? HistoryError)?.message.contains("not a Retort history") == true
        }
        try rewrite(good, sql: "UPDATE meta SET value = '99' WHERE key = 'version'")
        #expect {
            try HistoryStore(path: good)
        } throws: { error in
            (error as? HistoryError)?.message.contains("version 99") == true
        }
    }

    /// Runs `sql` on an SQLite file, past the history checks.
    func rewrite(_ path: String, sql: String) throws {
        try HistoryStore.execute(sql, at: path)
    }
}

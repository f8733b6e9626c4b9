import Foundation
import RetortData
import RetortStudents
import RetortTestSupport
import Testing

@testable import RetortSearch

/// A trial spec carries everything a rung needs: run in pieces through checkpoints, it reaches what one run reaches.
@Suite struct TrialSpecTests {
    @Test("a trial continued from its state equals one trained straight through; the spec survives JSON")
    func continuedTrialEqualsStraightRun() throws {
        let folder = try SyntheticTasks.writeTask(
            name: "blobs", kind: .numeric,
            train: SyntheticTasks.numericRows(count: 200, learnable: true, seed: 1, idPrefix: "tr"),
            validation: SyntheticTasks.numericRows(count: 100, learnable: true, seed: 2, idPrefix: "va"),
            test: SyntheticTasks.numericRows(count: 100, learnable: true, seed: 3, idPrefix: "te"))
        let task = try TaskData.load(Job(task: folder))
        let catalog = try CandidateCatalog(
            try YAMLValue.parse(
                "numeric:\n  - {family: mlp, hidden: [[8]], precision: [fp32, int8], epochs: 9}\n", file: "c.yaml"))
        let members = catalog.candidates(for: .numeric)
        #expect(members.count == 2)
        func spec(target: Int, rung: Int, checkpoint: String?) -> TrialSpec {
            TrialSpec(
                task: folder.path, files: nil, group: members[0].trainingKey, candidates: members, rung: rung,
                targetEpochs: target, seed: 5, metric: "accuracy", reported: ["accuracy", "agreement"], resamples: 50,
                secondsLeft: 600, blasThreads: nil, checkpoint: checkpoint)
        }
        // JSON round trip through the reader the `trial run` command uses.
        let first = spec(target: 3, rung: 0, checkpoint: nil)
        let file = folder.appendingPathComponent("spec.json")
        try first.encoded().write(to: file)
        #expect(try TrialSpec.read(file) == first)

        let (early, state) = try SearchEngine.runTrial(first, task: task)
        #expect(early.records.count == 2 && early.epochsTrained == 3 && !early.cutByBudget)
        let stateFile = folder.appendingPathComponent("state.safetensors")
        try state.write(to: stateFile)
        let (continued, continuedState) = try SearchEngine.runTrial(
            spec(target: 9, rung: 1, checkpoint: stateFile.path), task: task)
        let (straight, straightState) = try SearchEngine.runTrial(spec(target: 9, rung: 1, checkpoint: nil), task: task)
        #expect(continued.epochsTrained == 6 && straight.epochsTrained == 9)
        func timeless(_ records: [JournalRecord]) -> [JournalRecord] {
            records.map { record in
                var copy = record
                copy.trainSeconds = nil
                return copy
            }
        }
        #expect(timeless(continued.records) == timeless(straight.records))
        #expect(continued.records.first?.metrics?["accuracy"] != nil)
        #expect(continuedState == straightState)
        // The result file round-trips too.
        #expect(try TrialOutcome.decode(continued.encoded()) == continued)
    }

    @Test("trials through a TrialCache (trial serve) equal fresh ones; the cache reads the rows once per data set")
    func cachedTrialsEqualFreshOnes() throws {
        let folder = try SyntheticTasks.writeTask(
            name: "words", kind: .text,
            train: SyntheticTasks.textRows(count: 160, seed: 1, idPrefix: "tr"),
            validation: SyntheticTasks.textRows(count: 80, seed: 2, idPrefix: "va"),
            test: SyntheticTasks.textRows(count: 80, seed: 3, idPrefix: "te"))
        let catalog = try CandidateCatalog(
            try YAMLValue.parse(
                """
                text:
                  - {family: linear, buckets_log2: [10], precision: [fp32, int8], epochs: 3}
                  - {family: mlp, hidden: [[8]], buckets_log2: [10], precision: [fp32], epochs: 3}
                """, file: "c.yaml"))
        let groups = Dictionary(grouping: catalog.candidates(for: .text), by: \.trainingKey)
        #expect(groups.count == 2)
        func spec(_ key: String) -> TrialSpec {
            TrialSpec(
                task: folder.path, files: nil, group: key, candidates: groups[key] ?? [], rung: 0, targetEpochs: 3,
                seed: 5, metric: "accuracy", reported: ["accuracy"], resamples: 20, secondsLeft: 600, blasThreads: nil,
                checkpoint: nil)
        }
        let cache = TrialCache()
        for key in groups.keys.sorted() + groups.keys.sorted() {
            let cachedTask = try cache.task(for: spec(key))
            let cached = try SearchEngine.runTrial(spec(key), task: cachedTask, cache: cache)
            let fresh = try SearchEngine.runTrial(spec(key), task: try TaskData.load(Job(task: folder)))
            #expect(cached.state == fresh.state)
            #expect(
                cached.outcome.records.map { $0.metrics?["accuracy"]?.value }
                    == fresh.outcome.records.map { $0.metrics?["accuracy"]?.value })
        }
        // The rows were read once and stay cached for the next trial on them.
        let first = try cache.task(for: spec(groups.keys.sorted()[0]))
        #expect(first.train.count == 160 && cache.dataKey == folder.path)
    }

    @Test("with a cache, an encoder trial embeds its pass's other depths too; the next depth's trial reuses them")
    func encoderPassIsShared() throws {
        var vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
        vocabulary += (0..<4).flatMap { k in (0..<4).map { "word\(k)x\($0)" } }
        let encoderFolder = try tinyBertFolder(layers: 2, hidden: 16, heads: 2, vocabulary: vocabulary)
        let folder = try SyntheticTasks.writeTask(
            name: "words", kind: .text, train: SyntheticTasks.textRows(count: 80, seed: 1, idPrefix: "tr"),
            validation: SyntheticTasks.textRows(count: 40, seed: 2, idPrefix: "va"),
            test: SyntheticTasks.textRows(count: 40, seed: 3, idPrefix: "te"))
        let catalog = try CandidateCatalog(
            try YAMLValue.parse(
                """
                text:
                  - family: encoder-head
                    encoder: \(encoderFolder.path)
                    layers: [1, 2]
                    max_length: [8]
                    precision: [fp32, int8]
                    epochs: 2
                """, file: "c.yaml"))
        let all = catalog.candidates(for: .text)
        let groups = Dictionary(grouping: all, by: \.trainingKey)
        #expect(groups.count == 2)
        func spec(_ key: String) -> TrialSpec {
            var spec = TrialSpec(
                task: folder.path, files: nil, group: key, candidates: groups[key] ?? [], rung: 0, targetEpochs: 2,
                seed: 5, metric: "accuracy", reported: ["accuracy"], resamples: 20, secondsLeft: 600, blasThreads: nil,
                checkpoint: nil)
            spec.featureCandidates = all
            return spec
        }
        let cache = TrialCache()
        let (first, second) = (groups.keys.sorted()[0], groups.keys.sorted()[1])
        _ = try SearchEngine.runTrial(spec(first), task: try cache.task(for: spec(first)), cache: cache)
        #expect(cache.features.count == 2, "the other depth was embedded in the same pass")
        let cached = try SearchEngine.runTrial(spec(second), task: try cache.task(for: spec(second)), cache: cache)
        let fresh = try SearchEngine.runTrial(spec(second), task: try TaskData.load(Job(task: folder)))
        #expect(cached.state == fresh.state)
        #expect(
            cached.outcome.records.map { $0.metrics?["accuracy"]?.value }
                == fresh.outcome.records.map { $0.metrics?["accuracy"]?.value })
    }

    @Test("a spec whose candidates are not one training group is a bad-data error naming the spec")
    func mismatchedGroup() throws {
        let folder = try SyntheticTasks.writeTask(
            name: "blobs", kind: .numeric,
            train: SyntheticTasks.numericRows(count: 60, learnable: true, seed: 1, idPrefix: "tr"),
            validation: SyntheticTasks.numericRows(count: 30, learnable: true, seed: 2, idPrefix: "va"),
            test: SyntheticTasks.numericRows(count: 30, learnable: true, seed: 3, idPrefix: "te"))
        let task = try TaskData.load(Job(task: folder))
        let catalog = try CandidateCatalog(
            try YAMLValue.parse("numeric:\n  - {family: linear, precision: [fp32]}\n", file: "c.yaml"))
        let spec = TrialSpec(
            task: folder.path, files: nil, group: "mlp-8x1-fp32", candidates: catalog.candidates(for: .numeric),
            rung: 0, targetEpochs: 1, seed: 1, metric: "agreement", reported: ["agreement"], resamples: 10,
            secondsLeft: 60, blasThreads: nil, checkpoint: nil)
        #expect(throws: DataError.self) { try SearchEngine.runTrial(spec, task: task, file: "s.json") }
    }
}

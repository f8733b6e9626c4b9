import Foundation
import RetortData
import RetortEvals
import RetortSearch
import RetortTestSupport
import Testing

func smallNumericTask(learnable: Bool) throws -> TaskData {
    let folder = try SyntheticTasks.writeTask(
        name: learnable ? "blobs" : "noise", kind: .numeric,
        train: SyntheticTasks.numericRows(count: 240, learnable: learnable, seed: 1, idPrefix: "tr"),
        validation: SyntheticTasks.numericRows(count: 120, learnable: learnable, seed: 2, idPrefix: "va"),
        test: SyntheticTasks.numericRows(count: 120, learnable: learnable, seed: 3, idPrefix: "te"))
    return try TaskData.load(Job(task: folder))
}

let tinyCatalog = """
    numeric:
      - family: linear
        precision: [fp32, int8]
        epochs: 15
      - family: mlp
        hidden: [[8]]
        precision: [fp32]
        epochs: 15
    """

@Suite struct SearchEngineTests {
    @Test("a learnable task recommends a student and journals every candidate")
    func recommendsStudent() throws {
        let task = try smallNumericTask(learnable: true)
        let folder = SyntheticTasks.temporaryFolder()
        let journal = try Journal(url: folder.appendingPathComponent("journal.jsonl"))
        let catalog = try CandidateCatalog(try YAMLValue.parse(tinyCatalog, file: "c.yaml"))
        var events = 0
        let outcome = try SearchEngine.run(
            task: task, settings: SearchSettings(catalog: catalog, constraints: Constraints(maxDrop: 0.05), seed: 3),
            journal: journal
        ) { event in if case .trial = event { events += 1 } }
        #expect(outcome.primaryMetric == "accuracy")
        #expect(outcome.trials.count == 3 && events == 3)
        #expect(outcome.trials.allSatisfy { $0.status == .complete && $0.latencyMsP50 != nil })
        let candidate = try #require(outcome.recommendation.candidate)
        #expect(outcome.recommendedBundle?.candidate == candidate)
        #expect(outcome.recommendationTestMetrics?["accuracy"] != nil)
        #expect(!outcome.frontier.isEmpty)
        for id in outcome.frontier where id != "teacher" {
            #expect(outcome.trials.first { $0.id == id }?.testMetrics != nil)
        }
        let lines = try String(contentsOf: journal.url, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 3)
        let first = try JSONDecoder().decode(TrialResult.self, from: Data(lines[0].utf8))
        #expect(outcome.trials.contains { $0.id == first.id })
    }

    @Test("an unlearnable task recommends keeping the teacher")
    func noDistillation() throws {
        let task = try smallNumericTask(learnable: false)
        let catalog = try CandidateCatalog(try YAMLValue.parse(tinyCatalog, file: "c.yaml"))
        let outcome = try SearchEngine.run(
            task: task, settings: SearchSettings(catalog: catalog, seed: 3), journal: nil)
        #expect(outcome.recommendation.candidate == nil)
        #expect(outcome.recommendation.reason.contains("drop"))
        #expect(outcome.teacher.onFrontier)
        #expect(outcome.recommendedBundle == nil)
    }

    @Test("the same seed gives the same validation metrics")
    func deterministicMetrics() throws {
        let task = try smallNumericTask(learnable: true)
        let catalog = try CandidateCatalog(try YAMLValue.parse(tinyCatalog, file: "c.yaml"))
        let settings = SearchSettings(catalog: catalog, seed: 11)
        let a = try SearchEngine.run(task: task, settings: settings, journal: nil)
        let b = try SearchEngine.run(task: task, settings: settings, journal: nil)
        #expect(a.trials.map(\.metrics) == b.trials.map(\.metrics))
        #expect(a.teacher.metrics == b.teacher.metrics)
    }

    @Test("a zero-second budget starts nothing and says so")
    func budget() throws {
        let task = try smallNumericTask(learnable: true)
        let catalog = try CandidateCatalog(try YAMLValue.parse(tinyCatalog, file: "c.yaml"))
        let outcome = try SearchEngine.run(
            task: task, settings: SearchSettings(catalog: catalog, budgetSeconds: 0, seed: 3), journal: nil)
        #expect(outcome.trials.allSatisfy { $0.status == .pruned && $0.fidelity == 0 })
        #expect(outcome.recommendation.candidate == nil)
        #expect(outcome.summary.stoppedBecause.contains("budget"))
    }
}

@Suite struct SearchLimitsTests {
    @Test("a candidate too large to train in this machine's memory fails with the reason instead of crashing")
    func tooLargeToTrain() throws {
        let folder = try SyntheticTasks.writeTask(
            name: "words", kind: .text, train: SyntheticTasks.textRows(count: 80, seed: 1, idPrefix: "tr"),
            validation: SyntheticTasks.textRows(count: 40, seed: 2, idPrefix: "va"),
            test: SyntheticTasks.textRows(count: 40, seed: 3, idPrefix: "te"))
        let task = try TaskData.load(Job(task: folder))
        let yaml = """
            text:
              - family: mlp
                hidden: [[16384, 16384]]
                buckets_log2: [22]
              - family: linear
                buckets_log2: [10]
            """
        let catalog = try CandidateCatalog(try YAMLValue.parse(yaml, file: "c.yaml"))
        let outcome = try SearchEngine.run(task: task, settings: SearchSettings(catalog: catalog, seed: 1), journal: nil)
        let huge = try #require(outcome.trials.first { $0.family == .mlp })
        #expect(huge.status == .failed)
        #expect(huge.reason?.contains("GB") == true)
        #expect(outcome.trials.contains { $0.family == .linear && $0.status == .complete })
    }
}

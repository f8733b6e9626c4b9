import Foundation
import RetortData
import RetortEvals
import RetortStudents
import RetortTestSupport
import Testing

@testable import RetortSearch

/// Pareto-aware halving on a structured task: screening rungs at lower fidelity prune training runs, the survivors
/// train whole; an interrupted halving run resumes from its screening scores.
@Suite struct StructuredHalvingTests {
    static let catalog = """
        structured:
          - family: nearest
            buckets_log2: 12
          - family: fields
            buckets_log2: [10, 12]
            hidden: [0, 16]
            epochs: 9
            precision: [fp32, int8]
        """

    static func settings(_ strategy: SearchStrategy) throws -> SearchSettings {
        var job = Job(task: URL(fileURLWithPath: "/unused"))
        job.candidates = try YAMLValue.parse(catalog, file: "catalog.yaml")
        job.maxDrop = 0.5
        job.speedTolerance = 4
        return try SearchSettings(job: job, strategy: strategy, workers: 1)
    }

    @Test(
        "halving screens the fields runs at 1/3 of their epochs, prunes all but the best third, trains the rest whole")
    func halves() throws {
        let task = try StructuredTaskData.load(folder: try SyntheticStructured.writeTask(sizes: (300, 150, 150)))
        let halving = StructuredHalving(
            candidates: try Self.settings(.halving).catalog.structured, settings: try Self.settings(.halving))
        #expect(halving.rungCount == 2 && abs(halving.fidelity(0) - 1.0 / 3) < 1e-12)
        let outcome = try StructuredSearch.run(task: task, settings: try Self.settings(.halving)).outcome
        let exhaustive = try StructuredSearch.run(task: task, settings: try Self.settings(.exhaustive)).outcome
        #expect(outcome.summary.strategy == "halving")
        #expect(outcome.summary.stoppedBecause == "the last rung finished")
        let pruned = outcome.trials.filter { $0.status == .pruned }
        let complete = outcome.trials.filter { $0.status == .complete }
        #expect(outcome.trials.count == 9)
        // 4 fields runs (8 candidates) race; the best ceil(4/3) = 2 runs go on with both their variants.
        #expect(pruned.count == 4, "\(pruned.map(\.id))")
        for trial in pruned {
            #expect(trial.family == .fields && abs(trial.fidelity - 1.0 / 3) < 1e-12)
            #expect(trial.reason == "pruned after rung 1 of 2 at fidelity 0.333 (not among the best 1/3)")
            #expect(trial.metrics["exact_match"] != nil && trial.epochsRun == 3)
        }
        #expect(complete.contains { $0.id == "nearest-b12" })
        #expect(complete.allSatisfy { $0.fidelity == 1 })
        // Variants of one training run share its fate.
        let prunedRuns = Set(pruned.map { $0.id.replacingOccurrences(of: "-int8", with: "-fp32") })
        #expect(complete.allSatisfy { !prunedRuns.contains($0.id.replacingOccurrences(of: "-int8", with: "-fp32")) })
        #expect(outcome.summary.candidateEpochs < exhaustive.summary.candidateEpochs)
        // What the survivors scored is what the exhaustive search scored for them.
        for trial in complete {
            let same = try #require(exhaustive.trials.first { $0.id == trial.id })
            #expect(same.metrics == trial.metrics, "\(trial.id)")
        }
    }

    @Test("an interrupted halving run takes its screening scores back from the journal and prunes the same runs")
    func resumesScreening() throws {
        let task = try StructuredTaskData.load(folder: try SyntheticStructured.writeTask(sizes: (300, 150, 150)))
        let settings = try Self.settings(.halving)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("halving-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let first = try StructuredSearch.run(
            task: task, settings: settings, storage: try StructuredResumeTests.storage(folder)
        ).outcome
        // Cut the journal after the screening rung: its scores stay, the last rung's records go.
        let journal = folder.appendingPathComponent("journal.jsonl")
        let lines = try String(contentsOf: journal, encoding: .utf8).split(separator: "\n")
        let lastQueue = try #require(lines.lastIndex { $0.contains(#""type":"queue""#) })
        try (lines[..<lastQueue].joined(separator: "\n") + "\n").write(to: journal, atomically: true, encoding: .utf8)
        let screened = try JournalRecord.read(journal).filter { $0.type == "rung" }
        #expect(screened.count == 8 && screened.allSatisfy { $0.rung == 0 && $0.finished == false })
        let second = try StructuredSearch.run(
            task: task, settings: settings,
            storage: try StructuredResumeTests.storage(folder, resume: try JournalRecord.read(journal))
        ).outcome
        for trial in first.trials {
            let again = try #require(second.trials.first { $0.id == trial.id })
            #expect(again.status == trial.status, "\(trial.id)")
            #expect(again.metrics == trial.metrics, "\(trial.id)")
            // A screening score taken back keeps its journaled training time.
            if trial.status == .pruned { #expect(again.trainSeconds == trial.trainSeconds, "\(trial.id)") }
        }
    }
}

/// The learned strategy on a structured task: the history's predictions order the runs and rule out, untrained, a run
/// that cannot change the recommendation.
@Suite struct StructuredLearnedTests {
    @Test("a run predicted far below the bar is not trained once a student qualifies; unpredicted runs train")
    func rulesOut() throws {
        let task = try StructuredTaskData.load(folder: try SyntheticStructured.writeTask(sizes: (300, 150, 150)))
        var job = Job(task: URL(fileURLWithPath: "/unused"))
        job.candidates = try YAMLValue.parse(
            """
            structured:
              - family: nearest
                buckets_log2: 12
              - family: fields
                buckets_log2: [10, 12]
                epochs: 4
                precision: [fp32, int8]
            """, file: "catalog.yaml")
        job.maxDrop = 0.05
        var settings = try SearchSettings(job: job, strategy: .learned, workers: 1)
        settings.predictions = [
            "fields-b10-e4-fp32": CandidatePrediction(gap: 0, gapSD: 0.01, latencyMsP50: nil, neighbours: 5),
            "fields-b10-e4-int8": CandidatePrediction(gap: 0, gapSD: 0.01, latencyMsP50: nil, neighbours: 5),
            "nearest-b12": CandidatePrediction(gap: -0.5, gapSD: 0.01, latencyMsP50: nil, neighbours: 5),
        ]
        settings.historyTasks = 4
        let order = TrialOrder()
        let outcome = try StructuredSearch.run(task: task, settings: settings) { event in
            if case .trial(let trial, _, _) = event { order.append(trial.id) }
        }.outcome
        #expect(outcome.summary.strategy == "learned" && outcome.summary.historyTasks == 4)
        // The most promising run first; the run without predictions is never ruled out.
        #expect(order.value.first?.hasPrefix("fields-b10") == true, "\(order.value)")
        let nearest = try #require(outcome.trials.first { $0.id == "nearest-b12" })
        #expect(nearest.status == .skipped, "\(nearest)")
        #expect(nearest.reason?.contains("not trained (learned strategy): predicted gap") == true, "\(nearest)")
        #expect(nearest.predicted?.gap == -0.5)
        for id in ["fields-b10-e4-fp32", "fields-b10-e4-int8", "fields-b12-e4-fp32", "fields-b12-e4-int8"] {
            #expect(outcome.trials.first { $0.id == id }?.status == .complete, "\(id)")
        }
        #expect(outcome.recommendation.candidate?.hasPrefix("fields") == true)
        // Calibration counts the two trained candidates that had a prediction (the skipped one was not measured).
        let calibration = try #require(outcome.summary.calibration)
        let measured = ["fields-b10-e4-fp32", "fields-b10-e4-int8"].compactMap { id in
            outcome.trials.first { $0.id == id }?.differenceToTeacher?.value
        }
        #expect(calibration.predicted == 2 && measured.count == 2, "\(calibration)")
        #expect(abs(calibration.mae - measured.map { abs($0) }.reduce(0, +) / 2) < 1e-12, "\(calibration) \(measured)")
        #expect(calibration.inside == measured.filter { abs($0) <= 0.02 }.count)

        // Before any student qualifies nothing is ruled out: with the same predictions and a bar no student
        // reaches, the nearest run trains.
        job.maxDrop = -0.5
        var strict = try SearchSettings(job: job, strategy: .learned, workers: 1)
        strict.predictions = settings.predictions
        let none = try StructuredSearch.run(task: task, settings: strict).outcome
        #expect(none.trials.first { $0.id == "nearest-b12" }?.status == .complete)
    }
}

/// Workers on a structured task: training runs side by side reach the same students as one at a time.
@Suite struct StructuredWorkersTests {
    @Test("two workers train the runs side by side to the same scores as one; every candidate is still timed")
    func workersAgree() throws {
        let task = try StructuredTaskData.load(folder: try SyntheticStructured.writeTask(sizes: (300, 150, 150)))
        var job = Job(task: URL(fileURLWithPath: "/unused"))
        job.candidates = try YAMLValue.parse(StructuredHalvingTests.catalog, file: "catalog.yaml")
        job.maxDrop = 0.5
        job.speedTolerance = 4
        let one = try StructuredSearch.run(
            task: task, settings: try SearchSettings(job: job, strategy: .exhaustive, workers: 1)
        ).outcome
        let two = try StructuredSearch.run(
            task: task, settings: try SearchSettings(job: job, strategy: .exhaustive, workers: 2)
        ).outcome
        #expect(one.trials.count == 9 && two.trials.count == 9)
        for trial in one.trials {
            let other = try #require(two.trials.first { $0.id == trial.id })
            #expect(other.status == .complete && other.metrics == trial.metrics, "\(trial.id)")
            #expect(other.differenceToTeacher == trial.differenceToTeacher, "\(trial.id)")
            #expect((other.latencyMsP50 ?? 0) > 0, "\(trial.id)")
        }
        #expect(two.summary.trials == one.summary.trials && two.summary.candidateEpochs == one.summary.candidateEpochs)
    }
}

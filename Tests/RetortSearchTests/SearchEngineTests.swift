import Foundation
import RetortData
import RetortEvals
import RetortSearch
import RetortStudents
import RetortTestSupport
import Testing

func smallNumericTask(learnable: Bool, count: Int = 240) throws -> TaskData {
    let folder = try SyntheticTasks.writeTask(
        name: learnable ? "blobs" : "noise", kind: .numeric,
        train: SyntheticTasks.numericRows(count: count, learnable: learnable, seed: 1, idPrefix: "tr"),
        validation: SyntheticTasks.numericRows(count: count / 2, learnable: learnable, seed: 2, idPrefix: "va"),
        test: SyntheticTasks.numericRows(count: count / 2, learnable: learnable, seed: 3, idPrefix: "te"))
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

/// A run folder with a journal and a checkpoint folder.
func storage(_ folder: URL = SyntheticTasks.temporaryFolder(), resume: [JournalRecord]? = nil) throws -> RunStorage {
    let checkpoints = folder.appendingPathComponent("checkpoints")
    try FileManager.default.createDirectory(at: checkpoints, withIntermediateDirectories: true)
    return RunStorage(
        journal: try Journal(url: folder.appendingPathComponent("journal.jsonl")), checkpoints: checkpoints,
        resume: resume, jobName: "test", source: "task")
}

/// Everything of an outcome that must not depend on timing: ids, statuses, metrics, fidelity, frontier, the
/// recommendation's candidate.
func decisions(_ outcome: SearchOutcome) -> String {
    let trials = outcome.trials.map { trial in
        "\(trial.id) \(trial.status) \(trial.fidelity) \(trial.epochsRun ?? -1) "
            + trial.metrics.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value.value)\($0.value.ci95)" }.joined(
                separator: ",") + " \(trial.onFrontier) \(trial.testMetrics?["accuracy"]?.value ?? -1)"
    }
    return (trials + ["frontier \(outcome.frontier)", "recommendation \(outcome.recommendation.candidate ?? "none")"])
        .joined(separator: "\n")
}

@Suite struct SearchEngineTests {
    @Test("a learnable task recommends a student; the journal has a header, a rung and a latency record per candidate")
    func recommendsStudent() async throws {
        let task = try smallNumericTask(learnable: true)
        let run = try storage()
        let catalog = try CandidateCatalog(try YAMLValue.parse(tinyCatalog, file: "c.yaml"))
        let trialEvents = TrialCounter()
        let outcome = try await SearchEngine.run(
            task: task, settings: SearchSettings(catalog: catalog, constraints: Constraints(maxDrop: 0.05), seed: 3),
            storage: run
        ) { event in if case .trial = event { trialEvents.increment() } }
        #expect(outcome.primaryMetric == "accuracy")
        #expect(outcome.trials.count == 3 && trialEvents.value == 3)
        #expect(outcome.trials.allSatisfy { $0.status == .complete && $0.latencyMsP50 != nil && $0.fidelity == 1 })
        let candidate = try #require(outcome.recommendation.candidate)
        #expect(outcome.recommendedBundle?.candidate == candidate)
        #expect(outcome.recommendationTestMetrics?["accuracy"] != nil)
        for id in outcome.frontier where id != "teacher" {
            #expect(outcome.trials.first { $0.id == id }?.testMetrics != nil)
        }
        let records = try JournalRecord.read(run.journal.url)
        #expect(records.first?.type == "header")
        #expect(records.filter { $0.type == "rung" }.count == 3)
        #expect(records.filter { $0.type == "latency" }.count == 3)
    }

    @Test("an unlearnable task recommends keeping the teacher")
    func noDistillation() async throws {
        let task = try smallNumericTask(learnable: false)
        let catalog = try CandidateCatalog(try YAMLValue.parse(tinyCatalog, file: "c.yaml"))
        let outcome = try await SearchEngine.run(
            task: task, settings: SearchSettings(catalog: catalog, seed: 3), storage: nil)
        #expect(outcome.recommendation.candidate == nil)
        #expect(outcome.recommendation.reason.contains("drop"))
        #expect(outcome.teacher.onFrontier)
        #expect(outcome.recommendedBundle == nil)
    }

    @Test("a zero-second budget starts nothing and says so")
    func zeroBudget() async throws {
        let task = try smallNumericTask(learnable: true)
        let catalog = try CandidateCatalog(try YAMLValue.parse(tinyCatalog, file: "c.yaml"))
        let outcome = try await SearchEngine.run(
            task: task, settings: SearchSettings(catalog: catalog, budgetSeconds: 0, seed: 3), storage: nil)
        #expect(outcome.trials.allSatisfy { $0.status == .pruned && $0.fidelity == 0 })
        #expect(outcome.recommendation.candidate == nil)
        #expect(outcome.summary.stoppedBecause.contains("budget"))
    }
}

/// A thread-safe counter for events.
final class TrialCounter: @unchecked Sendable {
    // @unchecked: `count` is only touched while holding `lock`.
    private let lock = NSLock()
    private var count = 0
    func increment() { lock.withLock { count += 1 } }
    var value: Int { lock.withLock { count } }
}

/// The ids of decided trials in the order they were announced, thread-safe.
final class TrialOrder: @unchecked Sendable {
    // @unchecked: `ids` is only touched while holding `lock`.
    private let lock = NSLock()
    private var ids: [String] = []
    func append(_ id: String) { lock.withLock { ids.append(id) } }
    var value: [String] { lock.withLock { ids } }
}

/// A catalog with a clear winner: wide MLPs separate the blobs, tiny ones cannot.
let halvingCatalog = """
    numeric:
      - family: linear
        precision: [fp32, int8]
        epochs: 27
        lr: [0.0001, 0.01]
      - family: mlp
        hidden: [[2], [4], [32], [64, 32]]
        precision: [fp32, int8]
        epochs: 27
        lr: [0.0001, 0.01]
    """

@Suite struct HalvingTests {
    @Test("a closed-form prototype in the catalog does not collapse halving into one rung")
    func prototypeDoesNotCollapseRungs() async throws {
        let task = try smallNumericTask(learnable: true, count: 300)
        let yaml = """
            numeric:
              - family: mlp
                hidden: [[8], [16], [32], [64]]
                precision: [fp32]
                epochs: 27
                patience: 27
              - family: prototype
                precision: [fp32]
            """
        let catalog = try CandidateCatalog(try YAMLValue.parse(yaml, file: "c.yaml"))
        let halving = try await SearchEngine.run(
            task: task, settings: SearchSettings(catalog: catalog, seed: 1, strategy: .halving), storage: nil)
        let exhaustive = try await SearchEngine.run(
            task: task, settings: SearchSettings(catalog: catalog, seed: 1, strategy: .exhaustive), storage: nil)
        #expect(halving.trials.contains { $0.status == .pruned })
        #expect(halving.summary.candidateEpochs < exhaustive.summary.candidateEpochs)
    }

    func task() throws -> TaskData {
        let folder = try SyntheticTasks.writeTask(
            name: "blobs6", kind: .numeric,
            train: SyntheticTasks.numericRows(
                count: 600, classes: 6, dimension: 6, separation: 1.2, seed: 1, idPrefix: "tr"),
            validation: SyntheticTasks.numericRows(
                count: 300, classes: 6, dimension: 6, separation: 1.2, seed: 2, idPrefix: "va"),
            test: SyntheticTasks.numericRows(
                count: 300, classes: 6, dimension: 6, separation: 1.2, seed: 3, idPrefix: "te"))
        return try TaskData.load(Job(task: folder))
    }

    @Test("halving trains less than exhaustive and keeps the exhaustive search's best candidate")
    func keepsTheBest() async throws {
        let task = try task()
        let catalog = try CandidateCatalog(try YAMLValue.parse(halvingCatalog, file: "c.yaml"))
        let exhaustive = try await SearchEngine.run(
            task: task, settings: SearchSettings(catalog: catalog, seed: 5, strategy: .exhaustive, workers: 2),
            storage: nil)
        let halving = try await SearchEngine.run(
            task: task, settings: SearchSettings(catalog: catalog, seed: 5, strategy: .halving, workers: 2),
            storage: nil)
        #expect(halving.summary.candidateEpochs < 0.6 * exhaustive.summary.candidateEpochs)
        let best = try #require(
            exhaustive.trials.max { ($0.metrics["accuracy"]?.value ?? 0) < ($1.metrics["accuracy"]?.value ?? 0) })
        let same = try #require(halving.trials.first { $0.id == best.id })
        #expect(same.status == .complete, "the exhaustive best \(best.id) was \(same.status): \(same.reason ?? "")")
        #expect(
            same.metrics["accuracy"] == best.metrics["accuracy"], "training continued from state gives the same model")
        let pruned = halving.trials.filter { $0.status == .pruned }
        #expect(!pruned.isEmpty)
        #expect(pruned.allSatisfy { $0.fidelity > 0 && $0.fidelity < 1 && ($0.reason ?? "").contains("rung") })
    }

    @Test("one worker and two workers give the same decisions")
    func workersAgree() async throws {
        let task = try task()
        let catalog = try CandidateCatalog(try YAMLValue.parse(halvingCatalog, file: "c.yaml"))
        let one = try await SearchEngine.run(
            task: task, settings: SearchSettings(catalog: catalog, seed: 9, strategy: .halving, workers: 1),
            storage: nil)
        let two = try await SearchEngine.run(
            task: task, settings: SearchSettings(catalog: catalog, seed: 9, strategy: .halving, workers: 2),
            storage: try storage())
        #expect(decisions(one) == decisions(two))
    }

    @Test("a run interrupted after its first rung, journal cut mid-line, resumes to the uninterrupted decisions")
    func resumeAfterCrash() async throws {
        let task = try task()
        let catalog = try CandidateCatalog(try YAMLValue.parse(halvingCatalog, file: "c.yaml"))
        let settings = SearchSettings(catalog: catalog, seed: 4, strategy: .halving, workers: 2)
        let full = try await SearchEngine.run(task: task, settings: settings, storage: try storage())
        // The interrupted run: cancelled as its second rung starts, then a half-written line as a crash leaves it.
        let folder = SyntheticTasks.temporaryFolder()
        let crashedStorage = try storage(folder)
        let canceller = Canceller()
        let interrupted = Task {
            try await SearchEngine.run(task: task, settings: settings, storage: crashedStorage) { event in
                if case .phase(let name) = event, name.hasPrefix("rung 2/") { canceller.cancel() }
            }
        }
        canceller.set(interrupted)
        await #expect(throws: CancellationError.self) { _ = try await interrupted.value }
        let journalURL = folder.appendingPathComponent("journal.jsonl")
        let complete = try JournalRecord.read(journalURL)
        #expect(complete.contains { $0.rung == 0 } && !complete.contains { ($0.rung ?? 0) > 0 })
        let handle = try FileHandle(forWritingTo: journalURL)
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(#"{"type":"rung","candidate":"mlp-"#.utf8))
        try handle.close()
        let records = try JournalRecord.read(journalURL)
        #expect(records.count == complete.count, "the cut line is ignored")
        let resumed = try await SearchEngine.run(
            task: task, settings: settings, storage: try storage(folder, resume: records))
        #expect(decisions(resumed) == decisions(full))
    }

    @Test("a journal from another catalog or seed is refused; a corrupt one names the line")
    func foreignJournals() async throws {
        let task = try task()
        let catalog = try CandidateCatalog(try YAMLValue.parse(halvingCatalog, file: "c.yaml"))
        let folder = SyntheticTasks.temporaryFolder()
        _ = try await SearchEngine.run(
            task: task, settings: SearchSettings(catalog: catalog, seed: 4, strategy: .halving),
            storage: try storage(folder))
        let journalURL = folder.appendingPathComponent("journal.jsonl")
        let records = try JournalRecord.read(journalURL)
        let other = try CandidateCatalog(try YAMLValue.parse(tinyCatalog, file: "c.yaml"))
        await #expect {
            _ = try await SearchEngine.run(
                task: task, settings: SearchSettings(catalog: other, seed: 4, strategy: .halving),
                storage: try storage(SyntheticTasks.temporaryFolder(), resume: records))
        } throws: { error in (error as? DataError)?.message.contains("catalog") == true }
        await #expect {
            _ = try await SearchEngine.run(
                task: task, settings: SearchSettings(catalog: catalog, seed: 5, strategy: .halving),
                storage: try storage(SyntheticTasks.temporaryFolder(), resume: records))
        } throws: { error in (error as? DataError)?.message.contains("settings") == true }
        var lines = try String(contentsOf: journalURL, encoding: .utf8).split(separator: "\n").map(String.init)
        lines[2] = "{not json"
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: journalURL)
        #expect {
            try JournalRecord.read(journalURL)
        } throws: { error in (error as? DataError)?.line == 3 }
    }
}

/// Cancels a task from an event handler.
final class Canceller: @unchecked Sendable {
    // @unchecked: `task` and `pending` are only touched while holding `lock`.
    private let lock = NSLock()
    private var task: Task<SearchOutcome, any Error>?
    private var pending = false

    func set(_ task: Task<SearchOutcome, any Error>) {
        lock.withLock {
            self.task = task
            if pending { task.cancel() }
        }
    }

    func cancel() {
        lock.withLock {
            pending = true
            task?.cancel()
        }
    }
}

@Suite struct EncoderSearchTests {
    @Test(
        "encoder-head candidates train on cached encoder vectors, cost the encoder in size and FLOPs, and export a folder that predicts alone; a missing encoder is skipped with the reason"
    )
    func encoderHeadSearch() async throws {
        var vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
        vocabulary += ["please", "the", "my", "order", "help", "thanks", "today", "now", "again", "about"]
        vocabulary += (0..<4).flatMap { k in (0..<4).map { "word\(k)x\($0)" } }
        let encoderFolder = try tinyBertFolder(layers: 2, hidden: 64, heads: 4, vocabulary: vocabulary)
        let folder = try SyntheticTasks.writeTask(
            name: "words", kind: .text, train: SyntheticTasks.textRows(count: 240, seed: 1, idPrefix: "tr"),
            validation: SyntheticTasks.textRows(count: 120, seed: 2, idPrefix: "va"),
            test: SyntheticTasks.textRows(count: 120, seed: 3, idPrefix: "te"))
        let task = try TaskData.load(Job(task: folder))
        let yaml = """
            text:
              - family: encoder-head
                encoder: \(encoderFolder.path)
                layers: [1, 2]
                max_length: [16]
                hidden: [[], [16]]
                precision: [fp32, int8]
                epochs: 30
              - family: encoder-head
                encoder: \(encoderFolder.path)-missing
                layers: [1]
            """
        let catalog = try CandidateCatalog(try YAMLValue.parse(yaml, file: "c.yaml"))
        let outcome = try await SearchEngine.run(
            task: task, settings: SearchSettings(catalog: catalog, constraints: Constraints(maxDrop: 1), seed: 3),
            storage: nil)
        let trials = Dictionary(uniqueKeysWithValues: outcome.trials.map { ($0.id, $0) })
        #expect(trials.count == 9)
        #expect((outcome.summary.encoderSeconds ?? 0) > 0)
        let missing = try #require(trials.values.first { $0.id.hasSuffix("missing-fp32") })
        #expect(missing.status == .skipped && (missing.reason ?? "").contains("unavailable"))
        let encoder = try BertEncoder(folder: encoderFolder)
        for trial in trials.values where !trial.id.contains("missing") {
            #expect(trial.status == .complete, "\(trial.id): \(trial.reason ?? "")")
            let layers = trial.id.contains("-L1-") ? 1 : 2
            let kept = encoder.truncated(toLayers: layers).converted(to: trial.precision)
            let headBytes = trial.sizeBytes - kept.exportBytes(positions: 16, at: trial.precision)
            #expect(headBytes > 0 && headBytes < 8000, "\(trial.id): head \(headBytes) B")
            #expect(trial.flopsPerExample > kept.flops(tokens: 8))
        }
        let best = try #require(
            trials.values.filter { $0.status == .complete }.max {
                ($0.metrics["accuracy"]?.value ?? 0) < ($1.metrics["accuracy"]?.value ?? 0)
            })
        #expect((best.metrics["accuracy"]?.value ?? 0) > 0.5, "the head learns from the encoder's vectors")
        let bundle = try #require(outcome.recommendedBundle)
        let exported = SyntheticTasks.temporaryFolder()
        try bundle.write(to: exported)
        let loaded = try ModelBundle.load(from: exported)
        let inputs = Array(task.test.inputs.prefix(20))
        let (before, after) = (try bundle.probabilities(for: inputs), try loaded.probabilities(for: inputs))
        #expect(zip(before.storage, after.storage).allSatisfy { abs($0 - $1) < 1e-5 })
        #expect(loaded.sizeBytes == bundle.sizeBytes)
    }
}

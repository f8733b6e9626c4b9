import Foundation
import RetortData
import RetortEvals
import RetortHistory
import RetortReports
import RetortSearch
import RetortTestSupport
import Testing

/// A generated numeric task: Gaussian blobs (students can learn it) or noise with a perfect teacher (they cannot).
func blobTask(learnable: Bool, seed: UInt64, classes: Int = 3) throws -> TaskData {
    let folder = try SyntheticTasks.writeTask(
        name: "\(learnable ? "blobs" : "noise")-\(seed)", kind: .numeric,
        train: SyntheticTasks.numericRows(
            count: 300, classes: classes, learnable: learnable, seed: seed, idPrefix: "tr"),
        validation: SyntheticTasks.numericRows(
            count: 200, classes: classes, learnable: learnable, seed: seed + 100, idPrefix: "va"),
        test: SyntheticTasks.numericRows(
            count: 200, classes: classes, learnable: learnable, seed: seed + 200, idPrefix: "te"))
    return try TaskData.load(Job(task: folder))
}

let learnedCatalog = """
    numeric:
      - family: linear
        precision: [fp32, int8]
        epochs: 20
      - family: mlp
        hidden: [[16], [64], [128, 64]]
        precision: [fp32, int8]
        epochs: 20
      - family: prototype
        precision: [fp32]
    """

/// The speed tolerance of these tests' searches: every qualifying student counts as equally fast, so the smallest wins.
/// The students here answer in microseconds, and on a loaded machine one of two equally cheap ones can measure more
/// than the default 2× slower in one run and not in the next (a CI run recommended prototype-fp32 after learned and
/// linear-int8 after halving, on the same trained students). These tests compare schedules, not speed, which
/// SpeedComparisonTests covers; with speed out of it their recommendations are a function of what was trained.
let speedNeverDecides = 1e9

/// Runs `strategy` on `task` (recording the run when `store` is given); returns the outcome and the ids of the
/// training runs in the order they finished.
func search(
    _ task: TaskData, strategy: SearchStrategy, store: HistoryStore? = nil, predictor: HistoryPredictor? = nil
) async throws -> (SearchOutcome, [String]) {
    var settings = SearchSettings(
        catalog: try CandidateCatalog(try YAMLValue.parse(learnedCatalog, file: "c.yaml")), seed: 4,
        strategy: strategy, workers: 2)
    settings.speedTolerance = speedNeverDecides
    if let predictor {
        let meta = try MetaFeatures(task: task)
        settings.historyTasks = predictor.taskCount
        settings.historyTypicalSD = predictor.widening.typicalSD
        settings.similarTasks = predictor.similarTasks(to: meta)
        for candidate in SearchEngine.candidateSpace(task: task, settings: settings) where candidate.status == .complete
        {
            settings.predictions[candidate.id] = predictor.predict(
                meta: meta, family: candidate.family, precision: candidate.precision, sizeBytes: candidate.sizeBytes,
                flops: candidate.flopsPerExample)
        }
    }
    let order = OrderLog()
    let outcome = try await SearchEngine.run(task: task, settings: settings, storage: nil) { event in
        if case .trial(let trial, _, _) = event, trial.status == .complete { order.append(trial.id) }
    }
    if let store {
        let report = RunReport(job: task.name, runId: "r", createdAt: Date(timeIntervalSince1970: 0), outcome: outcome)
        try store.record(
            HistoryRun(
                id: "\(task.name)/r", taskId: SearchFingerprint.task(task), meta: try MetaFeatures(task: task),
                report: report, rungs: []))
    }
    return (outcome, order.ids)
}

/// Trial ids in event order (the engine reports from one task at a time; the lock keeps the closure Sendable).
final class OrderLog: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [String] = []
    func append(_ id: String) { lock.withLock { list.append(id) } }
    var ids: [String] { lock.withLock { list } }
}

@Suite(.serialized) struct LearnedStrategyTests {
    @Test(
        "one class of model always wins: the learned strategy trains the winner first and stops earlier than halving, with the same recommendation"
    )
    func winnerFirst() async throws {
        let store = try HistoryStore(path: SyntheticTasks.temporaryFolder().appendingPathComponent("h.sqlite").path)
        for seed in [1, 2, 3] as [UInt64] {
            _ = try await search(try blobTask(learnable: true, seed: seed * 10), strategy: .exhaustive, store: store)
        }
        let predictor = try HistoryPredictor(store: store, kind: "numeric", metric: "accuracy")
        #expect(predictor.taskCount == 3)
        let task = try blobTask(learnable: true, seed: 77)
        let (learned, order) = try await search(task, strategy: .learned, predictor: predictor)
        let (halving, _) = try await search(task, strategy: .halving)
        let (exhaustive, _) = try await search(task, strategy: .exhaustive)
        let winner = try #require(exhaustive.recommendation.candidate)
        #expect(learned.recommendation.candidate == winner)
        #expect(halving.recommendation.candidate == winner)
        let winnerRun = winner.replacingOccurrences(of: "-int8", with: "").replacingOccurrences(of: "-fp32", with: "")
        #expect(order.first.map { $0.hasPrefix(winnerRun) } == true, "first trained: \(order)")
        #expect(learned.summary.candidateEpochs < halving.summary.candidateEpochs)
        #expect(learned.summary.trials < halving.summary.trials)
        #expect(learned.summary.historyTasks == 3)
        #expect(learned.summary.learnedMode?.schedule == .learned)
        // Honesty: what was not trained carries a prediction and a reason, never metrics.
        for trial in learned.trials where trial.status == .skipped {
            #expect(trial.metrics.isEmpty && trial.predicted != nil && (trial.reason ?? "").contains("not trained"))
        }
        #expect(learned.trials.filter { $0.invented != true }.allSatisfy { $0.predicted != nil })
        #expect(learned.trials.filter { $0.invented == true }.allSatisfy { $0.status == .complete })
        let report = RunReport(job: "j", runId: "r", createdAt: Date(), outcome: learned)
        #expect(
            CandidatesCSV.render(report).hasPrefix("id,") && CandidatesCSV.render(report).contains(",predicted_gap,"))
        #expect(HTMLReport.render(report).contains("<th>predicted gap</th>"))
        let plain = RunReport(job: "j", runId: "r", createdAt: Date(), outcome: exhaustive)
        #expect(
            !CandidatesCSV.render(plain).contains("predicted") && !HTMLReport.render(plain).contains("predicted gap"))
    }

    @Test("no student can reach the teacher: no distillation after at most 2 full-fidelity training runs")
    func noDistillationEarly() async throws {
        let store = try HistoryStore(path: SyntheticTasks.temporaryFolder().appendingPathComponent("h.sqlite").path)
        for seed in [5, 6, 7] as [UInt64] {
            _ = try await search(try blobTask(learnable: false, seed: seed), strategy: .exhaustive, store: store)
        }
        let predictor = try HistoryPredictor(store: store, kind: "numeric", metric: "accuracy")
        let (learned, _) = try await search(
            try blobTask(learnable: false, seed: 9), strategy: .learned, predictor: predictor)
        #expect(learned.recommendation.candidate == nil)
        #expect(learned.summary.trials <= 2, "\(learned.summary)")
        #expect(learned.summary.stoppedBecause.contains("could change the recommendation"))
        // The evidence: the three past noise tasks, each of which ended in "no distillation".
        let similar = try #require(learned.summary.similarTasks)
        #expect(similar.count == 3 && similar.allSatisfy { $0.recommendation == "no-distillation" })
        #expect(similar.allSatisfy { ($0.bestGap ?? 0) < -0.2 && $0.task.hasPrefix("noise-") })
        let report = RunReport(job: "j", runId: "r", createdAt: Date(), outcome: learned)
        #expect(FrontierTable.markdown(report).contains("Evidence from history (the most similar past tasks): noise-"))
    }
}

@Suite struct InventedCandidateTests {
    @Test("beyond the catalog: a width between two frontier neighbours of one family, in their precision, once")
    func inventsBetweenNeighbours() throws {
        let catalog = try CandidateCatalog(
            try YAMLValue.parse(
                "numeric:\n  - {family: mlp, hidden: [[8], [64], [96]], precision: [int8]}\n  - {family: linear}\n",
                file: "c.yaml"))
        let candidates = catalog.numeric
        func trial(_ id: String, quality: Double, flops: Int, size: Int) throws -> TrialResult {
            let candidate = try #require(candidates.first { $0.id == id })
            return TrialResult(
                id: id, family: candidate.family, config: candidate.config, precision: candidate.precision, params: 1,
                sizeBytes: size, flopsPerExample: flops,
                metrics: ["accuracy": MetricEstimate(value: quality, ci95: quality...quality)],
                differenceToTeacher: MetricEstimate(value: quality - 0.9, ci95: (quality - 0.9)...(quality - 0.9)),
                fidelity: 1, status: .complete, onFrontier: false)
        }
        let trials = [
            try trial("mlp-8x1-int8", quality: 0.80, flops: 100, size: 100),
            try trial("mlp-64x1-int8", quality: 0.90, flops: 800, size: 800),
            try trial("mlp-96x1-int8", quality: 0.85, flops: 1200, size: 1200),  // dominated: no pair with it
            try trial("linear-fp32", quality: 0.70, flops: 50, size: 50),
        ]
        let made = SearchEngine.inventCandidates(trials: trials, candidates: candidates, metric: "accuracy")
        #expect(made.map(\.candidate.id) == ["mlp-24x1-int8"])
        #expect(made.allSatisfy { $0.candidate.invented })
        // Interpolated between the neighbours' gaps (−0.10 and 0.00): −0.05 ± 0.05.
        #expect(abs((made.first?.prediction.gap ?? 0) + 0.05) < 1e-9)
        #expect(abs((made.first?.prediction.gapSD ?? 0) - 0.05) < 1e-9)
        let again = SearchEngine.inventCandidates(
            trials: trials, candidates: candidates + made.map(\.candidate), metric: "accuracy")
        #expect(again.isEmpty)
    }
}

@Suite struct ScreeningTests {
    @Test("a run is uncertain only when its prediction interval straddles the bar (or a member has no prediction)")
    func uncertainStraddlesTheBar() {
        func p(_ gap: Double, _ sd: Double) -> CandidatePrediction {
            CandidatePrediction(gap: gap, gapSD: sd, latencyMsP50: nil, neighbours: 8)
        }
        let bar = -0.01
        // −0.02 ± 2·0.01 reaches −0.01 optimistically but not pessimistically: uncertain.
        #expect(SearchEngine.isUncertain([p(-0.02, 0.01)], bar: bar, z: 2))
        // Confidently in (−0.005 − 0.002 ≥ −0.01), even beside an uncertain precision variant: not uncertain.
        #expect(!SearchEngine.isUncertain([p(-0.005, 0.001), p(-0.02, 0.01)], bar: bar, z: 2))
        // Confidently out (−0.05 + 0.02 < −0.01): not uncertain.
        #expect(!SearchEngine.isUncertain([p(-0.05, 0.01)], bar: bar, z: 2))
        // A tighter z makes the same prediction certain; a missing prediction is uncertain.
        #expect(!SearchEngine.isUncertain([p(-0.02, 0.01)], bar: bar, z: 0.5))
        #expect(SearchEngine.isUncertain([p(-0.05, 0.01), nil], bar: bar, z: 2))
    }

    @Test(
        "after the residual correction, uncertain runs are screened on halving's ladder: the best 1/η go on at each step, and at the last the smallest run smaller than the best goes on with it; the runs that measure the offset train at full fidelity unscreened"
    )
    func uncertainRunsScreened() async throws {
        let task = try blobTask(learnable: true, seed: 42, classes: 5)
        let catalog = try CandidateCatalog(
            try YAMLValue.parse(
                "numeric:\n  - {family: linear, precision: [fp32, int8], epochs: 20}\n"
                    + "  - {family: mlp, hidden: [[8], [16], [32], [64], [128, 64]], precision: [fp32, int8], epochs: 21}\n",
                file: "c.yaml"))
        var settings = SearchSettings(catalog: catalog, seed: 4, strategy: .exhaustive, workers: 2)
        settings.speedTolerance = speedNeverDecides
        let exhaustive = try await SearchEngine.run(task: task, settings: settings, storage: nil)
        let measured = Dictionary(
            uniqueKeysWithValues: exhaustive.trials.compactMap { t in t.differenceToTeacher.map { (t.id, $0.value) } })
        // linear and mlp-16x1 train first (wide predictions, none above the bar: the cheapest, linear at 20 epochs, and
        // of the 21-epoch runs the most promising), each 0.2 below what they measure. They are the two runs a screen waits
        // for, and the correction shifts every prediction up by 0.2. mlp-8x1 (below the bar but wide), mlp-128-64
        // (−0.19 → +0.01) and mlp-32x1 and mlp-64x1 (−0.22 → −0.02) are then screened together.
        func prediction(_ id: String) -> CandidatePrediction {
            let run = id.replacingOccurrences(of: "-fp32", with: "").replacingOccurrences(of: "-int8", with: "")
            let (gap, sd): (Double, Double) =
                switch run {
                case "linear", "mlp-8x1", "mlp-16x1": ((measured[id] ?? 0) - 0.2, 0.3)
                case "mlp-128-64": (-0.19, 0.01)
                default: (-0.22, 0.01)
                }
            return CandidatePrediction(gap: gap, gapSD: sd, latencyMsP50: nil, neighbours: 8)
        }
        settings.strategy = .learned
        settings.historyTasks = 3
        for candidate in SearchEngine.candidateSpace(task: task, settings: settings) where candidate.status == .complete
        {
            settings.predictions[candidate.id] = prediction(candidate.id)
        }
        let phases = OrderLog()
        let learned = try await SearchEngine.run(task: task, settings: settings, storage: nil) { event in
            if case .phase(let text) = event { phases.append(text) }
        }
        let screens = phases.ids.filter { $0.hasPrefix("screening") }
        #expect(screens.count == 2, "\(phases.ids)")
        let screen = try #require(screens.first)
        #expect(
            ["mlp-8x1", "mlp-32x1", "mlp-64x1", "mlp-128-64"].allSatisfy { screen.contains("\($0)-fp32") }, "\(screen)")
        // Halving's first rung here is at 1/9 (three rungs): the screen starts there, not at 1/η.
        #expect(screen.contains("at fidelity 0.111"), "\(screen)")
        #expect(!screen.contains("linear") && !screen.contains("mlp-16x1"))
        // ⌈4 / 3⌉ = 2 runs go on to 1/3, where the larger mlp-128-64 measures best and takes the one place. The smaller
        // mlp-64x1 goes on to a full run with it: it qualifies in full (exhaustive recommends it), and without it the
        // search would have recommended mlp-128-64.
        let step = try #require(screens.last)
        #expect(step.contains("at fidelity 0.333"), "\(step)")
        #expect(step.contains("mlp-128-64-fp32") && step.contains("mlp-64x1-fp32"), "\(step)")
        let note = "also going on beside the screen's best: mlp-64x1-fp32, mlp-64x1-int8"
        #expect(phases.ids.contains { $0.hasPrefix(note) }, "\(phases.ids)")
        let trial = Dictionary(uniqueKeysWithValues: learned.trials.map { ($0.id, $0) })
        for id in ["mlp-128-64-fp32", "mlp-64x1-fp32"] {
            #expect(trial[id]?.status == .complete && trial[id]?.fidelity == 1, "\(id)")
        }
        let screenedOut = ["mlp-8x1-fp32", "mlp-32x1-fp32"].compactMap { trial[$0] }.filter { $0.status == .pruned }
        #expect(screenedOut.count == 2, "\(learned.trials.map { "\($0.id) \($0.status) \($0.fidelity)" })")
        #expect(
            screenedOut.allSatisfy {
                $0.fidelity > 0 && $0.fidelity < 1 && !$0.metrics.isEmpty && ($0.reason ?? "").contains("screened at")
            })
        #expect(learned.summary.stoppedBecause.contains("screened at low fidelity and pruned"))
        #expect(learned.recommendation.candidate == exhaustive.recommendation.candidate)
        #expect(learned.summary.candidateEpochs < exhaustive.summary.candidateEpochs)
    }
}

@Suite struct LearnedOrderTests {
    @Test(
        "when no run is predicted to reach the bar, the uncertain runs cheapest to train measure the offset, the most promising first among equally cheap ones"
    )
    func cheapestThenMostPromisingWhenNoneLikely() async throws {
        let task = try blobTask(learnable: true, seed: 42, classes: 5)
        var settings = SearchSettings(
            catalog: try CandidateCatalog(try YAMLValue.parse(learnedCatalog, file: "c.yaml")), seed: 4,
            strategy: .learned, workers: 2)
        settings.historyTasks = 3
        for candidate in SearchEngine.candidateSpace(task: task, settings: settings) where candidate.status == .complete
        {
            // Everything below the bar of −0.01 as predicted, above it only optimistically; the deepest mlp nearest.
            let gap = candidate.id.hasPrefix("mlp-128-64") ? -0.015 : candidate.id.hasPrefix("mlp-64x1") ? -0.02 : -0.03
            settings.predictions[candidate.id] = CandidatePrediction(
                gap: gap, gapSD: 0.02, latencyMsP50: nil, neighbours: 8)
        }
        let order = OrderLog()
        _ = try await SearchEngine.run(task: task, settings: settings, storage: nil) { event in
            if case .trial(let trial, _, _) = event, trial.status == .complete { order.append(trial.id) }
        }
        // The first wave (two runs) is the closed-form prototype (one epoch) and, of the runs of 20 epochs, the one
        // nearest the bar (not linear, first by FLOPs).
        #expect(
            Set(order.ids.prefix(3)) == ["mlp-128-64-fp32", "mlp-128-64-int8", "prototype-fp32"], "\(order.ids)")
    }
}

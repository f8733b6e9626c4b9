import Foundation
import RetortData
import RetortNumerics
import RetortReports
import RetortSearch
import RetortTestSupport
import Testing

@testable import RetortHistory

@Suite struct DistanceWideningTests {
    /// A generated history: 12 tasks at random points of a 3-D meta space (four of them far out), 6 candidates each
    /// (a 2-D descriptor); a candidate's gap depends on its task's position and its descriptor, plus noise.
    static func history(seed: UInt64) -> (rows: [[Double]], gaps: [Double], tasks: [String]) {
        var generator = SeededGenerator(seed: seed)
        func uniform(_ low: Double, _ high: Double) -> Double { Double.random(in: low..<high, using: &generator) }
        var rows: [[Double]] = []
        var gaps: [Double] = []
        var tasks: [String] = []
        for task in 0..<12 {
            let reach = task < 8 ? 1.0 : 4.0
            let meta = (0..<3).map { _ in uniform(-reach, reach) }
            for candidate in 0..<6 {
                let descriptor = [Double(candidate % 3), Double(candidate / 3)]
                rows.append(meta + descriptor)
                gaps.append(
                    -0.05 * Double(candidate % 3) + 0.03 * meta[0] - 0.02 * meta[1] * meta[2] + uniform(-0.01, 0.01))
                tasks.append("t\(task)")
            }
        }
        return (rows, gaps, tasks)
    }

    /// The widening fitted on `data` as the predictor fits it (k = 8, floor 0.01).
    static func fitted(_ data: (rows: [[Double]], gaps: [Double], tasks: [String])) -> DistanceWidening {
        DistanceWidening.fitted(standardized: data.rows, gaps: data.gaps, taskIds: data.tasks, k: 8, floorSD: 0.01)
    }

    /// The share of the history's trials within ±2 sd when each is predicted from the other tasks' 8 nearest trials,
    /// by brute force in Double (independent of the fit's sgemm path), with the distance term `c`.
    static func leaveOneTaskOutCoverage(
        _ data: (rows: [[Double]], gaps: [Double], tasks: [String]), widening: DistanceWidening, c: Double
    ) -> Double {
        var inside = 0
        for i in data.rows.indices {
            let nearest = data.rows.indices.filter { data.tasks[$0] != data.tasks[i] }.map { j in
                (zip(data.rows[i], data.rows[j]).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot(), j)
            }.sorted { $0.0 < $1.0 }.prefix(8)
            let weights = nearest.map { 1 / ($0.0 + 0.25) }
            let total = weights.reduce(0, +)
            let mean = zip(weights, nearest).reduce(0) { $0 + $1.0 * data.gaps[$1.1.1] } / total
            let variance = zip(weights, nearest).reduce(0) { $0 + $1.0 * pow(data.gaps[$1.1.1] - mean, 2) } / total
            let distance = zip(weights, nearest).reduce(0) { $0 + $1.0 * $1.1.0 } / total
            let extra = c * distance / widening.typicalDistance
            let sd = (variance + 0.01 * 0.01 + extra * extra).squareRoot()
            if abs(data.gaps[i] - mean) <= 2 * sd { inside += 1 }
        }
        return Double(inside) / Double(data.rows.count)
    }

    @Test(
        "the distance term is the smallest that covers 95% of the history's own trials leave one task out, and it grows with distance",
        arguments: [3, 11] as [UInt64])
    func fittedCoverage(seed: UInt64) throws {
        let data = Self.history(seed: seed)
        let widening = Self.fitted(data)
        #expect(widening.fittedOn == data.rows.count)
        // The far tasks are mispredicted beyond their neighbours' spread: without the term, coverage is short.
        let without = try #require(widening.coverageWithout)
        #expect(without < 0.95, "\(widening)")
        #expect(widening.perTypicalDistance > 0)
        let covered = Self.leaveOneTaskOutCoverage(data, widening: widening, c: widening.perTypicalDistance)
        #expect(covered >= 0.95, "\(widening)")
        #expect(abs(covered - (widening.coverageWith ?? 0)) < 0.02)
        // Minimal: 10% less and the history's own coverage drops below the target.
        #expect(Self.leaveOneTaskOutCoverage(data, widening: widening, c: widening.perTypicalDistance * 0.9) < 0.95)
        // The same spread twice as far: a wider interval; at distance 0 only the spread and the floor.
        let near = widening.standardDeviation(spread: 0.02, floor: 0.01, distance: widening.typicalDistance)
        let far = widening.standardDeviation(spread: 0.02, floor: 0.01, distance: 2 * widening.typicalDistance)
        #expect(far > near)
        #expect(
            abs(widening.standardDeviation(spread: 0.02, floor: 0.01, distance: 0) - 0.05.squareRoot() * 0.1) < 1e-12)
        // Up to the reach the linear term; beyond it, whatever the neighbours' spread, nothing narrower than a gap
        // nothing is known about.
        let atReach = widening.standardDeviation(
            spread: 0.02, floor: 0.01, distance: DistanceWidening.reach * widening.typicalDistance)
        let linear = (0.0005 + pow(widening.perTypicalDistance * DistanceWidening.reach, 2)).squareRoot()
        #expect(abs(atReach - linear) < 1e-12)
        let beyond = widening.standardDeviation(
            spread: 0.02, floor: 0.01, distance: (DistanceWidening.reach + 0.1) * widening.typicalDistance)
        let linearBeyond = (0.0005 + pow(widening.perTypicalDistance * (DistanceWidening.reach + 0.1), 2)).squareRoot()
        #expect(linearBeyond < DistanceWidening.uninformed)
        #expect(beyond == DistanceWidening.uninformed)
        #expect(abs(DistanceWidening.uninformed - 0.2887) < 1e-4)
    }

    @Test(
        "κ: with a shared offset per task and little else, most of the deviation goes once the offset is known; 95% of the runs are covered at κ"
    )
    func offsetSpread() throws {
        var generator = SeededGenerator(seed: 5)
        var (residuals, deviations, tasks, runs) = ([Double](), [Double](), [String](), [String]())
        for task in 0..<20 {
            let offset = Double.random(in: -0.05..<0.05, using: &generator)
            for run in 0..<6 {
                let noise = Double.random(in: -0.005..<0.005, using: &generator)
                // Two precision variants of one run: the same residual.
                for variant in 0..<2 {
                    residuals.append(offset + noise)
                    deviations.append(0.04)
                    tasks.append("t\(task)")
                    runs.append("t\(task)|r\(run)")
                    _ = variant
                }
            }
        }
        let kappa = try #require(
            DistanceWidening.offsetSpread(residuals: residuals, deviations: deviations, tasks: tasks, runs: runs))
        // |noise − mean of 5 others| ≤ 0.01 against z · sd = 0.08: κ ≤ 0.125, and well above 0.
        #expect(kappa > 0.01 && kappa <= 0.125, "\(kappa)")
        // Without an offset to learn (each run its own task), nothing is fitted; a task of two runs does not count.
        #expect(
            DistanceWidening.offsetSpread(
                residuals: residuals, deviations: deviations, tasks: runs, runs: runs) == nil)
        // Pure noise as wide as the deviation: κ stays at most 1.
        let wide = residuals.indices.map { _ in Double.random(in: -0.2..<0.2, using: &generator) }
        let loose = try #require(
            DistanceWidening.offsetSpread(
                residuals: wide, deviations: deviations, tasks: tasks, runs: tasks.indices.map { "\($0)" }))
        #expect(loose <= 1 && loose > 0.5, "\(loose)")
    }

    @Test(
        "the chance to meet a bar is the share of the history's held-out residuals (in sd units) that would clear it; the normal tail when too few or beyond the reach",
        arguments: [3, 11] as [UInt64])
    func empiricalChance(seed: UInt64) throws {
        let data = Self.history(seed: seed)
        let widening = Self.fitted(data)
        let residuals = widening.standardizedResiduals
        #expect(residuals.count == widening.fittedOn && residuals == residuals.sorted())
        // The same trials the fit covers: |r| ≤ z is being inside ±2 sd.
        let inside = Double(residuals.filter { abs($0) <= DistanceWidening.z + 1e-9 }.count) / Double(residuals.count)
        #expect(abs(inside - (widening.coverageWith ?? 0)) < 0.02, "\(inside) \(widening)")
        // Counted directly: (k + ½) / (n + 1) for k residuals at or above (bar − gap) / sd.
        func prediction(_ gap: Double, _ sd: Double, relative: Double = 1) -> CandidatePrediction {
            CandidatePrediction(gap: gap, gapSD: sd, latencyMsP50: nil, neighbours: 8, relativeDistance: relative)
        }
        let n = Double(residuals.count)
        for gap in [-0.2, -0.05, -0.01, 0, 0.03, 0.1] {
            let k = Double(residuals.filter { $0 >= (-0.01 - gap) / 0.04 }.count)
            let chance = widening.chance(prediction(gap, 0.04), reaches: -0.01)
            #expect(abs(chance - (k + 0.5) / (n + 1)) < 1e-12, "\(gap)")
            #expect(chance > 0 && chance < 1)
        }
        // Higher predicted gaps never lower the chance.
        let chances = stride(from: -0.3, through: 0.3, by: 0.01).map {
            widening.chance(prediction($0, 0.05), reaches: 0)
        }
        #expect(zip(chances, chances.dropFirst()).allSatisfy { $0 <= $1 })
        // Beyond the reach the residuals of nearer trials do not apply: the normal tail.
        let far = prediction(-0.05, DistanceWidening.uninformed, relative: DistanceWidening.reach + 1)
        #expect(
            abs(widening.chance(far, reaches: -0.01) - StandardNormal.cdf(-0.04 / DistanceWidening.uninformed)) < 1e-12)
    }

    @Test(
        "fat-tailed residuals: near the prediction the empirical chance is surer than the normal tail; never exactly 0 or 1; the normal tail with too few trials"
    )
    func fatTailedChance() {
        // 95 residuals within ±0.3 sd, 5 at ±3 sd: an sd fitted to cover 95% is wide for most trials.
        let residuals = (0..<95).map { -0.3 + 0.6 * Double($0) / 94 } + [-3, -3, 3, 3, 3]
        var generator = SeededGenerator(seed: 1)
        let widening = DistanceWidening(
            typicalDistance: 1, perTypicalDistance: 0.1, fittedOn: 100, coverageWithout: 0.5, coverageWith: 0.95,
            typicalSD: 0.05, standardizedResiduals: residuals.shuffled(using: &generator))
        #expect(widening.standardizedResiduals == residuals.sorted())
        let half = CandidatePrediction(gap: 0.025, gapSD: 0.05, latencyMsP50: nil, neighbours: 8, relativeDistance: 1)
        // Half an sd above the bar: every residual but the two at −3 clears it (98.5 of 101), where Φ(0.5) = 69%.
        #expect(abs(widening.chance(half, reaches: 0) - 98.5 / 101) < 1e-12)
        #expect(abs(StandardNormal.cdf(0.5) - 0.6915) < 1e-4)
        // Three and a half sd below the bar: no residual reaches +3.5, so ½ / 101, never exactly 0.
        let low = CandidatePrediction(gap: -0.175, gapSD: 0.05, latencyMsP50: nil, neighbours: 8, relativeDistance: 1)
        #expect(abs(widening.chance(low, reaches: 0) - 0.5 / 101) < 1e-12)
        // With fewer than the minimum fitted trials, the normal tail.
        let few = DistanceWidening(
            typicalDistance: 1, perTypicalDistance: 0.1, fittedOn: 10, coverageWithout: 0.5, coverageWith: 0.95,
            typicalSD: 0.05, standardizedResiduals: Array(residuals.prefix(10)))
        #expect(abs(few.chance(half, reaches: 0) - StandardNormal.cdf(0.5)) < 1e-12)
    }

    @Test("a history of one task cannot be held out: no widening and no relative distance")
    func oneTask() {
        let widening = DistanceWidening.fitted(
            standardized: [[0, 1], [1, 0]], gaps: [0, -0.1], taskIds: ["a", "a"], k: 8, floorSD: 0.01)
        #expect(widening == .none)
        #expect(widening.relative(3) == nil)
        #expect(widening.standardDeviation(spread: 0, floor: 0.01, distance: 100) == 0.01)
    }
}

@Suite(.serialized) struct LearnedFallbackTests {
    @Test(
        "a history of far-away tasks: the learned strategy runs halving, trains no more candidate-epochs and finds the same qualifying student"
    )
    func farHistoryFallsBackToHalving() async throws {
        // History: tasks no student can learn (noise). New task: blobs a student learns. Every prediction says "far
        // below the bar"; trusted, the search would stop at "no distillation".
        let store = try HistoryStore(path: SyntheticTasks.temporaryFolder().appendingPathComponent("h.sqlite").path)
        for seed in [5, 6, 7] as [UInt64] {
            _ = try await search(
                try blobTask(learnable: false, seed: seed, classes: 5), strategy: .exhaustive, store: store)
        }
        let predictor = try HistoryPredictor(store: store, kind: "numeric", metric: "accuracy")
        let task = try blobTask(learnable: true, seed: 77)
        let (learned, _) = try await search(task, strategy: .learned, predictor: predictor)
        let (halving, _) = try await search(task, strategy: .halving)
        let student = try #require(halving.recommendation.candidate)
        #expect(learned.recommendation.candidate == student)
        #expect(learned.summary.candidateEpochs <= halving.summary.candidateEpochs)
        let mode = try #require(learned.summary.learnedMode)
        #expect(mode.schedule == .halving, "\(mode)")
        #expect(learned.summary.stoppedBecause.contains("the learned strategy ran halving"))
        // The predictions stay in the report, labelled, and the report says how far off they were.
        #expect(learned.trials.allSatisfy { $0.predicted != nil })
        let calibration = try #require(learned.summary.calibration)
        #expect(calibration.predicted > 0 && calibration.mae > 0.1)
        let report = RunReport(job: "j", runId: "r", createdAt: Date(), outcome: learned)
        let markdown = FrontierTable.markdown(report)
        #expect(markdown.contains("Learned strategy schedule: halving ("))
        #expect(
            markdown.contains("Predictions against measurements: \(calibration.inside) of \(calibration.predicted)"))
        let json = try #require(String(data: try report.encoded(), encoding: .utf8))
        #expect(json.contains("\"learned_mode\"") && json.contains("\"calibration\""))
    }

    @Test("with a near-duplicate history the learned strategy keeps its own schedule and saves compute")
    func nearHistoryStaysLearned() async throws {
        let store = try HistoryStore(path: SyntheticTasks.temporaryFolder().appendingPathComponent("h.sqlite").path)
        for seed in [10, 20, 30] as [UInt64] {
            _ = try await search(try blobTask(learnable: true, seed: seed), strategy: .exhaustive, store: store)
        }
        let predictor = try HistoryPredictor(store: store, kind: "numeric", metric: "accuracy")
        #expect(predictor.widening.fittedOn > 0)
        let task = try blobTask(learnable: true, seed: 77)
        let (learned, _) = try await search(task, strategy: .learned, predictor: predictor)
        let (halving, _) = try await search(task, strategy: .halving)
        #expect(learned.summary.learnedMode?.schedule == .learned, "\(String(describing: learned.summary.learnedMode))")
        #expect(learned.recommendation.candidate == halving.recommendation.candidate)
        #expect(learned.summary.candidateEpochs < halving.summary.candidateEpochs)
        let calibration = try #require(learned.summary.calibration)
        #expect(calibration.coverage >= 0.9, "\(calibration)")
    }

    @Test("fewer than three past tasks of the kind: halving, and the summary says why")
    func fewTasksFallBack() async throws {
        let task = try blobTask(learnable: true, seed: 42)
        var settings = SearchSettings(
            catalog: try CandidateCatalog(try YAMLValue.parse(learnedCatalog, file: "c.yaml")), seed: 4,
            strategy: .learned, workers: 2)
        settings.historyTasks = 2
        for candidate in SearchEngine.candidateSpace(task: task, settings: settings) where candidate.status == .complete
        {
            settings.predictions[candidate.id] = CandidatePrediction(
                gap: 0, gapSD: 0.01, latencyMsP50: nil, neighbours: 8)
        }
        let outcome = try await SearchEngine.run(task: task, settings: settings, storage: nil)
        settings.strategy = .halving
        let halving = try await SearchEngine.run(task: task, settings: settings, storage: nil)
        #expect(outcome.summary.learnedMode?.schedule == .halving)
        #expect(outcome.summary.learnedMode?.reason.contains("2 task(s) of this kind, fewer than 3") == true)
        #expect(outcome.summary.candidateEpochs == halving.summary.candidateEpochs)
        #expect(halving.summary.learnedMode == nil)
    }

    @Test(
        "when the history chose learned for a search that named no strategy and then says too little, the search is the exhaustive one it would have been"
    )
    func automaticFallsBackToExhaustive() async throws {
        let task = try blobTask(learnable: true, seed: 42)
        var settings = SearchSettings(
            catalog: try CandidateCatalog(try YAMLValue.parse(learnedCatalog, file: "c.yaml")), seed: 4,
            strategy: .learned, workers: 2)
        settings.learnedFallback = .exhaustive
        settings.speedTolerance = speedNeverDecides
        settings.historyTasks = 2
        let outcome = try await SearchEngine.run(task: task, settings: settings, storage: nil)
        settings.strategy = .exhaustive
        let exhaustive = try await SearchEngine.run(task: task, settings: settings, storage: nil)
        let mode = try #require(outcome.summary.learnedMode)
        #expect(mode.schedule == .exhaustive && mode.reason.contains("fewer than 3"), "\(mode)")
        #expect(outcome.summary.stoppedBecause.contains("(the learned strategy ran exhaustive: "))
        #expect(outcome.summary.candidateEpochs == exhaustive.summary.candidateEpochs)
        #expect(outcome.recommendation.candidate == exhaustive.recommendation.candidate)
        #expect(outcome.trials.map(\.id) == exhaustive.trials.map(\.id))
    }
}

import Foundation
import RetortData
import RetortEvals
import RetortStudents
import Testing

@testable import RetortSearch

/// The training runs of `task` under `settings` (its catalog, constraints and seed), in catalog order.
func trainingGroups(_ task: TaskData, settings: SearchSettings) -> [TrainingGroup] {
    CandidateSpace(
        candidates: settings.catalog.candidates(for: task), task: task, constraints: settings.constraints,
        seed: settings.seed, features: { FeatureSet(task: task, key: $0) }
    ).groups
}

/// Search settings with seed 4 and the catalog `yaml`.
func catalogSettings(_ yaml: String) throws -> SearchSettings {
    SearchSettings(catalog: try CandidateCatalog(try YAMLValue.parse(yaml, file: "c.yaml")), seed: 4)
}

/// The learned strategy's waves before a screen is allowed: the runs that measure the task's offset are the uncertain
/// runs predicted to qualify that are cheapest to train.
struct LearnedWaveTests {
    @Test(
        "before a screen, an uncertain head of the queue makes the wave the uncertain runs predicted to qualify with the fewest epochs, expected epochs beside the first"
    )
    func cheapestUncertainFirst() throws {
        let task = try blobTask(learnable: true, seed: 6)
        var settings = try catalogSettings(
            """
            numeric:
              - family: mlp
                hidden: [[16]]
                precision: [fp32]
                epochs: 40
              - family: linear
                precision: [fp32]
                epochs: 5
              - family: mlp
                hidden: [[64]]
                precision: [fp32]
                epochs: 10
            """)
        let groups = trainingGroups(task, settings: settings)
        #expect(groups.map(\.options.epochs) == [40, 5, 10])
        // Every run straddles the bar of −0.01 (−0.005 ± 2 · 0.02).
        for candidate in groups.flatMap(\.members) {
            settings.predictions[candidate.id] = CandidatePrediction(
                gap: -0.005, gapSD: 0.02, latencyMsP50: nil, neighbours: 8)
        }
        // The cheapest is the linear run; the MLPs, larger and costlier, could not change its predicted pick, so they
        // wait for what it measures.
        let early = SearchEngine.nextWave(groups, screened: [], settings: settings, offsetRunsNeeded: 3, size: 2)
        #expect(early.wave.map(\.options.epochs) == [5] && !early.screening)
        // A run predicted below the bar (though it could reach it) is not one of them while others are predicted
        // to qualify: without the linear run, the cheaper MLP goes first and the smaller one beside it.
        let below = try #require(groups.first { $0.options.epochs == 5 }?.members.first)
        var withBelow = settings
        withBelow.predictions[below.id] = CandidatePrediction(
            gap: -0.02, gapSD: 0.02, latencyMsP50: nil, neighbours: 8)
        let likely = SearchEngine.nextWave(groups, screened: [], settings: withBelow, offsetRunsNeeded: 3, size: 2)
        #expect(likely.wave.map(\.options.epochs) == [10, 40])
        // When no run is predicted to qualify, the cheapest uncertain runs measure the offset.
        var noneLikely = settings
        for candidate in groups.flatMap(\.members) {
            noneLikely.predictions[candidate.id] = CandidatePrediction(
                gap: -0.02, gapSD: 0.02, latencyMsP50: nil, neighbours: 8)
        }
        let cheapest = SearchEngine.nextWave(groups, screened: [], settings: noneLikely, offsetRunsNeeded: 3, size: 2)
        #expect(cheapest.wave.map(\.options.epochs) == [5, 10])
        // With one full run left before the offset is measured, the wave is that one run, not one per free worker.
        let last = SearchEngine.nextWave(groups, screened: [], settings: noneLikely, offsetRunsNeeded: 1, size: 2)
        #expect(last.wave.map(\.options.epochs) == [5])
        let two = SearchEngine.nextWave(groups, screened: [], settings: noneLikely, offsetRunsNeeded: 2, size: 2)
        #expect(two.wave.map(\.options.epochs) == [5, 10])
        // The first run is the cheapest by its configured epochs (then line order), the one whose measurement may rule
        // the others out; the runs beside it are those the history expects to train the fewest epochs: a 40-epoch
        // run that early stopping is predicted to end after a tenth of them (4) goes before a 10-epoch one.
        var earlyStopping = noneLikely
        for candidate in groups.first(where: { $0.options.epochs == 40 })?.members ?? [] {
            earlyStopping.predictions[candidate.id]?.epochsFraction = 0.1
        }
        #expect(SearchEngine.expectedEpochs(groups[0], settings: earlyStopping) == 4)
        #expect(SearchEngine.expectedEpochs(groups[2], settings: earlyStopping) == 10)
        let expected = SearchEngine.nextWave(
            groups, screened: [], settings: earlyStopping, offsetRunsNeeded: 2, size: 2)
        #expect(expected.wave.map(\.options.epochs) == [5, 40])
        // Without the prediction the 10-epoch run goes beside it (above), and a fraction never moves the first.
        for candidate in groups.first(where: { $0.options.epochs == 5 })?.members ?? [] {
            earlyStopping.predictions[candidate.id]?.epochsFraction = 1
        }
        for candidate in groups.first(where: { $0.options.epochs == 10 })?.members ?? [] {
            earlyStopping.predictions[candidate.id]?.epochsFraction = 0.1
        }
        let first = SearchEngine.nextWave(groups, screened: [], settings: earlyStopping, offsetRunsNeeded: 2, size: 2)
        #expect(first.wave.map(\.options.epochs) == [5, 10])
        // Once a screen is allowed, the uncertain runs are screened together, in line order.
        let screen = SearchEngine.nextWave(groups, screened: [], settings: settings, offsetRunsNeeded: 0, size: 2)
        #expect(screen.wave.map(\.options.epochs) == [40, 5, 10] && screen.screening)
        // A head of the queue predicted to qualify confidently keeps its place.
        let head = try #require(groups.first?.members.first)
        settings.predictions[head.id] = CandidatePrediction(gap: 0.05, gapSD: 0.01, latencyMsP50: nil, neighbours: 8)
        let confident = SearchEngine.nextWave(groups, screened: [], settings: settings, offsetRunsNeeded: 3, size: 2)
        #expect(confident.wave.map(\.options.epochs) == [40, 5])
    }

    @Test(
        "a run beside the first offset run that could change its pick but is expected to train more than twice its epochs gives way to the uncertain run expected to train the fewest"
    )
    func costlyCompanionGivesWay() throws {
        let task = try blobTask(learnable: true, seed: 6)
        var settings = try catalogSettings(
            """
            numeric:
              - family: mlp
                hidden: [[64]]
                precision: [fp32]
                epochs: 10
              - family: linear
                precision: [fp32]
                epochs: 50
              - family: mlp
                hidden: [[128]]
                precision: [fp32]
                epochs: 30
            """)
        let groups = trainingGroups(task, settings: settings)
        #expect(groups.map(\.options.epochs) == [10, 50, 30])
        // Every run straddles the bar of −0.01 and is predicted to qualify; the wider MLP is predicted to stop after
        // half its epochs (15), the linear run to train all 50.
        for group in groups {
            for candidate in group.members {
                var prediction = CandidatePrediction(gap: -0.005, gapSD: 0.02, latencyMsP50: nil, neighbours: 8)
                prediction.epochsFraction = group.options.epochs == 30 ? 0.5 : 1
                settings.predictions[candidate.id] = prediction
            }
        }
        // The 10-epoch MLP goes first. Of the others only the linear run, smaller, could change its predicted pick,
        // but at 50 expected epochs it costs more than twice the first's 10: the wider MLP (15 expected) goes beside
        // it instead.
        let wave = SearchEngine.nextWave(groups, screened: [], settings: settings, offsetRunsNeeded: 2, size: 2)
        #expect(wave.wave.map(\.options.epochs) == [10, 30] && !wave.screening)
        // Expected to train all 30 epochs, the wider MLP is over the limit too, and the linear run keeps its place.
        for candidate in groups[2].members { settings.predictions[candidate.id]?.epochsFraction = 1 }
        let costly = SearchEngine.nextWave(groups, screened: [], settings: settings, offsetRunsNeeded: 2, size: 2)
        #expect(costly.wave.map(\.options.epochs) == [10, 50])
    }
}

/// The learned order and the rule-outs follow the recommender's speed rule on the predicted figures: among students
/// about as fast as the fastest, the smallest wins, so a larger student with fewer FLOPs matters only if it could be
/// clearly faster.
struct LearnedSpeedRuleTests {
    /// Two runs predicted to qualify: a small linear run with more FLOPs and a larger MLP run with fewer.
    func twoRuns() throws -> (
        groups: [TrainingGroup], settings: SearchSettings, small: TrainingGroup, large: TrainingGroup
    ) {
        let task = try blobTask(learnable: true, seed: 6, classes: 10)
        let settings = try catalogSettings(
            """
            numeric:
              - family: linear
                precision: [int8]
                epochs: 5
              - family: mlp
                hidden: [[2]]
                precision: [fp32]
                epochs: 5
            """)
        let groups = trainingGroups(task, settings: settings)
        let small = try #require(groups.min { $0.size(of: $0.members[0]) < $1.size(of: $1.members[0]) })
        let large = try #require(groups.first { $0.key != small.key })
        // The test needs the smaller run to be the costlier in FLOPs.
        try #require(small.flops > large.flops && small.size(of: small.members[0]) < large.size(of: large.members[0]))
        return (groups, settings, small, large)
    }

    func predict(_ settings: inout SearchSettings, _ group: TrainingGroup, latency: Double?) {
        for member in group.members {
            settings.predictions[member.id] = CandidatePrediction(
                gap: 0.02, gapSD: 0.005, latencyMsP50: latency, neighbours: 8)
        }
    }

    @Test(
        "runs predicted equally fast go smallest first; one predicted clearly faster goes first; without latencies, fewest FLOPs"
    )
    func order() throws {
        var (groups, settings, small, large) = try twoRuns()
        predict(&settings, small, latency: 0.010)
        predict(&settings, large, latency: 0.008)
        #expect(SearchEngine.learnedOrder(groups, settings: settings).map(\.key) == [small.key, large.key])
        predict(&settings, large, latency: 0.004)
        #expect(SearchEngine.learnedOrder(groups, settings: settings).map(\.key) == [large.key, small.key])
        predict(&settings, small, latency: nil)
        predict(&settings, large, latency: nil)
        #expect(SearchEngine.learnedOrder(groups, settings: settings).map(\.key) == [large.key, small.key])
    }

    @Test(
        "a wave trains beside its first run only runs that could change the first run's predicted pick: smaller, or could be clearly faster"
    )
    func waveCompanions() throws {
        var (_, settings, small, large) = try twoRuns()
        func wave(_ line: [TrainingGroup], size: Int = 2) -> [String] {
            SearchEngine.wave(line, settings: settings, size: size).map(\.key)
        }
        predict(&settings, small, latency: 0.010)
        predict(&settings, large, latency: 0.008)
        // The small run is predicted to qualify: the larger one cannot beat it unless it is clearly faster. The other
        // way round the small run could replace the large one's pick, so both train at once.
        #expect(wave([small, large]) == [small.key] && wave([large, small]) == [large.key, small.key])
        // Predicted 2.5× faster, the large run could win outright.
        predict(&settings, large, latency: 0.004)
        #expect(wave([small, large]) == [small.key, large.key])
        // A first run predicted below the bar has no pick to measure the others against.
        predict(&settings, large, latency: 0.008)
        for member in small.members {
            settings.predictions[member.id] = CandidatePrediction(
                gap: -0.05, gapSD: 0.005, latencyMsP50: 0.010, neighbours: 8)
        }
        #expect(SearchEngine.predictedPick(small, settings: settings) == nil)
        #expect(wave([small, large]) == [small.key, large.key] && wave([small, large], size: 1) == [small.key])
    }

    @Test(
        "a larger run with fewer FLOPs is ruled out against a measured recommendation unless it could be clearly faster"
    )
    func ruleOut() throws {
        var (_, settings, small, large) = try twoRuns()
        let member = small.members[0]
        let current = TrialResult(
            id: member.id, family: member.family, config: [:], precision: member.precision, params: 0,
            sizeBytes: small.size(of: member), flopsPerExample: small.flops, latencyMsP50: 0.01,
            metrics: [:], fidelity: 1, status: .complete, onFrontier: true)
        // Predicted 1.25× faster: not even halfway (√2×) to the 2× that makes it clearly faster.
        predict(&settings, small, latency: 0.010)
        predict(&settings, large, latency: 0.008)
        var split = SearchEngine.partitionPending([large], current: current, settings: settings)
        #expect(split.drop.map(\.key) == [large.key] && split.keep.isEmpty)
        let reason = SearchEngine.notTrainedReason(
            settings.predictions[large.members[0].id], current: current, z: 2, maxDrop: 0.01)
        #expect(reason.contains("neither smaller than the recommendation \(member.id) nor could it be clearly faster"))
        // Predicted 1.6× faster: a 1.25× error in the prediction would make it clearly faster, so it stays.
        predict(&settings, large, latency: 0.00625)
        split = SearchEngine.partitionPending([large], current: current, settings: settings)
        #expect(split.keep.map(\.key) == [large.key])
        // Without a predicted latency it stays.
        predict(&settings, large, latency: nil)
        split = SearchEngine.partitionPending([large], current: current, settings: settings)
        #expect(split.keep.map(\.key) == [large.key])
    }
}

/// A closed-form run's residual corrects only closed-form runs: a prototype that misses its prediction by 0.26 says
/// little about how the trained students will miss theirs.
struct ResidualsByKindTests {
    @Test("trained runs are corrected by the trained runs' residuals, prototypes by the prototypes'")
    func correctedByKind() throws {
        let prediction = CandidatePrediction(gap: -0.02, gapSD: 0.05, latencyMsP50: nil, neighbours: 8)
        let predictions = [
            "prototype-fp32": prediction, "prototype-fp16": prediction, "mlp-16x1-fp32": prediction,
            "mlp-64x1-fp32": prediction,
        ]
        func measured(_ id: String, gap: Double) -> TrialResult {
            TrialResult(
                id: id, family: id.hasPrefix("prototype") ? .prototype : .mlp, config: [:], precision: .fp32,
                params: 1, sizeBytes: 1, flopsPerExample: 1, metrics: [:],
                differenceToTeacher: MetricEstimate(value: gap, ci95: gap - 0.01...gap + 0.01), fidelity: 1,
                status: .complete, onFrontier: false)
        }
        // The prototype measured 0.26 below its prediction, the narrow MLP 0.01 above.
        let trials = [
            "prototype-fp32": measured("prototype-fp32", gap: -0.28),
            "mlp-16x1-fp32": measured("mlp-16x1-fp32", gap: -0.01),
        ]
        let training = { (id: String) in id.replacingOccurrences(of: "-fp16", with: "-fp32") }
        let (residuals, corrected) = SearchEngine.correctedByKind(
            predictions, measured: trials, isTrained: { !$0.hasPrefix("prototype") }, run: training, floor: 0.01,
            offsetSpread: 1)
        // Both runs count toward the two measured runs a screen waits for.
        #expect(residuals.count == 2 && residuals.contains { abs($0 - 0.01) < 1e-12 })
        // The wide MLP moves by the MLP's +0.01, not by the mean of the two (−0.125).
        let wide = try #require(corrected["mlp-64x1-fp32"])
        #expect(abs(wide.gap - -0.01) < 1e-12)
        // The prototype's fp16 copy moves by the prototype's −0.26.
        let copy = try #require(corrected["prototype-fp16"])
        #expect(abs(copy.gap - -0.28) < 1e-12)
        // Pooled as one kind, the MLP would have been pushed to −0.145, 13.5 points below the bar of −0.01.
        let pooled = SearchEngine.correctedPredictions(
            predictions, residuals: [-0.26, 0.01], floor: 0.01, offsetSpread: 1)
        #expect(try #require(pooled["mlp-64x1-fp32"]).gap < -0.1)
    }
}

/// A screen step on halving's ladder: runs still training race for the best 1/η places; a run that finished during the
/// step is decided with what it measured.
struct ScreenStepTests {
    @Test(
        "a prototype finished in the screen neither takes a place nor counts toward them; the best 1/η of the runs still training go on"
    )
    func finishedRunsDoNotRace() throws {
        let task = try blobTask(learnable: true, seed: 6)
        let settings = try catalogSettings(
            """
            numeric:
              - family: prototype
                precision: [fp32]
              - family: mlp
                hidden: [[8], [16], [32], [64]]
                precision: [fp32]
                epochs: 50
            """)
        let groups = trainingGroups(task, settings: settings)
        let prototype = try #require(groups.first { !$0.isTrainable })
        let mlps = groups.filter(\.isTrainable)
        #expect(mlps.count == 4)
        // The prototype, complete after its one pass, measures best; the MLPs, at 2 of their 50 epochs, measure
        // 0.50, 0.60, 0.70 and 0.65 (in catalog order).
        let measured = [prototype.key: 0.90].merging(zip(mlps.map(\.key), [0.50, 0.60, 0.70, 0.65])) { $1 }
        let step = SearchEngine.screenStep(
            groups, quality: { measured[$0.key] ?? -.infinity }, finished: { !$0.isTrainable }, eta: 3)
        // ⌈4 / 3⌉ = 2 places, both for MLPs, the best two by what they measured; counted with the prototype, the
        // places would have been ⌈5 / 3⌉ = 2, one of them the prototype's.
        #expect(step.goOn.map(\.key) == [mlps[2].key, mlps[3].key])
        #expect(Set(step.pruned.map(\.key)) == Set([mlps[0].key, mlps[1].key]))
        #expect(step.finished.map(\.key) == [prototype.key])
        // An MLP that early stopping finished during the step is decided the same way; ties go to fewer FLOPs.
        let tied = SearchEngine.screenStep(
            mlps, quality: { _ in 0.5 }, finished: { $0.key == mlps[0].key }, eta: 3)
        #expect(tied.finished.map(\.key) == [mlps[0].key])
        #expect(tied.goOn.map(\.key) == [mlps[1].key] && tied.pruned.map(\.key) == [mlps[2].key, mlps[3].key])
    }

    @Test(
        "the screen's last step sends on, beside its best, the smallest pruned run smaller than every run going on, whatever it measured; none when no pruned run is smaller"
    )
    func smallerContenderGoesOn() throws {
        let task = try blobTask(learnable: true, seed: 6)
        let settings = try catalogSettings(
            """
            numeric:
              - family: mlp
                hidden: [[8], [16], [32], [64]]
                precision: [fp32, int8]
                epochs: 50
            """)
        let mlps = trainingGroups(task, settings: settings)
        #expect(mlps.count == 4)
        // In catalog order the runs grow. The two widest measure best at a fraction of their epochs and take ⌈4 / 3⌉ = 2
        // places.
        #expect(zip(mlps, mlps.dropFirst()).allSatisfy { $0.smallestSize < $1.smallestSize })
        let measured = Dictionary(uniqueKeysWithValues: zip(mlps.map(\.key), [0.40, 0.55, 0.60, 0.90]))
        let step = SearchEngine.screenStep(
            mlps, quality: { measured[$0.key] ?? -.infinity }, finished: { _ in false }, eta: 3)
        #expect(step.goOn.map(\.key) == [mlps[3].key, mlps[2].key])
        // Of the pruned runs, both smaller than the two going on, the smallest goes on, though it measured worst.
        let contender = SearchEngine.smallerContender(step.pruned, goingOn: step.goOn)
        #expect(contender?.key == mlps[0].key)
        // With the smallest run going on, no pruned run is smaller than every run going on.
        #expect(SearchEngine.smallerContender([mlps[1], mlps[2]], goingOn: [mlps[0], mlps[3]]) == nil)
        #expect(SearchEngine.smallerContender([], goingOn: [mlps[3]]) == nil)
    }
}

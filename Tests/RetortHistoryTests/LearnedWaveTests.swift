import Foundation
import RetortData
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

/// The learned strategy's waves before a screen is allowed: the runs that measure the task's offset are the uncertain
/// runs predicted to qualify that are cheapest to train.
struct LearnedWaveTests {
    @Test(
        "before a screen, an uncertain head of the queue makes the wave the uncertain runs predicted to qualify with the fewest epochs"
    )
    func cheapestUncertainFirst() throws {
        let task = try blobTask(learnable: true, seed: 6)
        var settings = SearchSettings(
            catalog: try CandidateCatalog(
                try YAMLValue.parse(
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
                    """, file: "c.yaml")), seed: 4)
        let groups = trainingGroups(task, settings: settings)
        #expect(groups.map(\.options.epochs) == [40, 5, 10])
        // Every run straddles the bar of −0.01 (−0.005 ± 2 · 0.02).
        for candidate in groups.flatMap(\.members) {
            settings.predictions[candidate.id] = CandidatePrediction(
                gap: -0.005, gapSD: 0.02, latencyMsP50: nil, neighbours: 8)
        }
        let early = SearchEngine.nextWave(groups, screened: [], settings: settings, screen: false, size: 2)
        #expect(early.wave.map(\.options.epochs) == [5, 10] && !early.screening)
        // A run predicted below the bar (though it could reach it) is not one of them while others are predicted
        // to qualify.
        let below = try #require(groups.last?.members.first)
        var withBelow = settings
        withBelow.predictions[below.id] = CandidatePrediction(
            gap: -0.02, gapSD: 0.02, latencyMsP50: nil, neighbours: 8)
        let likely = SearchEngine.nextWave(groups, screened: [], settings: withBelow, screen: false, size: 2)
        #expect(likely.wave.map(\.options.epochs) == [5, 40])
        // When no run is predicted to qualify, the cheapest uncertain runs measure the offset.
        var noneLikely = settings
        for candidate in groups.flatMap(\.members) {
            noneLikely.predictions[candidate.id] = CandidatePrediction(
                gap: -0.02, gapSD: 0.02, latencyMsP50: nil, neighbours: 8)
        }
        let cheapest = SearchEngine.nextWave(groups, screened: [], settings: noneLikely, screen: false, size: 2)
        #expect(cheapest.wave.map(\.options.epochs) == [5, 10])
        // Once a screen is allowed, the uncertain runs are screened together, in line order.
        let screen = SearchEngine.nextWave(groups, screened: [], settings: settings, screen: true, size: 2)
        #expect(screen.wave.map(\.options.epochs) == [40, 5, 10] && screen.screening)
        // A head of the queue predicted to qualify confidently keeps its place.
        let head = try #require(groups.first?.members.first)
        settings.predictions[head.id] = CandidatePrediction(gap: 0.05, gapSD: 0.01, latencyMsP50: nil, neighbours: 8)
        let confident = SearchEngine.nextWave(groups, screened: [], settings: settings, screen: false, size: 2)
        #expect(confident.wave.map(\.options.epochs) == [40, 5])
    }
}

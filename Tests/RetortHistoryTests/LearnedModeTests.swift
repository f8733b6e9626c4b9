import Foundation
import RetortData
import Testing

@testable import RetortSearch

/// How the learned strategy picks its schedule from the predictions' width and distance.
struct LearnedModeTests {
    /// The training runs of a small catalog with every candidate predicted at `sd`, `relative` typical distances away,
    /// from a history of 50 tasks whose own predictions have a median sd of 0.015.
    func settings(sd: Double, relative: Double) throws -> (groups: [TrainingGroup], settings: SearchSettings) {
        let task = try blobTask(learnable: true, seed: 6)
        var settings = try catalogSettings(
            """
            numeric:
              - family: linear
                precision: [fp32, int8]
                epochs: 5
              - family: mlp
                hidden: [[16]]
                precision: [fp32]
                epochs: 10
            """)
        settings.historyTasks = 50
        settings.historyTypicalSD = 0.015
        let groups = trainingGroups(task, settings: settings)
        for candidate in groups.flatMap(\.members) {
            settings.predictions[candidate.id] = CandidatePrediction(
                gap: 0, gapSD: sd, latencyMsP50: nil, neighbours: 8, relativeDistance: relative)
        }
        return (groups, settings)
    }

    func mode(sd: Double, relative: Double) throws -> LearnedMode {
        let (groups, settings) = try settings(sd: sd, relative: relative)
        return LearnedMode.choose(groups: groups, settings: settings)
    }

    @Test("near neighbours with intervals as narrow as the history's own keep the learned schedule and say so")
    func nearAndNarrowStaysLearned() throws {
        let mode = try mode(sd: 0.03, relative: 3.8)
        #expect(mode.schedule == .learned, "\(mode)")
        #expect(mode.reason.contains("nearest past trials at 3.8× the typical distance"), "\(mode)")
        #expect(mode.reason.contains("predicted sd 0.0300, 2.0× the history's 0.0150"), "\(mode)")
    }

    @Test("neighbours more than 4× the typical distance away run halving, however narrow the intervals")
    func farRunsHalving() throws {
        let mode = try mode(sd: 0.015, relative: 4.7)
        #expect(mode.schedule == .halving, "\(mode)")
        #expect(mode.reason.contains("4.7× farther than past tasks are from each other"), "\(mode)")
    }

    @Test("intervals more than 3× the history's own run halving, however near the neighbours")
    func wideRunsHalving() throws {
        for relative in [0.8, 3.9] {
            let mode = try mode(sd: 0.046, relative: relative)
            #expect(mode.schedule == .halving, "\(mode)")
            #expect(mode.reason.contains("3.1× wider than the history's own"), "\(mode)")
        }
    }

    @Test("fewer than three past tasks, or predictions for fewer than half the candidates, run halving")
    func littleEvidenceRunsHalving() throws {
        var (groups, settings) = try settings(sd: 0.01, relative: 1)
        settings.historyTasks = 2
        #expect(LearnedMode.choose(groups: groups, settings: settings).schedule == .halving)
        settings.historyTasks = 50
        let members = groups.flatMap(\.members)
        for candidate in members.prefix(members.count / 2 + 1) {
            settings.predictions[candidate.id] = nil
        }
        let mode = LearnedMode.choose(groups: groups, settings: settings)
        #expect(mode.schedule == .halving && mode.reason.contains("fewer than half"), "\(mode)")
    }
}

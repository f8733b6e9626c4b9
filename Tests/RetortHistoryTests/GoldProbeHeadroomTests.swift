import Foundation
import RetortData
import RetortSearch
import RetortTestSupport
import Testing

@testable import RetortHistory

/// The gold-probe headroom meta-feature: a converged gold-label probe against the teacher, on validation gold.
@Suite struct GoldProbeHeadroomTests {
    /// Three separable blobs whose teacher answers `c(gold+1)` on every `wrongEvery`-th row (never, with 0); without
    /// gold on train when `trainGold` is false.
    func blobs(wrongEvery: Int, trainGold: Bool = true, seed: UInt64 = 3) throws -> TaskData {
        func rows(_ count: Int, _ seed: UInt64, _ prefix: String, gold: Bool) -> [[String: Any]] {
            SyntheticTasks.numericRows(
                count: count, separation: 4, seed: seed, idPrefix: prefix, teacherWrongEvery: wrongEvery
            ).map { row in
                var row = row
                if !gold { row["gold"] = nil }
                return row
            }
        }
        let folder = try SyntheticTasks.writeTask(
            name: "blobs", kind: .numeric, train: rows(600, seed, "tr", gold: trainGold),
            validation: rows(300, seed + 1, "va", gold: true), test: rows(150, seed + 2, "te", gold: true))
        return try TaskData.load(Job(task: folder))
    }

    @Test("a teacher wrong on a third of separable rows leaves headroom near its error; a right one leaves none")
    func headroomFollowsTheTeachersErrors() throws {
        let noisy = try MetaFeatures(task: try blobs(wrongEvery: 3))
        let teacher = try #require(noisy.teacherGoldAccuracy)
        #expect(abs(teacher - 2.0 / 3.0) < 0.01)
        let headroom = try #require(noisy.goldProbeHeadroom)
        // The probe learns the blobs from gold (≥ 95% of validation), so the headroom is about the teacher's 1/3 error.
        #expect(headroom > 0.28 && headroom <= 1 - teacher + 1e-12, "\(headroom)")
        let clean = try MetaFeatures(task: try blobs(wrongEvery: 0))
        let none = try #require(clean.goldProbeHeadroom)
        #expect(abs(none) < 0.05, "\(none)")
        #expect(noisy.teacherWarning?.contains(String(format: "scores %.1f points above", headroom * 100)) == true)
        #expect(clean.teacherWarning == nil)
        // The probe is seeded on its own: the search's seed does not move it.
        #expect(try MetaFeatures(task: try blobs(wrongEvery: 3), seed: 99).goldProbeHeadroom == headroom)
    }

    @Test("text tasks have one too; no gold on train gives none; filling in an old record computes the same value")
    func textUnknownAndFilledIn() throws {
        #expect(try MetaFeatures(task: try blobs(wrongEvery: 3, trainGold: false)).goldProbeHeadroom == nil)
        // A keyword task whose teacher is gold: the probe on hashed words reaches the teacher, and no further.
        let text = try generatedTask(.text)
        let words = try #require(try MetaFeatures(task: text).goldProbeHeadroom)
        #expect(words <= 0 && words > -0.05, "\(words)")
        for task in [try blobs(wrongEvery: 3), text] {
            let fresh = try MetaFeatures(task: task)
            var old = fresh
            old.goldProbeHeadroom = nil
            #expect(old.vector == fresh.vector, "the predictor does not read it")
            #expect(try old.filledIn(from: task) == fresh)
            #expect(try fresh.filledIn(from: task) == fresh, "a recorded value stays")
        }
    }

    @Test("suggest's predictor reads the headroom (0 where unknown); the learned search's does not")
    func suggestReadsTheHeadroom() async throws {
        // Two past tasks alike in every meta-feature but the headroom, and a new one with the second's headroom.
        let run = try await historyRun(try generatedTask(.numeric))
        func past(_ id: String, headroom: Double?) -> HistoryRun {
            var copy = run
            copy.id = "job/\(id)"
            copy.taskId = id
            copy.meta.goldProbeHeadroom = headroom
            return copy
        }
        let store = try HistoryStore(path: SyntheticTasks.temporaryFolder().appendingPathComponent("h.sqlite").path)
        #expect(try store.record(past("clean", headroom: nil)))
        #expect(try store.record(past("noisy", headroom: 0.3)))
        var query = run.meta
        query.goldProbeHeadroom = 0.3
        let suggest = try HistoryPredictor(
            store: store, kind: "numeric", metric: "accuracy", readsGoldProbeHeadroom: true)
        // Standardized over the two (0 and 0.3), the headroom puts the clean task 2 units away, the noisy one at 0.
        let near = suggest.similarTasks(to: query).map(\.distance)
        #expect(near.count == 2 && abs(near[0]) < 1e-9 && abs(near[1] - 2) < 1e-9, "\(near)")
        let search = try HistoryPredictor(store: store, kind: "numeric", metric: "accuracy")
        #expect(search.similarTasks(to: query).map(\.distance).allSatisfy { abs($0) < 1e-9 })
        // The candidate's neighbours are the noisy task's trials only when the headroom is read.
        let candidate = try #require(run.report.candidates.first)
        let nearestTask = {
            (predictor: HistoryPredictor) in
            predictor.neighbours(
                of: HistoryPredictor.features(
                    vector: predictor.taskVector(query), family: candidate.family, precision: candidate.precision,
                    sizeBytes: candidate.sizeBytes, flops: candidate.flopsPerExample)
            ).prefix(1).map(\.example.taskId)
        }
        #expect(nearestTask(suggest) == ["noisy"])
        #expect(HistoryPredictor.taskVector(run.meta, readsGoldProbeHeadroom: true) == run.meta.vector + [0])
        #expect(search.taskVector(query) == query.vector)
    }
}

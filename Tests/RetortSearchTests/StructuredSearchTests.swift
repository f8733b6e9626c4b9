import Foundation
import RetortData
import RetortEvals
import RetortStudents
import RetortTestSupport
import Testing

@testable import RetortSearch

/// The structured search (FORMATS.md §9) on a synthetic task: teacher figures, trials, frontier, recommendation, test
/// figures and the exported student.
@Suite struct StructuredSearchTests {
    static func settings(catalog: String, maxDrop: Double = 0.5) throws -> SearchSettings {
        var job = Job(task: URL(fileURLWithPath: "/unused"))
        job.candidates = try YAMLValue.parse(catalog, file: "catalog.yaml")
        job.maxDrop = maxDrop
        return try SearchSettings(job: job, strategy: .exhaustive, workers: 1)
    }

    static let nearestCatalog = """
        structured:
          - family: nearest
            buckets_log2: [12, 16]
        """

    @Test("a nearest search: teacher with its invalid rows, every candidate scored with CIs, a recommendation tested")
    func nearestSearch() throws {
        let task = try StructuredTaskData.load(folder: try SyntheticStructured.writeTask())
        let result = try StructuredSearch.run(task: task, settings: try Self.settings(catalog: Self.nearestCatalog))
        let outcome = result.outcome
        #expect(outcome.kind == .structured)
        #expect(outcome.primaryMetric == "exact_match")
        #expect(outcome.trials.map(\.id) == ["nearest-b12", "nearest-b16"])
        #expect(outcome.teacher.invalidRows == task.splits.reduce(0) { $0 + $1.invalidTeacherRows })
        #expect((outcome.teacher.invalidRows ?? 0) > 0, "the synthetic teacher writes some invalid answers")
        let teacherMatch = try #require(outcome.teacher.validationMetrics["exact_match"])
        #expect(teacherMatch.value > 0.85 && teacherMatch.value < 1)
        for trial in outcome.trials {
            #expect(trial.status == .complete)
            let match = try #require(trial.metrics["exact_match"])
            #expect(match.ci95[0] <= match.value && match.value <= match.ci95[1])
            #expect(trial.metrics["valid"] != nil && trial.metrics["field_f1"] != nil)
            #expect(trial.differenceToTeacher != nil)
            #expect((trial.latencyMsP50 ?? 0) > 0 && trial.sizeBytes > 0 && trial.flopsPerExample > 0)
        }
        // The inputs repeat their templates with few slot values, so retrieval is nearly as good as the teacher.
        let values = outcome.trials.compactMap { $0.metrics["exact_match"]?.value }
        let best = try #require(values.max())
        #expect(best > 0.6)
        let candidate = try #require(outcome.recommendation.candidate)
        #expect(outcome.recommendationTestMetrics?["exact_match"] != nil)
        #expect(outcome.recommendationTestDifference != nil)
        let student = try #require(result.recommended)

        // Exported and loaded back, the student gives the same answers.
        let folder = SyntheticTasks.temporaryFolder().appendingPathComponent("model")
        try student.write(to: folder, candidate: candidate)
        #expect(StructuredStudent.isStructured(folder: folder))
        let loaded = try StructuredStudent.load(from: folder)
        #expect(loaded.candidate == candidate)
        let before = try student.predict(task.test.texts)
        let after = try loaded.predict(task.test.texts)
        #expect(before.map(\.answer) == after.map(\.answer))
        #expect(before.map(\.confidence) == after.map(\.confidence))
    }

    @Test("values to copy that were never seen: retrieval alone falls short; a cascade answers where it is sure")
    func cascade() throws {
        let task = try StructuredTaskData.load(folder: try SyntheticStructured.writeTask(novelItems: true))
        let result = try StructuredSearch.run(
            task: task, settings: try Self.settings(catalog: Self.nearestCatalog, maxDrop: 0.01))
        let outcome = result.outcome
        let teacherValue = try #require(outcome.teacher.validationMetrics["exact_match"]?.value)
        for trial in outcome.trials {
            #expect((trial.metrics["exact_match"]?.value ?? 1) < teacherValue - 0.01, "no student alone meets the bar")
        }
        #expect(outcome.recommendation.kind == "cascade", "\(outcome.recommendation.reason)")
        let point = try #require(outcome.recommendation.cascadePoint)
        #expect(point.coverage > 0.3 && point.coverage < 1)
        #expect((point.metrics["exact_match"]?.value ?? 0) >= teacherValue - 0.01)
        #expect(outcome.recommendation.reason.contains("confidence ≥"))
        #expect(outcome.recommendationTestDifference != nil && outcome.recommendationTestMetrics != nil)
        #expect(!outcome.cascades.isEmpty && outcome.cascades.allSatisfy { !$0.validation.isEmpty && !$0.test.isEmpty })
        let exported = result.recommended != nil
        #expect(exported, "the cascade's student is exported")
    }

    @Test("a catalog's structured: section expands and rejects what does not apply, at its line")
    func catalogSection() throws {
        let catalog = try CandidateCatalog(
            try YAMLValue.parse(
                """
                structured:
                  - family: nearest
                    buckets_log2: 14
                  - family: fields
                    buckets_log2: [14, 16]
                    hidden: [0, 32]
                    precision: [fp32, int8]
                """, file: "c.yaml"))
        #expect(catalog.structured.count == 1 + 2 * 2 * 2)
        #expect(catalog.structured.first?.id == "nearest-b14")
        #expect(catalog.structured.map(\.id).contains("fields-h32-b16-int8"))
        #expect(catalog.text.isEmpty && catalog.numeric.isEmpty)
        let slm = try CandidateCatalog(
            try YAMLValue.parse(
                "structured:\n  - family: slm\n    rank: [4, 8]\n    depth: 2\n    train_rows: 64\n", file: "s.yaml"))
        #expect(slm.structured.map(\.id) == ["slm-r4-d2-n64-fp16", "slm-r8-d2-n64-fp16"])
        #expect(slm.structured[0].config["rank"] == .int(4) && slm.structured[0].trainingKey == "slm-r4-d2-n64-fp32")
        let standard = CandidateCatalog.standard().structured.filter { $0.family == .slm }
        #expect(standard.map(\.id) == ["slm-r8-d2-fp16"], "the default catalog offers one slm")
        let cases: [(String, Int, String)] = [
            ("structured:\n  - family: nearest\n    hidden: 32\n", 3, "remove hidden"),
            ("structured:\n  - family: nearest\n    precision: int8\n", 3, "fp32"),
            ("structured:\n  - family: mlp\n", 2, "nearest, fields or slm"),
            ("structured:\n  - family: slm\n    buckets_log2: 14\n", 3, "remove buckets_log2"),
            ("structured:\n  - family: slm\n    precision: int8\n", 3, "fp32 or fp16"),
            ("structured:\n  - family: fields\n    rank: 8\n", 3, "slm setting"),
            ("structured:\n  - family: fields\n    buckets_log2: 40\n", 3, "whole number in [8, 24]"),
            ("text:\n  - family: fields\n", 2, "list them under structured:"),
        ]
        for (yaml, line, fragment) in cases {
            #expect {
                try CandidateCatalog(try YAMLValue.parse(yaml, file: "c.yaml"))
            } throws: { error in
                guard let error = error as? DataError else { return false }
                return error.line == line && error.description.contains(fragment)
            }
        }
    }

    @Test("an slm candidate whose base model is missing is skipped with the reason; the others still run")
    func slmWithoutModel() throws {
        let task = try StructuredTaskData.load(folder: try SyntheticStructured.writeTask())
        let catalog = Self.nearestCatalog + "\n  - family: slm\n    model: /nowhere/model.gguf\n"
        let outcome = try StructuredSearch.run(task: task, settings: try Self.settings(catalog: catalog)).outcome
        let slm = try #require(outcome.trials.first { $0.family == .slm })
        #expect(slm.id == "slm-r8-d2-fp16" && slm.status == .skipped)
        #expect(
            slm.reason?.contains("/nowhere/model.gguf is missing; run `make models`") == true, "\(slm.reason ?? "")")
        #expect(outcome.trials.filter { $0.status == .complete }.count == 2)
    }
}

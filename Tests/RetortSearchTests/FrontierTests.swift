import Foundation
import RetortData
import RetortEvals
import RetortNumerics
import RetortSearch
import RetortStudents
import RetortTestSupport
import Testing

@Suite struct FrontierTests {
    @Test(
        "no frontier member is dominated and every non-member is dominated by a member",
        arguments: [1, 2, 3, 4, 5] as [UInt64])
    func frontierProperties(seed: UInt64) {
        var generator = SeededGenerator(seed: seed)
        let points = (0..<60).map { index in
            FrontierPoint(
                id: "p\(index)", quality: Double(generator.next() % 20) / 20, latencyTier: Int(generator.next() % 6),
                flops: Double(generator.next() % 5), size: Double(generator.next() % 10))
        }
        let frontier = paretoFrontier(of: points)
        #expect(!frontier.isEmpty)
        for member in frontier { #expect(!points.contains { $0.dominates(member) }) }
        let ids = Set(frontier.map(\.id))
        for point in points where !ids.contains(point.id) { #expect(frontier.contains { $0.dominates(point) }) }
    }

    @Test("the teacher stays on the frontier when nothing matches its quality")
    func teacherOnFrontier() {
        let teacher = FrontierPoint(id: "teacher", quality: 0.95, latencyTier: 9, flops: .infinity, size: .infinity)
        let students = [
            FrontierPoint(id: "a", quality: 0.90, latencyTier: 0, flops: 10, size: 100),
            FrontierPoint(id: "b", quality: 0.93, latencyTier: 1, flops: 20, size: 200),
            FrontierPoint(id: "c", quality: 0.92, latencyTier: 1, flops: 30, size: 300),
        ]
        let frontier = paretoFrontier(of: students + [teacher]).map(\.id)
        #expect(frontier.contains("teacher"))
        #expect(frontier.contains("a") && frontier.contains("b"))
        #expect(!frontier.contains("c"))
    }

    @Test("within a speed class FLOPs decide; the class comes first")
    func speedClasses() {
        let fastButHeavy = FrontierPoint(id: "x", quality: 0.9, latencyTier: 0, flops: 100, size: 10)
        let slowerButLight = FrontierPoint(id: "y", quality: 0.9, latencyTier: 0, flops: 50, size: 10)
        #expect(slowerButLight.dominates(fastButHeavy))
        #expect(!fastButHeavy.dominates(slowerButLight))
        let teacher = FrontierPoint(id: "t", quality: 0.9, latencyTier: 1, flops: .infinity, size: .infinity)
        #expect(fastButHeavy.dominates(teacher))
        let slowStudent = FrontierPoint(id: "s", quality: 0.9, latencyTier: 2, flops: 1, size: 1)
        #expect(!slowStudent.dominates(teacher))
    }
}

func trial(
    _ id: String, accuracy: Double, latency: Double, size: Int, flops: Int = 100, status: TrialStatus = .complete
)
    -> TrialResult
{
    TrialResult(
        id: id, family: .mlp, config: [:], precision: .fp32, params: size / 4, sizeBytes: size, flopsPerExample: flops,
        latencyMsP50: latency, latencyMsP95: latency * 1.5,
        metrics: ["accuracy": MetricEstimate(value: accuracy, ci95: accuracy...accuracy)],
        fidelity: status == .complete ? 1 : 0, status: status, onFrontier: false)
}

@Suite struct RecommenderTests {
    @Test("recommends the cheapest student that meets the bar; near-equal latencies fall to FLOPs then size")
    func cheapestQualifying() {
        let trials = [
            trial("big", accuracy: 0.95, latency: 0.050, size: 4_000_000, flops: 9000),
            trial("mid", accuracy: 0.942, latency: 0.0105, size: 900_000, flops: 3000),
            trial("small", accuracy: 0.941, latency: 0.0100, size: 200_000, flops: 2900),
            trial("tiny", accuracy: 0.90, latency: 0.009, size: 50_000, flops: 1000),
        ]
        let recommendation = Recommender.recommend(
            trials: trials, metric: "accuracy", teacherValue: 0.945, constraints: Constraints(maxDrop: 0.01))
        #expect(recommendation.candidate == "small")
        #expect(recommendation.reason.contains("small"))
    }

    @Test("no distillation when the best student drops too far, naming it and the gap")
    func tooWeak() {
        let trials = [
            trial("mlp-256", accuracy: 0.912, latency: 0.02, size: 100),
            trial("lin", accuracy: 0.85, latency: 0.01, size: 50),
        ]
        let recommendation = Recommender.recommend(
            trials: trials, metric: "accuracy", teacherValue: 0.945, constraints: Constraints(maxDrop: 0.01))
        #expect(recommendation == .noDistillation(reason: recommendation.reason))
        #expect(
            recommendation.reason.contains("mlp-256") && recommendation.reason.contains("3.3 pt")
                && recommendation.reason.contains("1.0 pt"))
    }

    @Test("size and latency limits are hard")
    func hardLimits() {
        let trials = [
            trial("a", accuracy: 0.95, latency: 0.02, size: 60_000),
            trial("b", accuracy: 0.95, latency: 0.5, size: 10_000),
        ]
        let bySize = Recommender.recommend(
            trials: trials, metric: "accuracy", teacherValue: 0.95,
            constraints: Constraints(maxModelBytes: 50_000, maxDrop: 0.01))
        #expect(bySize.candidate == "b")
        let both = Recommender.recommend(
            trials: trials, metric: "accuracy", teacherValue: 0.95,
            constraints: Constraints(maxModelBytes: 50_000, maxLatencyMs: 0.1, maxDrop: 0.01))
        #expect(both.candidate == nil && both.reason.contains("p50"))
        let skipped = [trial("a", accuracy: 0, latency: 0, size: 60_000, status: .skipped)]
        let none = Recommender.recommend(
            trials: skipped, metric: "accuracy", teacherValue: 0.95, constraints: Constraints(maxModelBytes: 50_000))
        #expect(none.candidate == nil && none.reason.contains("50.0 KB"))
    }
}

@Suite struct CatalogTests {
    @Test("grids expand to every combination with unique ids")
    func gridExpansion() throws {
        let yaml = """
            numeric:
              - family: mlp
                hidden: [[32], [64, 32]]
                precision: [fp32, int8]
                lr: [0.001, 0.01]
              - family: linear
            """
        let catalog = try CandidateCatalog(try YAMLValue.parse(yaml, file: "c.yaml"))
        #expect(catalog.numeric.count == 2 * 2 * 2 + 1)
        #expect(Set(catalog.numeric.map(\.id)).count == catalog.numeric.count)
        #expect(catalog.numeric.contains { $0.id == "mlp-64-32-int8-lr0.01" })
        #expect(catalog.text.isEmpty)
    }

    @Test("new families expand with their own keys: embedding-bag dims, prototypes without training options")
    func familyEntries() throws {
        let yaml = """
            text:
              - family: embedding-bag
                dim: [16, 32]
                buckets_log2: [12]
                precision: [fp32, fp16, int8]
              - family: prototype
                buckets_log2: [12]
            numeric:
              - family: prototype
                precision: [fp32, fp16]
            """
        let catalog = try CandidateCatalog(try YAMLValue.parse(yaml, file: "c.yaml"))
        #expect(catalog.text.map(\.id).contains("embedding-bag-d32-b12-fp16"))
        #expect(catalog.text.filter { $0.family == .embeddingBag }.count == 6)
        #expect(catalog.text.contains { $0.id == "prototype-b12-fp32" })
        #expect(catalog.numeric.map(\.id) == ["prototype-fp32", "prototype-fp16"])
        let trees = try CandidateCatalog(
            try YAMLValue.parse("numeric:\n  - {family: gbdt, depth: [3, 5], rounds: [40]}\n", file: "c.yaml"))
        #expect(trees.numeric.map(\.id) == ["gbdt-d3-r40-fp32", "gbdt-d5-r40-fp32"])
        #expect(trees.numeric.allSatisfy { $0.training.epochs == 40 && $0.hidden.count == 2 })
        #expect(catalog.text.first { $0.family == .embeddingBag }?.hidden == [16])
        let words = try CandidateCatalog(
            try YAMLValue.parse(
                "text:\n  - {family: linear, buckets_log2: [12], char_ngrams: [true, false]}\n", file: "c.yaml"))
        #expect(words.text.map(\.id) == ["linear-b12-fp32", "linear-b12w-fp32"])
        #expect(words.text.map(\.featureKey.charNgrams) == [true, false])
        let sgd = try CandidateCatalog(
            try YAMLValue.parse(
                "text:\n  - {family: embedding-bag, dim: [8], optimizer: [adam, sgd], batch_size: 1}\n", file: "c.yaml")
        )
        #expect(sgd.text.map(\.training.optimizer) == [.adam, .sgd])
        #expect(
            sgd.text.map(\.id) == ["embedding-bag-d8-b16-fp32-lr0.01-bs1", "embedding-bag-d8-b16-fp32-lr0.01-bs1-sgd"])
        #expect(sgd.text[1].config["optimizer"] == .string("sgd") && sgd.text[0].config["optimizer"] == nil)
    }

    @Test("bad catalog entries name the key and line")
    func badEntries() {
        for (yaml, line, fragment) in [
            ("numeric:\n  - family: forest\n", 2, "forest"),
            ("numeric:\n  - family: mlp\n", 2, "hidden"),
            ("numeric:\n  - family: linear\n    precison: fp32\n", 3, "precison"),
            ("text:\n  - family: linear\n    buckets_log2: [40]\n", 3, "[8, 22]"),
            ("text:\n  - family: embedding-bag\n    buckets_log2: [12]\n", 2, "dim"),
            ("numeric:\n  - family: embedding-bag\n    dim: [8]\n", 2, "text"),
            ("numeric:\n  - family: prototype\n    lr: 0.1\n", 3, "closed form"),
            ("numeric:\n  - family: linear\n    early_stopping: never\n", 3, "teacher, objective, agreement or none"),
            ("numeric:\n  - family: linear\n    lr_schedule: cosine\n", 3, "constant or linear"),
            ("numeric:\n  - family: gbdt\n    lr_schedule: linear\n", 3, "shrinkage is constant"),
            ("text:\n  - family: mlp\n    hidden: [8]\n    optimizer: sgd\n", 4, "embedding-bag"),
            ("numeric:\n  - family: linear\n    normalization: mean\n", 3, "text tasks only"),
            ("text:\n  - family: linear\n    normalization: max\n", 3, "l2 or mean"),
            ("text:\n  - family: embedding-bag\n    dim: [8]\n    optimizer: rmsprop\n", 4, "adam or sgd"),
            ("text:\n  - family: gbdt\n    buckets_log2: [12]\n", 2, "numeric"),
            ("numeric:\n  - family: gbdt\n    precision: [fp32, int8]\n", 3, "fp16"),
        ] {
            #expect {
                try CandidateCatalog(try YAMLValue.parse(yaml, file: "c.yaml"))
            } throws: { error in
                guard let error = error as? DataError else { return false }
                return error.line == line && error.description.contains(fragment)
            }
        }
    }

    @Test(
        "the built-in catalog is candidates/default.yaml and has at least 12 candidates per kind across both families")
    func defaultCatalog() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let file = try CandidateCatalog(try YAMLValue.load(root.appendingPathComponent("candidates/default.yaml")))
        let builtIn = CandidateCatalog.standard()
        #expect(file.text.map(\.id) == builtIn.text.map(\.id))
        #expect(file.numeric.map(\.id) == builtIn.numeric.map(\.id))
        let text = try CandidateCatalog(try YAMLValue.load(root.appendingPathComponent("candidates/text.yaml")))
        let numeric = try CandidateCatalog(try YAMLValue.load(root.appendingPathComponent("candidates/numeric.yaml")))
        #expect(text.text.map(\.id) == builtIn.text.map(\.id) && text.numeric.isEmpty)
        #expect(numeric.numeric.map(\.id) == builtIn.numeric.map(\.id) && numeric.text.isEmpty)
        let structured = try CandidateCatalog(
            try YAMLValue.load(root.appendingPathComponent("candidates/structured.yaml")))
        #expect(file.structured.map(\.id) == builtIn.structured.map(\.id))
        #expect(structured.structured.map(\.id) == builtIn.structured.map(\.id) && structured.text.isEmpty)
        #expect(Set(builtIn.structured.map(\.family)) == [.nearest, .fields, .slm])
        #expect(builtIn.candidates(for: .structured).isEmpty)
        for kind in [TaskKind.text, .numeric] {
            let candidates = builtIn.candidates(for: kind)
            #expect(candidates.count >= 12)
            #expect(Set(candidates.map(\.family)).isSuperset(of: [.linear, .mlp, .prototype]))
            #expect(Set(candidates.map(\.precision)) == Set(Precision.allCases))
        }
    }
}

import Foundation
import RetortData
import RetortEvals
import RetortNumerics
import RetortSearch
import RetortTestSupport
import Testing

/// Cascade curves against a naive computation: loops over the rows, no BLAS, no resampling.
@Suite struct CascadeTests {
    @Test("coverage, agreement on the covered rows, the cascade's accuracy and blended cost equal a naive computation")
    func curveMatchesNaive() throws {
        let folder = try SyntheticTasks.writeTask(
            name: "words", kind: .text, train: SyntheticTasks.textRows(count: 40, seed: 1, idPrefix: "tr"),
            validation: SyntheticTasks.textRows(count: 300, seed: 2, idPrefix: "va"),
            test: SyntheticTasks.textRows(count: 40, seed: 3, idPrefix: "te"))
        let task = try TaskData.load(Job(task: folder))
        let split = task.validation
        let classes = task.vocabulary.count
        // A student that mostly agrees with the teacher, surer where it does.
        var generator = SeededGenerator(seed: 17)
        var probabilities = Matrix(rows: split.count, columns: classes)
        for row in 0..<split.count {
            let agrees = generator.next() % 5 != 0
            let label = agrees ? split.teacherLabels[row] : (split.teacherLabels[row] + 1) % classes
            let confidence = Float(agrees ? 0.55 : 0.3) + Float(generator.next() % 1000) / 2500
            for column in 0..<classes {
                probabilities[row, column] = column == label ? confidence : (1 - confidence) / Float(classes - 1)
            }
        }
        let evaluator = Evaluator(
            split: split, vocabulary: LabelVocabulary((0..<classes).map { "c\($0)" }), resamples: 200, seed: 3)
        let thresholds = Cascade.thresholds(topProbabilities: Cascade.topProbabilities(probabilities))
        #expect(thresholds.count >= 10 && thresholds == thresholds.sorted(), "thresholds rise as coverage falls")
        let points = try Cascade.points(
            probabilities: probabilities, thresholds: thresholds, evaluator: evaluator, studentCostPer1M: 0.02,
            teacherCostPer1M: 500, studentLatencyMs: 0.01, teacherLatencyMs: 300)
        #expect(points.first?.coverage == 1)
        for (threshold, point) in zip(thresholds, points) {
            var covered = 0
            var agreeing = 0
            var correct = 0
            var withGold = 0
            for row in 0..<split.count {
                var best = 0
                for column in 1..<classes where probabilities[row, column] > probabilities[row, best] { best = column }
                let sure = Double(probabilities[row, best]) >= threshold
                if sure {
                    covered += 1
                    if best == split.teacherLabels[row] { agreeing += 1 }
                }
                if let gold = split.gold[row] {
                    withGold += 1
                    if (sure ? best : split.teacherLabels[row]) == gold { correct += 1 }
                }
            }
            let coverage = Double(covered) / Double(split.count)
            #expect(abs(point.coverage - coverage) < 1e-12)
            let agreement = try #require(point.agreement)
            #expect(abs(agreement.value - Double(agreeing) / Double(covered)) < 1e-9)
            #expect(agreement.ci95[0] <= agreement.value + 1e-6 && agreement.value - 1e-6 <= agreement.ci95[1])
            let accuracy = try #require(point.metrics["accuracy"])
            #expect(abs(accuracy.value - Double(correct) / Double(withGold)) < 1e-6)
            #expect(abs((point.blendedCostPer1MUSD ?? 0) - (0.02 + (1 - coverage) * 500)) < 1e-9)
            #expect(point.blendedLatencyMsP50 == (coverage > 0.5 ? 0.01 : 300.01))
        }
        // Surer rows agree more: agreement on the covered rows rises as coverage falls.
        #expect((points.last?.agreement?.value ?? 0) > (points.first?.agreement?.value ?? 1))
    }
}

/// The cascade recommendation: only when no student alone meets the bar, a cascade does, and it saves enough.
@Suite struct CascadeRecommendationTests {
    @Test("a headline names a cascade as one, so what-if and compare never print it as a plain student")
    func headlines() {
        #expect(
            Recommendation.headline(kind: "cascade", candidate: "mlp-8")
                == "cascade: `mlp-8` answers, the teacher the rest")
        #expect(Recommendation.headline(kind: "student", candidate: "mlp-8") == "distill into `mlp-8`")
        #expect(Recommendation.headline(kind: "no-distillation", candidate: nil) == "no distillation")
        #expect(
            Recommendation.headline(kind: "cascade", candidate: "mlp-8")
                != Recommendation.headline(kind: "student", candidate: "mlp-8"))
    }

    static func point(coverage: Double, accuracy: Double, cost: Double) -> CascadePoint {
        CascadePoint(
            threshold: 1 - coverage / 2, coverage: coverage, agreement: MetricEstimate(value: 0.99, ci95: 0.98...1),
            metrics: ["accuracy": MetricEstimate(value: accuracy, ci95: (accuracy - 0.01)...(accuracy + 0.01))],
            blendedCostPer1MUSD: cost, blendedLatencyMsP50: 0.01)
    }

    static let curves = [
        CascadeCurve(
            candidate: "small",
            validation: [
                point(coverage: 1, accuracy: 0.90, cost: 0.01), point(coverage: 0.8, accuracy: 0.935, cost: 100),
                point(coverage: 0.5, accuracy: 0.945, cost: 250),
            ], test: []),
        CascadeCurve(
            candidate: "big",
            validation: [
                point(coverage: 1, accuracy: 0.92, cost: 0.02), point(coverage: 0.7, accuracy: 0.94, cost: 150),
            ], test: []),
    ]

    @Test("no student alone qualifies: the cheapest cascade that meets the bar is recommended, with its savings")
    func cheapestQualifyingCascade() {
        let keep = Recommendation.noDistillation(reason: "best student big reaches accuracy 0.92")
        let chosen = Cascade.reconsider(
            keep, curves: Self.curves, metric: "accuracy", teacherValue: 0.95, teacherCostPer1M: 500, maxDrop: 0.02)
        #expect(chosen.kind == "cascade" && chosen.candidate == "small")
        #expect(chosen.cascadePoint?.coverage == 0.8, "0.935 ≥ 0.93 at $100 beats big's $150")
        #expect(chosen.reason.contains("80%") && chosen.reason.contains("80% less"), "\(chosen.reason)")
    }

    @Test("blended costs within 1% of the teacher's are a tie: wider coverage, then the smaller student decides")
    func costTies() {
        let keep = Recommendation.noDistillation(reason: "no student alone")
        // The students' own serving costs differ (measured latency), by far less than 1% of the teacher's $2000.
        let twins = [
            CascadeCurve(
                candidate: "mlp-fp32", validation: [Self.point(coverage: 0.9, accuracy: 0.95, cost: 200.0004)], test: []
            ),
            CascadeCurve(
                candidate: "mlp-int8", validation: [Self.point(coverage: 0.9, accuracy: 0.95, cost: 200.0009)], test: []
            ),
        ]
        func pick(_ curves: [CascadeCurve], sizes: [String: Int]) -> String? {
            Cascade.reconsider(
                keep, curves: curves, metric: "accuracy", teacherValue: 0.955, teacherCostPer1M: 2000, maxDrop: 0.01,
                sizes: sizes
            ).candidate
        }
        let sizes = ["mlp-fp32": 88_000, "mlp-int8": 26_000]
        #expect(pick(twins, sizes: sizes) == "mlp-int8", "the smaller of two as cheap")
        #expect(pick(twins.reversed(), sizes: sizes) == "mlp-int8", "whatever the order")
        var wider = twins
        wider[0].validation[0].coverage = 0.905
        #expect(pick(wider, sizes: sizes) == "mlp-fp32", "wider coverage first")
        var cheaper = twins
        cheaper[0].validation[0].blendedCostPer1MUSD = 150
        #expect(pick(cheaper, sizes: sizes) == "mlp-fp32", "a cost lower by more than $20 per 1M wins")
    }

    @Test("a student that qualifies alone stays the answer; a cascade saving under 10% keeps the teacher, saying so")
    func studentsFirstAndTooLittleSaved() {
        let distill = Recommendation.distill(candidate: "big", reason: "qualifies")
        #expect(
            Cascade.reconsider(
                distill, curves: Self.curves, metric: "accuracy", teacherValue: 0.95, teacherCostPer1M: 500,
                maxDrop: 0.02) == distill)
        let keep = Recommendation.noDistillation(reason: "best student big reaches accuracy 0.92")
        let strict = Cascade.reconsider(
            keep, curves: Self.curves, metric: "accuracy", teacherValue: 0.95, teacherCostPer1M: 270, maxDrop: 0.005)
        #expect(strict.kind == "no-distillation")
        #expect(strict.reason.contains("would save only 7.4%"), "\(strict.reason)")
        let none = Cascade.reconsider(
            keep, curves: Self.curves, metric: "accuracy", teacherValue: 0.99, teacherCostPer1M: 500, maxDrop: 0.01)
        #expect(none == keep, "no cascade meets the bar: the reason is unchanged")
    }

    @Test("with confidence: a cascade point that scrapes the bar on a noisy estimate gives way to a surer one")
    func cascadeConfidence() {
        var curves = Self.curves
        // small at 80% coverage: 0.935 vs a bar of 0.93, but noisy (its replicates spread ±0.02); big at 70%: 0.94,
        // tight (±0.002). The replicates are paired differences to the teacher (0.95).
        func replicates(around value: Double, spread: Double) -> [Float] {
            (0..<200).map { Float(value - 0.95 + spread * (Double($0 % 21) - 10) / 10) }
        }
        curves[0].validation[1].differenceReplicates["accuracy"] = replicates(around: 0.935, spread: 0.02)
        curves[1].validation[1].differenceReplicates["accuracy"] = replicates(around: 0.94, spread: 0.002)
        let adjusted = Cascade.withConfidence(curves, metric: "accuracy", teacherValue: 0.95, maxDrop: 0.02)
        let noisy = adjusted[0].validation[1].pWithinMaxDrop ?? 1
        let tight = adjusted[1].validation[1].pWithinMaxDrop ?? 0
        #expect(noisy < 0.9 && tight >= 0.9, "noisy \(noisy), tight \(tight)")
        #expect(adjusted[0].validation[0].pWithinMaxDrop == nil, "no replicates, no probability")
        let keep = Recommendation.noDistillation(reason: "best student big reaches accuracy 0.92")
        let point = Cascade.reconsider(
            keep, curves: adjusted, metric: "accuracy", teacherValue: 0.95, teacherCostPer1M: 500, maxDrop: 0.02,
            confidenceLevel: 0)
        #expect(point.candidate == "small", "the point estimates alone take the cheaper, noisy cascade")
        let confident = Cascade.reconsider(
            keep, curves: adjusted, metric: "accuracy", teacherValue: 0.95, teacherCostPer1M: 500, maxDrop: 0.02)
        #expect(confident.candidate == "big", "\(confident.reason)")
        #expect(
            confident.reason.contains("confidence (adjusted for choosing among the cascades' validation points)"),
            "\(confident.reason)")
        #expect(Cascade.choiceIfDifferent(point, from: confident) == CascadeChoice(candidate: "small", threshold: 0.6))
        #expect(Cascade.choiceIfDifferent(confident, from: confident) == nil)
    }
}

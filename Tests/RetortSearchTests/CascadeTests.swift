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
        let evaluator = Evaluator(split: split, classes: classes, resamples: 200, seed: 3)
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

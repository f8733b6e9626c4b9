import Foundation
import RetortData
import RetortEvals
import RetortNumerics
import RetortTestSupport
import Testing

func split(teacher: [Int], gold: [Int?]) -> SplitData {
    SplitData(
        name: "validation", path: "v.jsonl", ids: teacher.indices.map { "r\($0)" },
        inputs: teacher.map { _ in .text("x") }, teacherProbabilities: Matrix(rows: teacher.count, columns: 3),
        teacherLabels: teacher, gold: gold)
}

/// Three labels, indices 0, 1, 2.
let threeLabels = LabelVocabulary(["a", "b", "c"])

@Suite struct MetricsTests {
    @Test("every bootstrap resample draws N examples")
    func resampleCounts() {
        let resampler = BootstrapResampler(examples: 50, resamples: 200, seed: 1)
        for b in 0..<200 {
            let total = (0..<50).reduce(Float(0)) { $0 + resampler.counts[b, $1] }
            #expect(total == 50)
        }
        #expect(
            BootstrapResampler(examples: 50, resamples: 10, seed: 1).counts
                == BootstrapResampler(examples: 50, resamples: 10, seed: 1).counts)
    }

    @Test("point metrics equal hand-computed accuracy, agreement and macro-F1")
    func pointValues() throws {
        let teacher = [0, 0, 1, 1, 2, 2, 0, 1]
        let gold: [Int?] = [0, 1, 1, 1, 2, 0, 0, nil]
        let predictions = [0, 0, 1, 2, 2, 2, 1, 1]
        let evaluator = Evaluator(
            split: split(teacher: teacher, gold: gold), vocabulary: threeLabels, resamples: 200, seed: 2)
        let evaluation = try evaluator.evaluate(predictions)
        // accuracy over the 7 rows with gold: hits at 0, 2, 4 → 3/7
        #expect(approximatelyEqual(try #require(evaluation.estimates[.accuracy]).value, 3.0 / 7.0, within: 1e-9))
        // agreement over all 8 rows: 0,1,2,4,5,7 → 6/8
        #expect(approximatelyEqual(try #require(evaluation.estimates[.agreement]).value, 6.0 / 8.0, within: 1e-9))
        // macro-F1 against gold (7 rows). class 0: tp 1 (row0), pred0 = rows 0,1 → 2, gold0 = rows 0,5,6 → 3 → 2/5
        // class 1: tp 1 (row2), pred1 = rows 2,6 → 2, gold1 = rows 1,2,3 → 3 → 2/5
        // class 2: tp 1 (row4), pred2 = rows 3,4,5 → 3, gold2 = row 4 → 1 → 2/4
        let expected = (0.4 + 0.4 + 0.5) / 3
        #expect(approximatelyEqual(try #require(evaluation.estimates[.macroF1]).value, expected, within: 1e-6))
        for estimate in evaluation.estimates.values {
            #expect(estimate.ci95[0] <= estimate.value + 1e-9 && estimate.value <= estimate.ci95[1] + 1e-9)
        }
    }

    @Test("without gold there is no accuracy and macro-F1 is against the teacher")
    func noGold() throws {
        let teacher = [0, 1, 2, 1]
        let evaluator = Evaluator(
            split: split(teacher: teacher, gold: [nil, nil, nil, nil]), vocabulary: threeLabels, resamples: 100, seed: 3
        )
        let evaluation = try evaluator.evaluate(teacher)
        #expect(evaluation.estimates[.accuracy] == nil)
        #expect(evaluation.estimates[.agreement]?.value == 1)
        #expect(evaluation.estimates[.macroF1]?.value == 1)
    }

    @Test("the 95% bootstrap interval covers the true accuracy at about the stated rate")
    func coverage() throws {
        var generator = SeededGenerator(seed: 4)
        let truth = 0.8
        let n = 300
        var covered = 0
        let trials = 150
        for trial in 0..<trials {
            let gold = (0..<n).map { _ in Int(generator.next() % 3) }
            let predictions = gold.map { label in generator.nextUnitFloat() < Float(truth) ? label : (label + 1) % 3 }
            let evaluator = Evaluator(
                split: split(teacher: gold, gold: gold.map { $0 }), vocabulary: threeLabels, resamples: 400,
                seed: UInt64(100 + trial))
            let interval = try #require(try evaluator.evaluate(predictions).estimates[.accuracy]).ci95
            if interval[0] <= truth && truth <= interval[1] { covered += 1 }
        }
        let rate = Double(covered) / Double(trials)
        #expect(rate >= 0.88 && rate <= 0.99, "coverage \(rate)")
    }

    @Test("paired differences: identical predictions give exactly zero; a better model a positive interval")
    func pairedDifference() throws {
        var generator = SeededGenerator(seed: 5)
        let gold = (0..<400).map { _ in Int(generator.next() % 3) }
        let evaluator = Evaluator(
            split: split(teacher: gold, gold: gold.map { $0 }), vocabulary: threeLabels, resamples: 500, seed: 6)
        let weak = gold.map { generator.nextUnitFloat() < 0.7 ? $0 : ($0 + 1) % 3 }
        let strong = gold.enumerated().map { index, label in
            weak[index] == label || generator.nextUnitFloat() < 0.5 ? label : weak[index]
        }
        let a = try evaluator.evaluate(weak)
        let same = try #require(a.difference(to: a, on: .accuracy, resampler: evaluator.resampler))
        #expect(same.value == 0 && same.ci95 == [0, 0])
        let b = try evaluator.evaluate(strong)
        let better = try #require(b.difference(to: a, on: .accuracy, resampler: evaluator.resampler))
        #expect(better.value > 0.05 && better.ci95[0] > 0)
    }

    @Test("an eval suite parses its metrics and rejects unknown ones with the line")
    func suiteParsing() throws {
        let suite = try EvalSuite(
            try YAMLValue.parse(
                "metrics: [agreement, macro_f1]\nprimary: agreement\nbootstrap: {resamples: 500}\n", file: "e.yaml"))
        #expect(suite.metrics == [.agreement, .macroF1])
        #expect(suite.primary == .agreement)
        #expect(suite.resamples == 500)
        #expect {
            try EvalSuite(try YAMLValue.parse("name: x\nmetrics: [accuracy, f2]\n", file: "e.yaml"))
        } throws: { error in
            guard let error = error as? DataError else { return false }
            return error.line == 2 && error.message.contains("f2") && error.file == "e.yaml"
        }
    }
}

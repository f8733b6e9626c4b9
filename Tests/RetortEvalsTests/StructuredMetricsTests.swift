import Foundation
import RetortData
import RetortEvals
import RetortNumerics
import RetortTestSupport
import Testing

/// The structured kind's metrics (FORMATS.md §9) against hand computation, through the evaluator's bootstrap.
@Suite struct StructuredMetricsTests {
    static let schema = StructuredSchema(
        properties: [
            "intent": .init(type: .string, allowed: [.string("A"), .string("B"), .string("C")]),
            "area": .init(type: .string), "n": .init(type: .integer),
        ],
        required: ["intent"])

    static func answer(_ fields: [String: StructuredValue?]) -> StructuredAnswer { StructuredAnswer(fields) }

    /// A structured task whose validation split holds `teacher` and `gold` (train and test are one row each).
    static func task(teacher: [StructuredAnswer?], gold: [StructuredAnswer?]) -> StructuredTaskData {
        let rows = (0..<teacher.count).map {
            StructuredRow(id: "v\($0)", input: "row \($0)", teacher: teacher[$0], gold: gold[$0], line: $0 + 1)
        }
        let one = [StructuredRow(id: "x", input: "x", teacher: answer(["intent": .string("A")]), line: 1)]
        return StructuredTaskData(
            name: "t", teacher: TeacherInfo(name: "llm"), schema: schema, schemaIsGiven: true,
            train: StructuredSplit(one, name: "train", path: "train.jsonl"),
            validation: StructuredSplit(rows, name: "validation", path: "validation.jsonl"),
            test: StructuredSplit(one, name: "test", path: "test.jsonl"))
    }

    @Test("point values match a hand computation on a four-row table")
    func handTable() throws {
        let teacher: [StructuredAnswer?] = [
            Self.answer(["intent": .string("A"), "area": .string("K")]),
            nil,
            Self.answer(["intent": .string("C"), "x": nil]),
            Self.answer(["intent": .string("A"), "area": .string("K")]),
        ]
        let gold: [StructuredAnswer?] = [
            Self.answer(["intent": .string("A"), "area": .string("K")]),
            Self.answer(["intent": .string("B"), "n": .number(40)]),
            Self.answer(["intent": .string("C")]),
            Self.answer(["intent": .string("A"), "area": .string("L")]),
        ]
        let predictions: [StructuredAnswer?] = [
            teacher[0],
            Self.answer(["intent": .string("B"), "n": .number(40.0)]),
            Self.answer(["intent": .string("D")]),
            nil,
        ]
        let task = Self.task(teacher: teacher, gold: gold)
        let evaluator = SplitEvaluator(task: task, split: task.validation, resamples: 200, seed: 8)
        #expect(evaluator.availableMetrics == [.exactMatch, .fieldF1, .valid, .agreement, .fieldF1VsTeacher])
        let student = try evaluator.evaluate(predictions)
        func value(_ evaluation: Evaluation, _ metric: Metric) throws -> Double {
            try #require(evaluation.estimates[metric]).value
        }
        // exact: rows 0 and 1 of 4. field F1: Σ2tp = 4 + 4 + 0 + 0 over Σ(|P| + |G|) = 4 + 4 + 2 + 2.
        #expect(try value(student, .exactMatch) == 0.5)
        #expect(approximatelyEqual(try value(student, .fieldF1), 8.0 / 12, within: 1e-12))
        // valid: rows 0 and 1 (D is not in the enum, row 3 is invalid).
        #expect(try value(student, .valid) == 0.5)
        // Against the teacher, row 1 (invalid teacher text) is left out: agreement 1 of 3; F1 (4 + 0 + 0) / (4 + 2 + 2).
        #expect(approximatelyEqual(try value(student, .agreement), 1.0 / 3, within: 1e-12))
        #expect(try value(student, .fieldF1VsTeacher) == 0.5)
        // The teacher itself: its invalid row 1 is a miss against gold; row 2's null key equals the missing one.
        let own = try evaluator.evaluate(evaluator.teacher)
        #expect(try value(own, .exactMatch) == 0.5)
        #expect(approximatelyEqual(try value(own, .fieldF1), 8.0 / 12, within: 1e-12))
        #expect(try value(own, .valid) == 0.75)
        #expect(try value(own, .agreement) == 1 && (try value(own, .fieldF1VsTeacher)) == 1)
    }

    @Test("on a seeded split the intervals bracket the points and identical predictions differ by exactly 0")
    func bootstrap() throws {
        var generator = SeededGenerator(seed: 8)
        let intents: [StructuredValue] = [.string("A"), .string("B"), .string("C")]
        let areas: [StructuredValue?] = [.string("K"), .string("L"), nil]
        var teacher: [StructuredAnswer?] = []
        var gold: [StructuredAnswer?] = []
        var weak: [StructuredAnswer?] = []
        var strong: [StructuredAnswer?] = []
        func noisy(_ truth: StructuredAnswer, keep: Float, generator: inout SeededGenerator) -> StructuredAnswer? {
            let draw = generator.nextUnitFloat()
            if draw < keep { return truth }
            if draw < keep + (1 - keep) / 2 { return nil }
            return Self.answer(["intent": intents[generator.index(below: 3)], "area": .string("Z")])
        }
        for row in 0..<300 {
            let truth = Self.answer([
                "intent": intents[generator.index(below: 3)], "area": areas[generator.index(below: 3)],
                "n": .number(Double(row % 7)),
            ])
            gold.append(row % 4 == 3 ? nil : truth)
            teacher.append(noisy(truth, keep: 0.9, generator: &generator))
            weak.append(noisy(truth, keep: 0.5, generator: &generator))
            strong.append(noisy(truth, keep: 0.85, generator: &generator))
        }
        let task = Self.task(teacher: teacher, gold: gold)
        let evaluator = SplitEvaluator(task: task, split: task.validation, resamples: 1000, seed: 8)
        let a = try evaluator.evaluate(weak)
        let b = try evaluator.evaluate(strong)
        for evaluation in [a, b] {
            #expect(Set(evaluation.estimates.keys) == Set(Structured.metrics(hasGold: true)))
            for (metric, estimate) in evaluation.estimates {
                #expect(estimate.ci95[0] <= estimate.value && estimate.value <= estimate.ci95[1], "\(metric)")
                #expect(estimate.ci95[0] < estimate.ci95[1], "\(metric): a noisy split has a non-degenerate interval")
            }
        }
        for metric in Structured.metrics(hasGold: true) {
            let same = try #require(a.difference(to: a, on: metric, resampler: evaluator.resampler))
            #expect(same.value == 0 && same.ci95 == [0, 0], "\(metric)")
            let better = try #require(b.difference(to: a, on: metric, resampler: evaluator.resampler))
            #expect(better.value > 0 && better.ci95[0] > 0, "\(metric): the stronger student wins on paired resamples")
        }
        let withGold = gold.indices.filter { gold[$0] != nil }
        let hits = withGold.filter { strong[$0] == gold[$0] }.count
        #expect(try #require(b.estimates[.exactMatch]).value == Double(hits) / Double(withGold.count))
    }

    @Test("without gold: valid, agreement and field_f1_vs_teacher, primary agreement; with gold, exact_match")
    func metricsWithoutGold() throws {
        let teacher: [StructuredAnswer?] = [Self.answer(["intent": .string("A")]), nil]
        let task = Self.task(teacher: teacher, gold: [nil, nil])
        let kind = task.answerKind
        let evaluator = SplitEvaluator(task: task, split: task.validation, resamples: 100, seed: 8)
        #expect(evaluator.availableMetrics == [.valid, .agreement, .fieldF1VsTeacher])
        let evaluation = try evaluator.evaluate(teacher)
        #expect(Set(evaluation.estimates.keys) == [.valid, .agreement, .fieldF1VsTeacher])
        #expect(kind.defaultMetric(hasGold: false) == .agreement && kind.defaultMetric(hasGold: true) == .exactMatch)
        #expect(kind.needsGold(.fieldF1) && !kind.needsGold(.valid) && !kind.knows(.accuracy))
        #expect(kind.families.isEmpty && kind.name == "structured")
        #expect(!kind.same(nil, nil) && kind.same(teacher[0], Self.answer(["intent": .string("A"), "b": nil])))
    }

    @Test("predictions print as \"output\": the object, or null for an invalid one")
    func printing() throws {
        let kind = Self.task(teacher: [nil], gold: [nil]).answerKind
        for answer in [Self.answer(["intent": .string("A"), "n": .number(40)]), nil] {
            let printed = kind.printed(answer)
            #expect(printed.key == "output")
            let data = try JSONSerialization.data(
                withJSONObject: ["id": "v0", printed.key: printed.value], options: [.sortedKeys])
            let line = String(decoding: data, as: UTF8.self)
            #expect(
                line == (answer == nil ? #"{"id":"v0","output":null}"# : #"{"id":"v0","output":{"intent":"A","n":40}}"#)
            )
        }
    }

    @Test("classification keeps its metrics: the standard suite, and the names an unknown metric lists first")
    func classificationUntouched() throws {
        #expect(EvalSuite.standard.metrics == [.accuracy, .agreement, .macroF1])
        let error = #expect(throws: DataError.self) {
            try EvalSuite(try YAMLValue.parse("metrics: [f2]\n", file: "e.yaml"))
        }
        let message = error?.message ?? ""
        #expect(message.contains(#"unknown metric "f2"; choose from accuracy, agreement, macro_f1 (structured"#))
        let structured = try EvalSuite(try YAMLValue.parse("metrics: [exact_match, field_f1]\n", file: "e.yaml"))
        #expect(structured.metrics == [.exactMatch, .fieldF1])
        #expect(
            Metric.allCases.map(\.rawValue).suffix(4) == ["exact_match", "field_f1", "valid", "field_f1_vs_teacher"])
    }
}

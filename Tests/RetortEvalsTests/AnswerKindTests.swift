import RetortData
import RetortEvals
import RetortNumerics
import RetortTestSupport
import Testing

/// A second task kind, written against the seam alone: answers are words that compare without regard to case, and a
/// split's answers come from its row ids ("teacher/gold" spelled in the id), so nothing of classification is used.
struct CaselessWords: AnswerKind {
    var name: String { "caseless-words" }
    func teacherAnswers(_ split: SplitData) -> [String] { split.ids.map { String($0.split(separator: "/")[0]) } }
    func goldAnswers(_ split: SplitData) -> [String?] {
        split.ids.map { id in
            let parts = id.split(separator: "/")
            return parts.count > 1 ? String(parts[1]) : nil
        }
    }
    func same(_ a: String, _ b: String) -> Bool { a.lowercased() == b.lowercased() }
    func metrics(hasGold: Bool) -> [Metric] { hasGold ? [.accuracy, .agreement] : [.agreement] }
    func defaultMetric(hasGold: Bool) -> Metric { hasGold ? .accuracy : .agreement }
    var families: Set<Family> { [.linear] }
    func printed(_ answer: String) -> (key: String, value: any Sendable) { ("word", answer) }
    func scores(_ predictions: [String], teacher: [String], gold: [String?]) -> [Metric: MetricScores] {
        let n = predictions.count
        var scores: [Metric: MetricScores] = [
            .agreement: .ratio(
                numerator: (0..<n).map { same(predictions[$0], teacher[$0]) ? 1 : 0 },
                denominator: [Float](repeating: 1, count: n))
        ]
        if gold.contains(where: { $0 != nil }) {
            scores[.accuracy] = .ratio(
                numerator: (0..<n).map { row in gold[row].map { same($0, predictions[row]) } == true ? 1 : 0 },
                denominator: gold.map { $0 == nil ? 0 : 1 })
        }
        return scores
    }
}

@Suite struct AnswerKindTests {
    func split(_ ids: [String]) -> SplitData {
        SplitData(
            name: "validation", path: "v.jsonl", ids: ids, inputs: ids.map { _ in .text("x") },
            teacherProbabilities: Matrix(rows: ids.count, columns: 1), teacherLabels: ids.map { _ in 0 },
            gold: ids.map { _ in nil })
    }

    @Test("another kind plugs into the evaluator: its own equality, its metrics, CIs and paired differences")
    func secondKind() throws {
        var generator = SeededGenerator(seed: 21)
        let words = ["on", "off", "up", "down"]
        var ids: [String] = []
        var weak: [String] = []
        var strong: [String] = []
        for row in 0..<300 {
            let teacher = words[generator.index(below: words.count)]
            ids.append(row % 3 == 0 ? teacher : "\(teacher)/\(teacher)")
            // Upper case is the same answer under this kind; a different word is not.
            let right = generator.nextUnitFloat() < 0.5 ? teacher.uppercased() : teacher
            weak.append(generator.nextUnitFloat() < 0.6 ? right : "sideways")
            strong.append(generator.nextUnitFloat() < 0.9 ? right : "sideways")
        }
        let evaluator = SplitEvaluator(kind: CaselessWords(), split: split(ids), resamples: 400, seed: 3)
        #expect(evaluator.availableMetrics == [.accuracy, .agreement])
        let a = try evaluator.evaluate(weak)
        let b = try evaluator.evaluate(strong)
        #expect(a.estimates[.macroF1] == nil, "the kind decides the metrics")
        let hits = zip(weak, evaluator.teacher).filter { $0.lowercased() == $1 }.count
        #expect(try #require(a.estimates[.agreement]).value == Double(hits) / 300)
        let withGold = ids.indices.filter { $0 % 3 != 0 }
        let goldHits = withGold.filter { weak[$0].lowercased() == evaluator.teacher[$0] }.count
        #expect(
            approximatelyEqual(
                try #require(a.estimates[.accuracy]).value, Double(goldHits) / Double(withGold.count), within: 1e-12))
        for estimate in Array(a.estimates.values) + Array(b.estimates.values) {
            #expect(estimate.ci95[0] <= estimate.value && estimate.value <= estimate.ci95[1])
        }
        let difference = try #require(b.difference(to: a, on: .agreement, resampler: evaluator.resampler))
        #expect(difference.value > 0.2 && difference.ci95[0] > 0, "a better student, a positive paired interval")
        #expect(CaselessWords().needsGold(.accuracy) && !CaselessWords().knows(.macroF1))
    }

    @Test("classification's row scores give the evaluator's figures, resampled through one W")
    func classificationScores() throws {
        let kind = Classification(LabelVocabulary(["a", "b", "c"]))
        let teacher = [0, 0, 1, 1, 2, 2, 0, 1]
        let gold: [Int?] = [0, 1, 1, 1, 2, 0, 0, nil]
        let predictions = [0, 0, 1, 2, 2, 2, 1, 1]
        let scores = kind.scores(predictions, teacher: teacher, gold: gold)
        #expect(Set(scores.keys) == [.accuracy, .agreement, .macroF1])
        guard case .ratio(let hits, let rows) = try #require(scores[.accuracy]) else {
            Issue.record("accuracy is a ratio of per-row sums")
            return
        }
        #expect(hits == [1, 0, 1, 0, 1, 0, 0, 0] && rows == [1, 1, 1, 1, 1, 1, 1, 0])
        #expect(kind.printed(2).key == "label" && kind.printed(2).value as? String == "c")
        #expect(
            kind.metrics(hasGold: false) == [.agreement, .macroF1] && kind.defaultMetric(hasGold: false) == .agreement)
    }
}

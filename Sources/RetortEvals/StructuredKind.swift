import RetortData

/// Structured answers (FORMATS.md §9): each row's answer is one flat JSON object; nil is an invalid output (a teacher
/// text or a student output that is not such an object).
///
/// Metrics, each a ratio of per-row vectors so the bootstrap's resample matrix gives its interval and every paired
/// difference:
/// - against gold (rows with gold only): `exact_match` (hit, 1), `field_f1` (2·tp, 2·tp + fp + fn) — micro-F1 over
///   key=value pairs, null values left out; an invalid output is a miss with no pairs.
/// - `valid` (every row): (output is valid under the task's schema, 1).
/// - against the teacher: `agreement` (exact match) and `field_f1_vs_teacher`, over the rows whose teacher answer is
///   valid. A row whose teacher answer is invalid has no target: it is left out of both (denominator 0), so the
///   teacher agrees with itself exactly (1.0), as a classification teacher does, and no student is credited or blamed
///   for a garbled teacher text. Against gold, the teacher's invalid answer is its miss like any invalid output.
///
/// The primary metric is `exact_match` with gold, else `agreement`. No student family answers structured tasks yet.
public struct Structured: AnswerKind {
    /// The task: its schema (what `valid` checks) and name.
    public let task: StructuredTaskData

    /// The kind of `task`.
    public init(_ task: StructuredTaskData) { self.task = task }

    /// The task's schema, against which `valid` judges outputs.
    public var schema: StructuredSchema { task.schema }

    /// "structured".
    public var name: String { "structured" }

    /// The teacher's answer per row (nil where its text is invalid).
    public func teacherAnswers(_ split: StructuredSplit) -> [StructuredAnswer?] { split.teacher }

    /// The gold object per row, nil where the row has none.
    public func goldAnswers(_ split: StructuredSplit) -> [StructuredAnswer??] {
        split.gold.map { $0.map { .some($0) } }
    }

    /// Equal objects; an invalid output is the same as nothing, not even another invalid output.
    public func same(_ a: StructuredAnswer?, _ b: StructuredAnswer?) -> Bool {
        guard let a, let b else { return false }
        return a == b
    }

    /// exact_match, field_f1, valid, agreement, field_f1_vs_teacher (the first two need gold).
    public func metrics(hasGold: Bool) -> [Metric] { Self.metrics(hasGold: hasGold) }

    /// The metrics of any structured task, in report order.
    public static func metrics(hasGold: Bool) -> [Metric] {
        (hasGold ? [.exactMatch, .fieldF1] : []) + [.valid, .agreement, .fieldF1VsTeacher]
    }

    /// `exact_match` with gold, else `agreement`.
    public func defaultMetric(hasGold: Bool) -> Metric { hasGold ? .exactMatch : .agreement }

    /// None yet: the `fields`, `slm` and `nearest` students will answer structured tasks.
    public var families: Set<Family> { [] }

    /// `"output": {...}` (the object; JSON null for an invalid output).
    public func printed(_ answer: StructuredAnswer?) -> (key: String, value: any Sendable) {
        ("output", answer.map { $0.jsonObject as any Sendable } ?? Optional<String>.none as any Sendable)
    }

    /// Each metric's per-row ratio vectors (see the type's documentation).
    public func scores(
        _ predictions: [StructuredAnswer?], teacher: [StructuredAnswer?], gold: [StructuredAnswer??]
    ) -> [Metric: MetricScores] {
        let n = predictions.count
        var scores: [Metric: MetricScores] = [:]
        let ones = [Float](repeating: 1, count: n)
        scores[.valid] = .ratio(
            numerator: predictions.map { Float($0.map(schema.isValid) == true ? 1 : 0) }, denominator: ones)
        let validTeacher = teacher.map { $0 == nil ? Float(0) : 1 }
        scores[.agreement] = .ratio(
            numerator: (0..<n).map { Float(same(predictions[$0], teacher[$0]) ? 1 : 0) }, denominator: validTeacher)
        scores[.fieldF1VsTeacher] = Self.fieldF1(predictions, against: teacher.map { $0.map { .some($0) } })
        if gold.contains(where: { $0 != nil }) {
            scores[.exactMatch] = .ratio(
                numerator: (0..<n).map { row in Float(gold[row].map { same($0, predictions[row]) } == true ? 1 : 0) },
                denominator: gold.map { $0 == nil ? Float(0) : 1 })
            scores[.fieldF1] = Self.fieldF1(predictions, against: gold)
        }
        return scores
    }

    /// Micro-F1 over key=value pairs as per-row (2·tp, 2·tp + fp + fn): `references[row]` nil means no reference
    /// (the row does not count), `.some(nil)` an invalid reference (neither), `.some(answer)` the pairs to match.
    /// An invalid prediction has no pairs: every reference pair is a false negative.
    static func fieldF1(
        _ predictions: [StructuredAnswer?], against references: [StructuredAnswer??]
    ) -> MetricScores {
        var numerator = [Float](repeating: 0, count: predictions.count)
        var denominator = [Float](repeating: 0, count: predictions.count)
        for (row, reference) in references.enumerated() {
            guard case .some(.some(let truth)) = reference else { continue }
            let expected = truth.pairs
            let predicted = predictions[row]?.pairs ?? []
            let truePositives = expected.intersection(predicted).count
            numerator[row] = Float(2 * truePositives)
            denominator[row] = Float(expected.count + predicted.count)
        }
        return .ratio(numerator: numerator, denominator: denominator)
    }
}

extension StructuredTaskData {
    /// The task's kind.
    public var answerKind: Structured { Structured(self) }
}

extension SplitEvaluator where Kind == Structured {
    /// An evaluator for `split` of the structured `task`, with `resamples` seeded resamples.
    public init(task: StructuredTaskData, split: StructuredSplit, resamples: Int = 1000, seed: UInt64) {
        self.init(kind: Structured(task), split: split, resamples: resamples, seed: seed)
    }
}

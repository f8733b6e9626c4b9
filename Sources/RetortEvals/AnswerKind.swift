import RetortData
import RetortNumerics

/// How one metric scores a split, row by row, so that the bootstrap resample matrix `W` (``BootstrapResampler``)
/// gives its interval and every paired difference: a metric is a few per-row vectors whose resampled sums combine
/// into the statistic. Nothing else about a task kind reaches the bootstrap.
public enum MetricScores: Sendable {
    /// `Σ numerator / Σ denominator` over the rows a resample draws: accuracy is (hit, has gold) per row, agreement
    /// (hit, 1), exact match likewise, a micro-averaged F1 (2·tp, 2·tp + fp + fn). Rows with denominator 0 do not
    /// count; a resample whose denominators sum to 0 has no value (NaN, left out of the interval).
    case ratio(numerator: [Float], denominator: [Float])
    /// The unweighted mean over classes of `2·tp / (predicted + actual)`, from `N × K` per-row indicator matrices
    /// (one resampled `W·M` product each); a class counts in a resample when it is predicted or actual there.
    case meanClassF1(truePositives: Matrix, predicted: Matrix, actual: Matrix)
}

/// A task kind: the one place that knows what a row's answer is, how two answers compare, which metrics exist and
/// how each scores a row, which student families can answer, and how an answer is printed.
///
/// The search, its strategies, the cascades and the reports ask the kind and do not branch on it. Single-label
/// classification (``Classification``) is the kind every task has today; structured JSON answers (FORMATS.md §9)
/// are the next conformer.
public protocol AnswerKind: Sendable {
    /// One row's answer.
    associatedtype Answer: Sendable
    /// The split type whose rows carry this kind's answers (``SplitData`` for classification).
    associatedtype Split

    /// The kind's name in reports and messages ("classification").
    var name: String { get }

    /// The teacher's answer on each row of `split`.
    func teacherAnswers(_ split: Split) -> [Answer]

    /// The gold answer on each row of `split`, nil where the row has none.
    func goldAnswers(_ split: Split) -> [Answer?]

    /// Whether two answers are the same answer (what agreement and accuracy count).
    func same(_ a: Answer, _ b: Answer) -> Bool

    /// The metrics a split supports, in report order: those that need gold only when `hasGold`.
    func metrics(hasGold: Bool) -> [Metric]

    /// The primary metric when neither the job nor the eval suite names one.
    func defaultMetric(hasGold: Bool) -> Metric

    /// Each metric of `metrics(hasGold:)` scored per row, for `predictions` against the teacher's answers and gold
    /// (`gold` has a non-nil entry when the split has gold). One entry of each array per row.
    func scores(_ predictions: [Answer], teacher: [Answer], gold: [Answer?]) -> [Metric: MetricScores]

    /// The student families that can answer tasks of this kind.
    var families: Set<Family> { get }

    /// The answer as `retort predict` writes it: the JSON key and value of the answer in one prediction line.
    func printed(_ answer: Answer) -> (key: String, value: any Sendable)
}

extension AnswerKind {
    /// Whether `metric` exists for this kind at all (with gold).
    public func knows(_ metric: Metric) -> Bool { metrics(hasGold: true).contains(metric) }

    /// Whether `metric` needs gold answers on the split.
    public func needsGold(_ metric: Metric) -> Bool { knows(metric) && !metrics(hasGold: false).contains(metric) }
}

/// Single-label classification: an answer is the index of a label in the task's vocabulary.
///
/// Metrics: `accuracy` (against gold, rows with gold only), `agreement` (against the teacher), `macro_f1` (against
/// gold, or the teacher when the split has no gold). Every family answers it.
public struct Classification: AnswerKind {
    /// The labels, by index.
    public let vocabulary: LabelVocabulary

    /// The kind over `vocabulary`.
    public init(_ vocabulary: LabelVocabulary) { self.vocabulary = vocabulary }

    /// Number of classes.
    public var classes: Int { vocabulary.count }

    /// "classification".
    public var name: String { "classification" }

    /// The teacher's label per row.
    public func teacherAnswers(_ split: SplitData) -> [Int] { split.teacherLabels }

    /// The gold label per row, nil where absent.
    public func goldAnswers(_ split: SplitData) -> [Int?] { split.gold }

    /// Equal labels.
    public func same(_ a: Int, _ b: Int) -> Bool { a == b }

    /// accuracy, agreement, macro_f1 (accuracy needs gold).
    public func metrics(hasGold: Bool) -> [Metric] {
        hasGold ? [.accuracy, .agreement, .macroF1] : [.agreement, .macroF1]
    }

    /// Accuracy with gold, else agreement.
    public func defaultMetric(hasGold: Bool) -> Metric { hasGold ? .accuracy : .agreement }

    /// Every family.
    public var families: Set<Family> { Set(Family.allCases) }

    /// `"label": "NAME"`.
    public func printed(_ answer: Int) -> (key: String, value: any Sendable) { ("label", vocabulary.labels[answer]) }

    /// Agreement and accuracy as ratios of per-row hits; macro-F1 from per-row one-hot matrices against gold (the
    /// teacher when the split has no gold).
    public func scores(_ predictions: [Int], teacher: [Int], gold: [Int?]) -> [Metric: MetricScores] {
        let n = predictions.count
        let hasGold = gold.contains { $0 != nil }
        var scores: [Metric: MetricScores] = [:]
        scores[.agreement] = .ratio(
            numerator: (0..<n).map { Float(same(predictions[$0], teacher[$0]) ? 1 : 0) },
            denominator: [Float](repeating: 1, count: n))
        if hasGold {
            scores[.accuracy] = .ratio(
                numerator: (0..<n).map { row in Float(gold[row].map { same($0, predictions[row]) } == true ? 1 : 0) },
                denominator: gold.map { $0 == nil ? Float(0) : 1 })
        }
        let reference: [Int?] = hasGold ? gold : teacher.map { $0 }
        var truePositives = Matrix(rows: n, columns: classes)
        var predicted = Matrix(rows: n, columns: classes)
        var actual = Matrix(rows: n, columns: classes)
        for i in 0..<n {
            guard let truth = reference[i] else { continue }
            predicted[i, predictions[i]] = 1
            actual[i, truth] = 1
            if truth == predictions[i] { truePositives[i, truth] = 1 }
        }
        scores[.macroF1] = .meanClassF1(truePositives: truePositives, predicted: predicted, actual: actual)
        return scores
    }
}

extension TaskData {
    /// The task's kind: every task is single-label classification until structured tasks arrive.
    public var answerKind: Classification { Classification(vocabulary) }
}

import Foundation
import RetortData
import RetortNumerics
import RetortStudents

/// What a structured task (FORMATS.md §9) looks like to the history beyond what every task has: the schema's shape,
/// how much of the answers the input already spells out, how the teacher behaves and how a cheap retrieval probe fares.
/// ``MetaFeatures`` carries it as `structured` (absent for label tasks, so their records are unchanged).
public struct StructuredMetaFeatures: Sendable, Codable, Equatable {
    /// Schema keys.
    public var keys: Int
    /// Share of the non-empty string values of train's valid teacher answers that occur verbatim (case-insensitively)
    /// in their input: how much of the answers a copy from the input gives.
    public var copiedValueShare: Double
    /// Share of the schema's keys with a closed value set (an `enum`, given or inferred).
    public var closedKeyShare: Double
    /// Mean size of the closed value sets (0 without any).
    public var meanValueSetSize: Double
    /// Largest closed value set (0 without any).
    public var maxValueSetSize: Int
    /// Share of the schema's keys present (non-null) in fewer than 95% of train's valid teacher answers.
    public var optionalKeyShare: Double
    /// Mean number of fields (non-null keys) of train's valid teacher answers.
    public var meanAnswerFields: Double
    /// Share of train rows whose teacher text is not a valid answer.
    public var teacherInvalidShare: Double
    /// The retrieval probe's micro field F1 against the teacher on the validation sample (see
    /// ``MetaFeatures/init(structured:seed:)``).
    public var probeFieldF1: Double

    /// The share of answers a key must be present in not to count as optional.
    public static let optionalBelow = 0.95

    enum CodingKeys: String, CodingKey {
        case keys
        case copiedValueShare = "copied_value_share"
        case closedKeyShare = "closed_key_share"
        case meanValueSetSize = "mean_value_set_size"
        case maxValueSetSize = "max_value_set_size"
        case optionalKeyShare = "optional_key_share"
        case meanAnswerFields = "mean_answer_fields"
        case teacherInvalidShare = "teacher_invalid_share"
        case probeFieldF1 = "probe_field_f1"
    }

    /// Structured meta-features from their values.
    public init(
        keys: Int, copiedValueShare: Double, closedKeyShare: Double, meanValueSetSize: Double, maxValueSetSize: Int,
        optionalKeyShare: Double, meanAnswerFields: Double, teacherInvalidShare: Double, probeFieldF1: Double
    ) {
        (self.keys, self.copiedValueShare, self.closedKeyShare) = (keys, copiedValueShare, closedKeyShare)
        (self.meanValueSetSize, self.maxValueSetSize) = (meanValueSetSize, maxValueSetSize)
        (self.optionalKeyShare, self.meanAnswerFields) = (optionalKeyShare, meanAnswerFields)
        (self.teacherInvalidShare, self.probeFieldF1) = (teacherInvalidShare, probeFieldF1)
    }

    /// The share of the non-empty string values of `answers` found verbatim, ignoring case, in their `inputs` (nil
    /// answers skipped); 0 when there is no such value. O(total characters).
    public static func copiedShare(inputs: [String], answers: [StructuredAnswer?]) -> Double {
        var (copied, total) = (0, 0)
        for (input, answer) in zip(inputs, answers) {
            guard let answer else { continue }
            let haystack = input.lowercased()
            for case .string(let value) in answer.fields.values where !value.isEmpty {
                total += 1
                if haystack.contains(value.lowercased()) { copied += 1 }
            }
        }
        return total == 0 ? 0 : Double(copied) / Double(total)
    }

    /// Micro field F1 of `predicted` against `reference` (key=value pairs, null values left out); 1 when neither side
    /// has a pair.
    public static func fieldF1(_ predicted: [StructuredAnswer], _ reference: [StructuredAnswer]) -> Double {
        var (matched, predictedPairs, referencePairs) = (0, 0, 0)
        for (answer, truth) in zip(predicted, reference) {
            let (a, b) = (answer.pairs, truth.pairs)
            matched += a.intersection(b).count
            predictedPairs += a.count
            referencePairs += b.count
        }
        let denominator = predictedPairs + referencePairs
        return denominator == 0 ? 1 : Double(2 * matched) / Double(denominator)
    }
}

extension MetaFeatures {
    /// Train rows the structured retrieval probe indexes (a seeded sample of the rows with a valid teacher answer).
    public static let structuredProbeSample = 2000
    /// Validation rows the structured retrieval probe answers (a seeded sample of those with a valid teacher answer).
    public static let structuredProbeValidation = 1000

    /// Computes the meta-features of the structured task `task` in seconds. The fields every kind shares read:
    /// `classes` the distinct valid teacher answers in train, `dimension` the distinct lower-cased whitespace tokens of
    /// the train inputs, `meanTextLength` their mean tokens per input, `classEntropy` the entropy (nats) of train's
    /// valid teacher answers, `teacherGoldAccuracy` the teacher's exact match against gold on validation (an invalid
    /// teacher answer is a miss), `probeCentroidAccuracy` the retrieval probe's exact match against the teacher and
    /// `learningCurveSlope` its gain per doubling (from a quarter of its sample to all of it). The probe is the
    /// `nearest` student (hashed word 1–2-grams and character 3–5-grams in 2^14 buckets, cosine) indexing at most
    /// ``structuredProbeSample`` train rows and answering at most ``structuredProbeValidation`` validation rows,
    /// sampled with `seed`. `teacherMeanMaxProbability`, `teacherMeanEntropy` and `probeLinearAccuracy` describe a
    /// teacher's label distribution and a linear probe: 0 here. The rest is in ``structured``.
    public init(structured task: StructuredTaskData, seed: UInt64 = 7) {
        let train = task.train
        let valid = train.teacher.compactMap { $0 }
        var vocabulary = Set<Substring>()
        var tokens = 0
        for text in train.texts {
            let words = text.lowercased().split(whereSeparator: \.isWhitespace)
            tokens += words.count
            vocabulary.formUnion(words)
        }
        var answerCounts: [StructuredAnswer: Int] = [:]
        for answer in valid { answerCounts[answer, default: 0] += 1 }
        let validCount = Double(max(valid.count, 1))
        let schema = task.schema
        let keyCount = schema.properties.count
        let closedSizes = schema.keys.compactMap { schema.properties[$0]?.allowed?.count }
        let optional = schema.keys.filter { key in
            Double(valid.filter { $0[key] != nil }.count) < StructuredMetaFeatures.optionalBelow * Double(valid.count)
        }
        let withGold = zip(task.validation.teacher, task.validation.gold).compactMap { teacher, gold in
            gold.map { (teacher, $0) }
        }
        let probe = Self.retrievalProbe(task, seed: seed)
        self.init(
            rows: train.count, classes: answerCounts.count, kind: TaskKind.structured.rawValue,
            dimension: vocabulary.count, meanTextLength: Double(tokens) / Double(max(train.count, 1)),
            classEntropy: Self.entropy(answerCounts.values.map { Double($0) / validCount }),
            teacherMeanMaxProbability: 0, teacherMeanEntropy: 0,
            teacherGoldAccuracy: withGold.isEmpty
                ? nil : Double(withGold.filter { $0.0 == $0.1 }.count) / Double(withGold.count),
            probeCentroidAccuracy: probe.exactMatch, probeLinearAccuracy: 0, learningCurveSlope: probe.slope,
            structured: StructuredMetaFeatures(
                keys: keyCount,
                copiedValueShare: StructuredMetaFeatures.copiedShare(inputs: train.texts, answers: train.teacher),
                closedKeyShare: keyCount == 0 ? 0 : Double(closedSizes.count) / Double(keyCount),
                meanValueSetSize: closedSizes.isEmpty
                    ? 0 : Double(closedSizes.reduce(0, +)) / Double(closedSizes.count),
                maxValueSetSize: closedSizes.max() ?? 0,
                optionalKeyShare: keyCount == 0 ? 0 : Double(optional.count) / Double(keyCount),
                meanAnswerFields: Double(valid.reduce(0) { $0 + $1.fields.count }) / validCount,
                teacherInvalidShare: Double(train.invalidTeacherRows) / Double(max(train.count, 1)),
                probeFieldF1: probe.fieldF1))
    }

    /// The retrieval probe: exact match and field F1 against the teacher on a validation sample of a nearest-answer
    /// index over a train sample, and the exact-match gain per doubling of the index (a quarter of it to all of it).
    /// All 0 when train or validation has no valid teacher answer.
    static func retrievalProbe(_ task: StructuredTaskData, seed: UInt64) -> (
        exactMatch: Double, fieldF1: Double, slope: Double
    ) {
        var generator = SeededGenerator(seed: seed)
        var trainRows = task.train.teacher.indices.filter { task.train.teacher[$0] != nil }
        trainRows.shuffle(using: &generator)
        trainRows = Array(trainRows.prefix(structuredProbeSample))
        var validationRows = task.validation.teacher.indices.filter { task.validation.teacher[$0] != nil }
        validationRows.shuffle(using: &generator)
        validationRows = Array(validationRows.prefix(structuredProbeValidation))
        let queries = validationRows.map { task.validation.texts[$0] }
        let reference = validationRows.compactMap { task.validation.teacher[$0] }
        guard !trainRows.isEmpty, !reference.isEmpty else { return (0, 0, 0) }
        let texts = task.train.texts
        func answers(_ rows: [Int]) -> [StructuredAnswer]? {
            let index = try? NearestAnswer(
                texts: rows.map { texts[$0] }, answers: rows.map { task.train.teacher[$0] },
                featurizer: HashedTextFeaturizer(bucketsLog2: 14))
            return index?.answers(for: queries)
        }
        func exactMatch(_ predicted: [StructuredAnswer]) -> Double {
            Double(zip(predicted, reference).filter { $0 == $1 }.count) / Double(reference.count)
        }
        guard let full = answers(trainRows),
            let quarter = answers(Array(trainRows.prefix(max(1, trainRows.count / 4))))
        else { return (0, 0, 0) }
        let match = exactMatch(full)
        return (match, StructuredMetaFeatures.fieldF1(full, reference), (match - exactMatch(quarter)) / 2)
    }

    /// The structured task's numeric vector (what the predictor and the similar-task distances read for kind
    /// `structured`): logs for counts, the teacher-vs-gold exact match as −1 when unknown.
    var structuredVector: [Double] {
        let s =
            structured
            ?? StructuredMetaFeatures(
                keys: 0, copiedValueShare: 0, closedKeyShare: 0, meanValueSetSize: 0, maxValueSetSize: 0,
                optionalKeyShare: 0, meanAnswerFields: 0, teacherInvalidShare: 0, probeFieldF1: 0)
        return [
            log(Double(max(rows, 1))), log(Double(max(s.keys, 1))), log(Double(max(classes, 1))),
            log(Double(max(dimension, 1))), meanTextLength, classEntropy, s.copiedValueShare, s.closedKeyShare,
            log(1 + s.meanValueSetSize), log(1 + Double(s.maxValueSetSize)), s.optionalKeyShare, s.meanAnswerFields,
            s.teacherInvalidShare, teacherGoldAccuracy ?? -1, probeCentroidAccuracy, s.probeFieldF1,
            learningCurveSlope,
        ]
    }
}

import Foundation
import RetortData
import RetortNumerics

/// The size and training settings of a ``FieldsStudent``.
public struct FieldsConfig: Sendable, Codable, Equatable {
    /// log2 of the hashed n-gram buckets the closed-key classifiers read.
    public var bucketsLog2: Int
    /// log2 of the hashed window-feature buckets the span tagger reads.
    public var tokenBucketsLog2: Int
    /// Hidden width of every part: 0 = `linear`, else a one-hidden-layer ReLU `mlp`.
    public var hidden: Int
    /// Most epochs per part.
    public var epochs: Int
    /// Epochs without validation improvement before a part stops.
    public var patience: Int
    /// Adam's step size.
    public var learningRate: Float
    /// Examples (inputs for a classifier, tokens for the tagger) per minibatch.
    public var batchSize: Int
    /// Whether a key with an `enum` of strings whose values the teacher copies from the input (at least
    /// ``FieldsStudent/enumSpanShare`` of them) is a span snapped to the enum rather than a classifier.
    public var enumSpans: Bool

    /// A configuration; the defaults train ha-extract-en's 4,246 rows in seconds.
    public init(
        bucketsLog2: Int = 14, tokenBucketsLog2: Int = 15, hidden: Int = 0, epochs: Int = 30, patience: Int = 3,
        learningRate: Float = 0.01, batchSize: Int = 64, enumSpans: Bool = true
    ) {
        self.enumSpans = enumSpans
        self.bucketsLog2 = bucketsLog2
        self.tokenBucketsLog2 = tokenBucketsLog2
        self.hidden = hidden
        self.epochs = epochs
        self.patience = patience
        self.learningRate = learningRate
        self.batchSize = batchSize
    }

    /// The family every part uses.
    public var family: Family { hidden > 0 ? .mlp : .linear }
}

/// The `fields` student of structured tasks (DESIGN.md "Structured answers"): a composite built from the schema and
/// trained by distillation on the teacher's valid answers (an invalid teacher answer — nil — is never trained on).
///
/// Each key gets a ``Role``:
/// - ``Role/closed``: the property has an `enum`, is boolean, or its values are rarely found in the input. A
///   classifier over hashed word and character n-grams of the whole input picks one of the values the teacher gave
///   (plus "absent" when the key is optional).
/// - ``Role/span``: the teacher copies the value from the input (a token span, case-insensitively, for at least half
///   of the key's occurrences; numbers also in words). One shared per-token tagger (tags O, B-key, I-key) marks the
///   spans; each key takes its best contiguous B I* span, or none.
///
/// Every prediction is valid under the schema by construction: required keys are always given, values have the
/// property's type and lie in its `enum`, a number is parsed from digits or words (`twenty five`) and typed per the
/// schema, and a span whose number does not parse leaves an optional key out.
public struct FieldsStudent: Sendable {
    /// How a key's value is predicted.
    public enum Role: String, Sendable, Codable, CaseIterable {
        /// A classifier over the whole input chooses among the values seen (and absent).
        case closed
        /// The value is copied from a span of the input the tagger marks.
        case span
    }

    /// How a copied string is cased, chosen per key from the teacher's answers.
    enum Casing: String, Sendable, Codable, CaseIterable {
        case asWritten = "as-written", lower, title, upper

        func apply(_ text: String) -> String {
            switch self {
            case .asWritten: text
            case .lower: text.lowercased()
            case .upper: text.uppercased()
            case .title: text.capitalized
            }
        }
    }

    /// A closed key's classifier: the classes are `values`, then "absent" when `absent`; no model when there is
    /// a single class.
    struct ClosedPart: Sendable, Equatable {
        let key: String
        let values: [StructuredValue]
        let absent: Bool
        var model: StudentModel?
    }

    /// A span key: the tagger's tags `B = 1 + 2·index`, `I = 2 + 2·index`.
    struct SpanPart: Sendable, Equatable {
        let key: String
        let casing: Casing
    }

    /// Mean sparse nonzeros per input (classifier features) and per token (tagger), and mean tokens per input: what
    /// the FLOP count reads.
    struct Costs: Sendable, Equatable, Codable {
        var inputNonzeros: Double
        var tokenNonzeros: Double
        var tokensPerInput: Double
    }

    /// The schema every prediction is valid under.
    public let schema: StructuredSchema
    /// The role of each schema key.
    public let roles: [String: Role]
    /// The settings it was trained with.
    public let config: FieldsConfig
    let featurizer: HashedTextFeaturizer
    let tokenFeaturizer: TokenFeaturizer
    var closed: [ClosedPart]
    let spans: [SpanPart]
    var tagger: StudentModel?
    /// The value a required key takes when nothing else can be predicted for it (its most frequent teacher value).
    let fallback: [String: StructuredValue]
    let costs: Costs

    /// The stored precision of the parts' weights.
    public var precision: Precision {
        tagger?.precision ?? closed.lazy.compactMap(\.model?.precision).first ?? .fp32
    }

    /// Share of a key's teacher values found in the input at or above which the key is a span.
    public static let spanShare = 0.5
    /// The same share for a key with an `enum` of strings (with ``FieldsConfig/enumSpans``): its span is then read as
    /// the enum value it spells (case-insensitively), and left out when it spells none.
    public static let enumSpanShare = 0.9

    /// Trains the student on `texts` and the teacher's `answers` (nil = invalid, skipped), with early stopping on the
    /// validation texts and teacher answers when given.
    ///
    /// - Throws: ``StudentError`` when the arrays differ in length or no train answer is valid.
    public static func train(
        texts: [String], answers: [StructuredAnswer?], schema: StructuredSchema, validationTexts: [String] = [],
        validationAnswers: [StructuredAnswer?] = [], config: FieldsConfig = FieldsConfig(), seed: UInt64 = 1
    ) throws -> FieldsStudent {
        guard texts.count == answers.count, validationTexts.count == validationAnswers.count else {
            throw StudentError(
                "fields: \(texts.count) train inputs with \(answers.count) answers, \(validationTexts.count) "
                    + "validation inputs with \(validationAnswers.count); give one answer per input")
        }
        guard (1...24).contains(config.bucketsLog2), (1...24).contains(config.tokenBucketsLog2), config.hidden >= 0,
            config.epochs >= 1, config.batchSize >= 1, config.learningRate > 0
        else {
            throw StudentError(
                "fields: buckets_log2 and token_buckets_log2 must be in 1...24, hidden ≥ 0, epochs and batch size ≥ 1, "
                    + "learning rate > 0")
        }
        let rows = answers.indices.filter { answers[$0] != nil }
        guard !rows.isEmpty else {
            throw StudentError("fields: no train row has a valid teacher answer to learn from; check the answers")
        }
        var builder = FieldsBuilder(
            schema: schema, config: config, texts: rows.map { texts[$0] }, answers: rows.compactMap { answers[$0] },
            seed: seed)
        let validationRows = validationAnswers.indices.filter { validationAnswers[$0] != nil }
        builder.validationTexts = validationRows.map { validationTexts[$0] }
        builder.validationAnswers = validationRows.compactMap { validationAnswers[$0] }
        return try builder.build()
    }

    /// The answer for each of `texts` and its confidence: the product of the probabilities behind each key's choice
    /// (a classifier's top probability; for a span key, the tagger's probability of the chosen tags), in (0, 1].
    public func predict(_ texts: [String]) throws -> [(answer: StructuredAnswer, confidence: Double)] {
        var fields = [[String: StructuredValue]](repeating: [:], count: texts.count)
        var confidences = [Double](repeating: 1, count: texts.count)
        let parts = closed.filter { $0.model != nil }
        let features: FeatureMatrix? = parts.isEmpty ? nil : .sparse(featurizer.features(for: texts))
        for part in closed {
            guard let model = part.model, let features else {
                if let value = part.values.first, !part.absent {
                    for row in texts.indices { fields[row][part.key] = value }
                }
                continue
            }
            let probabilities = try model.probabilities(features)
            for row in texts.indices {
                var best = 0
                for column in 1..<probabilities.columns where probabilities[row, column] > probabilities[row, best] {
                    best = column
                }
                confidences[row] *= Double(probabilities[row, best])
                if best < part.values.count { fields[row][part.key] = part.values[best] }
            }
        }
        if let tagger, !spans.isEmpty {
            let tokenized = texts.map(FieldText.tokens)
            let probabilities = try tagger.probabilities(.sparse(tokenFeaturizer.features(for: tokenized)))
            var offset = 0
            for row in texts.indices {
                let tokens = tokenized[row]
                for (index, part) in spans.enumerated() {
                    let decoded = SpanDecoder.decode(
                        probabilities: probabilities, firstRow: offset, count: tokens.count, tag: index,
                        required: schema.required.contains(part.key))
                    var value: StructuredValue?
                    if let span = decoded.span {
                        value = self.value(of: part, span: span, tokens: tokens, text: texts[row])
                    }
                    if let value {
                        fields[row][part.key] = value
                        confidences[row] *= decoded.probability
                    } else {
                        confidences[row] *= decoded.absentProbability
                    }
                }
                offset += tokens.count
            }
        }
        return texts.indices.map { row in
            var answer = fields[row]
            for (key, value) in answer where !(schema.properties[key]?.admits(value) ?? false) {
                answer[key] = nil
            }
            for key in schema.required where answer[key] == nil { answer[key] = fallback[key] }
            return (StructuredAnswer(answer), max(confidences[row], Double.leastNormalMagnitude))
        }
    }

    /// The value a span key takes from `span`: its number (grown to the whole number phrase) for a numeric key, the
    /// copied text (cased as the teacher does) for a string key, a number when the text reads as one for an untyped
    /// key; nil when a numeric span holds no number.
    func value(of part: SpanPart, span: ClosedRange<Int>, tokens: [FieldToken], text: String) -> StructuredValue? {
        let type = schema.properties[part.key]?.type
        switch type {
        case .integer, .number:
            let phrase = FieldText.numberPhrase(around: span, in: tokens)
            guard let number = FieldText.number(in: tokens[phrase]) else { return nil }
            return .number(type == .integer ? number.rounded(.towardZero) : number)
        case .boolean:
            return nil
        case .string:
            let copied = String(
                text[tokens[span.lowerBound].range.lowerBound..<tokens[span.upperBound].range.upperBound])
            guard let allowed = schema.properties[part.key]?.allowed else { return .string(part.casing.apply(copied)) }
            let lowered = copied.lowercased()
            return allowed.first { if case .string(let value) = $0 { value.lowercased() == lowered } else { false } }
        case nil:
            let copied = String(
                text[tokens[span.lowerBound].range.lowerBound..<tokens[span.upperBound].range.upperBound])
            if let allowed = schema.properties[part.key]?.allowed {
                let lowered = copied.lowercased()
                return allowed.first {
                    if case .string(let value) = $0 { value.lowercased() == lowered } else { false }
                }
            }
            let phrase = FieldText.numberPhrase(around: span, in: tokens)
            if phrase == span, let number = FieldText.number(in: tokens[span]),
                tokens[span].allSatisfy({ $0.digitValue != nil || $0.isNumberWord || $0.lower == "-" })
            {
                return .number(number)
            }
            return .string(part.casing.apply(copied))
        }
    }

    /// The student with every part's weights converted to `precision`.
    public func quantized(to precision: Precision) -> FieldsStudent {
        var copy = self
        copy.closed = closed.map { part in
            var part = part
            part.model = part.model?.quantized(to: precision)
            return part
        }
        copy.tagger = tagger?.quantized(to: precision)
        return copy
    }

    /// The parts' architectures: each closed key's classifier (keys in order), then the tagger.
    var architectures: [Architecture] {
        let models = closed.compactMap(\.model) + (tagger.map { [$0] } ?? [])
        return models.compactMap { if case .dense(let network) = $0 { network.architecture } else { nil } }
    }

    /// Weights and biases over all parts.
    public var params: Int { architectures.reduce(0) { $0 + $1.parameterCount } }

    /// Bytes of tensor data in the export (``write(to:)``'s model.safetensors, header aside).
    public var sizeBytes: Int { tensors().values.reduce(0) { $0 + $1.bytes.count } }

    /// Multiply-add FLOPs per input: every classifier on the input's mean nonzeros, plus the tagger on each token
    /// (its mean nonzeros) times the mean tokens per input, as ``Architecture/flopsPerExample(meanNonzeros:)``
    /// counts.
    public var flopsPerExample: Int {
        var total = 0.0
        for part in closed {
            if case .dense(let network) = part.model {
                total += Double(network.architecture.flopsPerExample(meanNonzeros: costs.inputNonzeros))
            }
        }
        if case .dense(let network) = tagger {
            total +=
                Double(network.architecture.flopsPerExample(meanNonzeros: costs.tokenNonzeros)) * costs.tokensPerInput
        }
        return Int(total.rounded())
    }
}

/// Chooses a span key's tokens from the tagger's per-token probabilities.
enum SpanDecoder {
    /// The best contiguous B I* span for tag pair `tag` over `count` tokens from `firstRow`, by the log-odds of each
    /// token being in the key (`B` or `I`) against not (`1 − p(B) − p(I)`); none when no span beats "no span" (and
    /// the key is optional). The probabilities are those of the chosen tags for this key: `p(B)·Π p(I)` on the span
    /// times `Π (1 − p(B) − p(I))` elsewhere; `absentProbability` is that product over every token.
    static func decode(probabilities: Matrix, firstRow: Int, count: Int, tag: Int, required: Bool) -> (
        span: ClosedRange<Int>?, probability: Double, absentProbability: Double
    ) {
        let b = 1 + 2 * tag
        let i = 2 + 2 * tag
        var outside = [Double](repeating: 1, count: count)
        var begin = [Double](repeating: 0, count: count)
        var inside = [Double](repeating: 0, count: count)
        var absent = 1.0
        for token in 0..<count {
            begin[token] = Double(probabilities[firstRow + token, b])
            inside[token] = Double(probabilities[firstRow + token, i])
            outside[token] = max(1 - begin[token] - inside[token], 1e-12)
            absent *= outside[token]
        }
        var best: (span: ClosedRange<Int>, score: Double)?
        for start in 0..<count {
            var score = log(max(begin[start], 1e-12)) - log(outside[start])
            var end = start
            while true {
                if best.map({ score > $0.score }) ?? true { best = (start...end, score) }
                end += 1
                guard end < count, end - start < 16 else { break }
                score += log(max(inside[end], 1e-12)) - log(outside[end])
            }
        }
        guard let best, best.score > 0 || required else { return (nil, absent, absent) }
        let probability = min(1, absent * exp(best.score))
        return (best.span, probability, absent)
    }
}

import Foundation
import RetortData
import RetortStudents

/// One point of the candidate space: a family, a size, a featurizer setting, a precision and training options.
public struct Candidate: Sendable, Equatable, Codable {
    /// The family.
    public var family: Family
    /// Hidden widths (`mlp` only).
    public var hidden: [Int]
    /// log2 of the hashed text buckets (text tasks only).
    public var bucketsLog2: Int?
    /// Whether text features include character 3–5-grams (word 1–2-grams always).
    public var charNgrams = true
    /// Whether text features are counts over their sum (`normalization: mean`, fastText's average) instead of L2.
    public var meanNormalized = false

    /// encoder-head: the pretrained encoder, its kept layers and tokens per input.
    public var encoder: EncoderChoice?
    /// Made up by the learned strategy between frontier neighbours, not listed in the catalog.
    public var invented = false

    /// The featurizer this candidate reads (candidates with equal keys share features).
    public var featureKey: FeatureKey {
        FeatureKey(bucketsLog2: bucketsLog2, charNgrams: charNgrams, meanNormalized: meanNormalized, encoder: encoder)
    }
    /// Stored precision.
    public var precision: Precision
    /// Training hyperparameters.
    public var training: TrainingOptions

    /// A candidate.
    public init(family: Family, hidden: [Int], bucketsLog2: Int?, precision: Precision, training: TrainingOptions) {
        self.family = family
        self.hidden = family.isSingleLayer ? [] : hidden
        self.bucketsLog2 = bucketsLog2
        self.precision = precision
        self.training = training
    }

    /// A readable, unique id: `mlp-256x1-fp32`, `mlp-256-128-b16-int8`, `linear-b14-fp32`, `embedding-bag-d32-b16-fp16`,
    /// `prototype-b14-fp32` (after the buckets, `w`: word n-grams only; `m`: mean-normalized counts).
    public var id: String {
        var parts = [family.rawValue]
        if family == .embeddingBag, let dim = hidden.first { parts.append("d\(dim)") }
        if family == .gbdt, hidden.count == 2 { parts.append("d\(hidden[0])-r\(hidden[1])") }
        if family == .encoderHead, let encoder {
            parts.append("L\(encoder.layers)-s\(encoder.maxLength)")
            parts.append(hidden.isEmpty ? "linear" : "h" + hidden.map(String.init).joined(separator: "-"))
            if encoder.path != CandidateCatalog.defaultEncoderPath {
                parts.append(URL(fileURLWithPath: encoder.path).lastPathComponent)
            }
        }
        if family == .mlp {
            if Set(hidden).count == 1 {
                parts.append("\(hidden[0])x\(hidden.count)")
            } else {
                parts.append(hidden.map(String.init).joined(separator: "-"))
            }
        }
        if let bucketsLog2 { parts.append("b\(bucketsLog2)" + (charNgrams ? "" : "w") + (meanNormalized ? "m" : "")) }
        parts.append(precision.rawValue)
        return parts.joined(separator: "-") + (trainingSuffix.isEmpty ? "" : "-\(trainingSuffix)")
    }

    /// Distinguishes catalog entries that differ only in training options (set by the catalog when needed).
    public var trainingSuffix = ""

    /// Candidates with the same key share one training run (they differ only in precision).
    public var trainingKey: String {
        var copy = self
        copy.precision = .fp32
        return copy.id
    }

    /// The architecture for a task with `inputDimension` numeric features (ignored for text) and `classes` outputs.
    public func architecture(kind: TaskKind, inputDimension: Int, classes: Int) -> Architecture {
        if family == .encoderHead {
            return Architecture(
                family: family, hidden: hidden, inputDimension: inputDimension, outputDimension: classes,
                sparseInput: false)
        }
        let input = kind == .text ? 1 << (bucketsLog2 ?? 16) : inputDimension
        return Architecture(
            family: family, hidden: hidden, inputDimension: input, outputDimension: classes, sparseInput: kind == .text)
    }

    /// The configuration as reported (`config` in report.json).
    public var config: [String: ReportValue] {
        var config: [String: ReportValue] = [
            "epochs": .int(training.epochs), "batch_size": .int(training.batchSize),
            "lr": .double(Double(training.learningRate)), "temperature": .double(Double(training.loss.temperature)),
            "alpha": .double(Double(training.loss.alpha)), "early_stopping": .string(training.earlyStopping.rawValue),
        ]
        if training.learningRateSchedule != .constant {
            config["lr_schedule"] = .string(training.learningRateSchedule.rawValue)
        }
        if training.optimizer != .adam { config["optimizer"] = .string(training.optimizer.rawValue) }
        if family == .mlp { config["hidden"] = .ints(hidden) }
        if family == .embeddingBag, let dim = hidden.first { config["dim"] = .int(dim) }
        if family == .prototype { config = ["scoring": .string(bucketsLog2 == nil ? "euclidean" : "cosine")] }
        if family == .gbdt, hidden.count == 2 {
            config = [
                "depth": .int(hidden[0]), "rounds": .int(hidden[1]),
                "shrinkage": .double(Double(training.learningRate)),
                "patience_rounds": .int(training.patience),
            ]
        }
        if family == .encoderHead, let encoder {
            config["encoder"] = .string(encoder.path)
            config["layers"] = .int(encoder.layers)
            config["max_length"] = .int(encoder.maxLength)
            config["head"] = .ints(hidden)
        }
        if let bucketsLog2 {
            config["buckets_log2"] = .int(bucketsLog2)
            config["char_ngrams"] = .string(charNgrams ? "3-5" : "none")
            if meanNormalized { config["normalization"] = .string("mean") }
        }
        return config
    }
}

/// A small JSON value for candidate configs.
public enum ReportValue: Sendable, Equatable, Codable {
    /// A whole number.
    case int(Int)
    /// A number.
    case double(Double)
    /// A list of whole numbers.
    case ints([Int])
    /// Text.
    case string(String)

    /// Encodes as the plain JSON value.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .int(let value): try container.encode(value)
        case .double(let value): try container.encode(value)
        case .ints(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        }
    }

    /// Decodes a plain JSON value.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let value = try? container.decode(Int.self) {
            self = .int(value)
        } else if let value = try? container.decode(Double.self) {
            self = .double(value)
        } else if let value = try? container.decode([Int].self) {
            self = .ints(value)
        } else {
            self = .string(try container.decode(String.self))
        }
    }

    /// The value as a number: a whole number or a number as itself, nil for a list or text.
    public var number: Double? {
        switch self {
        case .int(let value): Double(value)
        case .double(let value): value
        case .ints, .string: nil
        }
    }
}

/// Which features a candidate reads: the hashed-bucket count and whether character n-grams are in (text), or the
/// standardized inputs (numeric, `bucketsLog2 == nil`).
public struct FeatureKey: Hashable, Sendable {
    /// log2 of the buckets (text).
    public var bucketsLog2: Int?
    /// Character 3–5-grams on or off (text).
    public var charNgrams: Bool
    /// Counts over their sum instead of their L2 norm (text).
    public var meanNormalized = false
    /// encoder-head: the encoder's pooled vectors instead of hashing.
    public var encoder: EncoderChoice?
}

/// An encoder-head's input side: a Hugging Face BERT folder, the layers kept, and tokens per input.
public struct EncoderChoice: Hashable, Sendable, Codable {
    /// The model folder (config.json, model.safetensors, vocab.txt).
    public var path: String
    /// The first k layers kept.
    public var layers: Int
    /// Tokens per input, [CLS] and [SEP] included.
    public var maxLength: Int
}

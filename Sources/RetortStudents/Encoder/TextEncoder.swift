import Foundation
import RetortData
import RetortNumerics

/// Raw text → sentence vector: WordPiece to at most `maxLength` tokens, then a (truncated, converted) BERT encoder,
/// mean pooled. The input side of an `encoder-head` student; it ships in the model folder's `encoder/`.
public struct TextEncoder: Sendable {
    /// The encoder as exported: its kept layers, at its precision.
    public var encoder: BertEncoder
    /// The tokenizer.
    public var tokenizer: WordPieceTokenizer
    /// Tokens per input, `[CLS]` and `[SEP]` included.
    public var maxLength: Int

    /// An encoder front end.
    public init(encoder: BertEncoder, tokenizer: WordPieceTokenizer, maxLength: Int) {
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.maxLength = maxLength
    }

    /// Token ids of each text input (numbers are not text: they tokenize as nothing).
    public func sequences(for inputs: [ExampleInput]) -> [[Int32]] {
        inputs.map { input in
            if case .text(let text) = input {
                tokenizer.encode(text, maxLength: maxLength)
            } else {
                tokenizer.encode("", maxLength: maxLength)
            }
        }
    }

    /// Pooled vectors (`inputs × H`) for raw inputs.
    public func features(for inputs: [ExampleInput]) throws(NumericsError) -> FeatureMatrix {
        let depth = encoder.layers.count
        guard let pooled = try encoder.embed(sequences(for: inputs), depths: [depth])[depth] else {
            throw NumericsError(.shapeMismatch, "the encoder returned no vectors")
        }
        return .dense(pooled)
    }

    /// Bytes that ship: the exported tensors plus vocab.txt.
    public var storedBytes: Int {
        // vocab.txt's size without building it: every token and one newline per line (ids 0…max, gaps empty).
        encoder.exportBytes(positions: maxLength, at: encoder.precision)
            + tokenizer.vocabulary.keys.reduce(0) { $0 + $1.utf8.count }
            + (tokenizer.vocabulary.values.max().map(Int.init) ?? -1) + 1
    }

    /// vocab.txt in id order.
    var vocabularyText: String {
        var tokens = [String](repeating: "", count: (tokenizer.vocabulary.values.max().map(Int.init) ?? -1) + 1)
        for (token, id) in tokenizer.vocabulary { tokens[Int(id)] = token }
        return tokens.joined(separator: "\n") + "\n"
    }

    /// Writes a Hugging Face-style folder: config.json, model.safetensors, vocab.txt, tokenizer_config.json and
    /// modules.json (with the Normalize step when the encoder normalizes).
    public func write(to folder: URL) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try Safetensors.encode(encoder.exportTensors(positions: maxLength), metadata: ["producer": "retort"])
            .write(to: folder.appendingPathComponent("model.safetensors"), options: .atomic)
        try encoder.configJSON(positions: maxLength).write(
            to: folder.appendingPathComponent("config.json"), options: .atomic)
        try Data(vocabularyText.utf8).write(to: folder.appendingPathComponent("vocab.txt"), options: .atomic)
        let tokenizerConfig: [String: Any] = [
            "do_lower_case": tokenizer.lowercase, "strip_accents": tokenizer.stripAccents,
            "model_max_length": maxLength, "tokenizer_class": "BertTokenizer",
        ]
        try JSONSerialization.data(withJSONObject: tokenizerConfig, options: [.sortedKeys]).write(
            to: folder.appendingPathComponent("tokenizer_config.json"), options: .atomic)
        var modules: [[String: Any]] = [
            ["idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"],
            ["idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"],
        ]
        if encoder.normalizes {
            modules.append([
                "idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize",
            ])
        }
        try JSONSerialization.data(withJSONObject: modules, options: [.sortedKeys]).write(
            to: folder.appendingPathComponent("modules.json"), options: .atomic)
    }

    /// Reads a folder written by ``write(to:)`` (or any Hugging Face BERT folder) with `maxLength` tokens per input.
    public static func load(from folder: URL, maxLength: Int) throws(StudentError) -> TextEncoder {
        TextEncoder(
            encoder: try BertEncoder(folder: folder), tokenizer: try WordPieceTokenizer(folder: folder),
            maxLength: maxLength)
    }
}

/// How a student turns raw inputs into features: a fitted featurizer, or a pretrained text encoder.
public enum InputFeaturizer: Sendable {
    /// Standardized numbers or hashed n-grams.
    case basic(Featurizer)
    /// A pretrained encoder's pooled sentence vectors.
    case encoder(TextEncoder)

    /// Features for raw inputs.
    public func features(for inputs: [ExampleInput]) throws(NumericsError) -> FeatureMatrix {
        switch self {
        case .basic(let featurizer): featurizer.features(for: inputs)
        case .encoder(let encoder): try encoder.features(for: inputs)
        }
    }

    /// Feature dimension.
    public var outputDimension: Int {
        switch self {
        case .basic(let featurizer): featurizer.outputDimension
        case .encoder(let encoder): encoder.encoder.config.hiddenSize
        }
    }

    /// Bytes of featurizer state that ship with the model: standardization statistics, or the encoder's files.
    public var stateBytes: Int {
        switch self {
        case .basic(let featurizer): featurizer.stateBytes
        case .encoder(let encoder): encoder.storedBytes
        }
    }

    /// Whether the model reads text.
    public var readsText: Bool {
        switch self {
        case .basic(.text), .encoder: true
        case .basic(.numeric): false
        }
    }
}

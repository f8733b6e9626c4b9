import RetortData
import RetortEvals
import RetortStudents

/// A candidate catalog (`candidates/*.yaml`): per task kind, a list of entries whose list-valued keys form a grid.
///
/// ```yaml
/// text:
///   - family: mlp
///     hidden: [[32], [64]]        # a list of hidden-width lists, or one list
///     buckets_log2: [14, 16]
///     precision: [fp32, int8]
///     lr: 0.003                   # or a list; also epochs, batch_size, temperature, alpha, patience
///   - family: embedding-bag
///     dim: [32]
///     optimizer: sgd              # fastText's plain SGD (embedding-bag only; adam is the default)
///     normalization: mean         # text counts over their sum (an average of n-gram rows) instead of l2
/// numeric:
///   - family: linear
///     precision: [fp32, int8]
/// structured:
///   - family: fields              # or nearest (an index: buckets_log2 only)
///     buckets_log2: [14, 16]
///     hidden: [0, 64]             # the parts' classifier width; 0 is linear
///     precision: [fp32, int8]
/// ```
public struct CandidateCatalog: Sendable {
    /// Entries for text tasks, expanded.
    public var text: [Candidate]
    /// Entries for numeric tasks, expanded.
    public var numeric: [Candidate]
    /// Entries for structured tasks (FORMATS.md §9), expanded.
    public var structured: [StructuredCandidate] = []

    /// The catalog with `path` as the encoder of every encoder-head candidate that names none.
    public func replacingDefaultEncoder(with path: String) -> CandidateCatalog {
        var copy = self
        copy.text = text.map { candidate in
            var candidate = candidate
            if candidate.encoder?.path == Self.defaultEncoderPath { candidate.encoder?.path = path }
            return candidate
        }
        return copy
    }

    /// The label candidates for inputs of `kind` (none for structured tasks: see ``structured``).
    public func candidates(for kind: TaskKind) -> [Candidate] {
        switch kind {
        case .text: text
        case .numeric: numeric
        case .structured: []
        }
    }

    /// The candidates for `task`: its inputs' section, kept to the families its answer kind admits.
    public func candidates(for task: TaskData) -> [Candidate] {
        let families = task.answerKind.families
        return candidates(for: task.kind).filter { families.contains($0.family) }
    }

    static let entryKeys: Set<String> = [
        "family", "hidden", "dim", "buckets_log2", "precision", "lr", "epochs", "batch_size", "temperature", "alpha",
        "patience", "early_stopping", "char_ngrams", "depth", "rounds", "encoder", "layers", "max_length",
        "lr_schedule", "optimizer", "normalization",
    ]

    /// Where `make models` puts the default encoder (relative to the working directory).
    public static let defaultEncoderPath = ".build-models/all-MiniLM-L6-v2"

    /// Parses and expands a catalog, validating every value.
    public init(_ value: YAMLValue) throws(DataError) {
        let sections = try value.mapping(allowed: ["text", "numeric", "structured"])
        text = try sections["text"].map { (section) throws(DataError) in try Self.expand(section, kind: .text) } ?? []
        numeric =
            try sections["numeric"].map { (section) throws(DataError) in try Self.expand(section, kind: .numeric) }
            ?? []
        structured =
            try sections["structured"].map { (section) throws(DataError) in try StructuredCandidate.expand(section) }
            ?? []
        guard !text.isEmpty || !numeric.isEmpty || !structured.isEmpty else {
            throw value.error("the catalog lists no candidates")
        }
    }

    /// The built-in default catalog (the same text as candidates/default.yaml).
    public static func standard() -> CandidateCatalog {
        do { return try CandidateCatalog(try YAMLValue.parse(defaultYAML, file: "candidates/default.yaml")) } catch {
            preconditionFailure("the built-in catalog is invalid: \(error)")
        }
    }

    static func suffix(_ options: TrainingOptions, defaults: TrainingOptions) -> String {
        var parts: [String] = []
        parts.append("lr\(formatShort(Double(options.learningRate)))")
        if options.epochs != defaults.epochs { parts.append("e\(options.epochs)") }
        if options.batchSize != defaults.batchSize { parts.append("bs\(options.batchSize)") }
        if options.loss.temperature != defaults.loss.temperature {
            parts.append("t\(formatShort(Double(options.loss.temperature)))")
        }
        if options.loss.alpha != defaults.loss.alpha { parts.append("a\(formatShort(Double(options.loss.alpha)))") }
        if options.patience != defaults.patience { parts.append("p\(options.patience)") }
        if options.earlyStopping != defaults.earlyStopping { parts.append("es-\(options.earlyStopping.rawValue)") }
        if options.learningRateSchedule != defaults.learningRateSchedule {
            parts.append("lr-\(options.learningRateSchedule.rawValue)")
        }
        if options.optimizer != defaults.optimizer { parts.append(options.optimizer.rawValue) }
        return parts.joined(separator: "-")
    }

    static func formatShort(_ value: Double) -> String {
        String(format: "%g", Double(Float(value)))
    }

    /// An encoder-head's heads: `[[], [128]]` (a linear head, and one hidden ReLU layer of 128).
    static func parseHeads(_ value: YAMLValue) throws(DataError) -> [[Int]] {
        let items = try value.sequence()
        guard !items.isEmpty, items.allSatisfy({ $0.isSequence }) else {
            throw value.error("hidden lists the heads as width lists: [[], [128]] ([] is a linear head)")
        }
        let lists = try items.map { (item) throws(DataError) in
            try item.sequence().map { (w) throws(DataError) in try w.int(in: widthRange) }
        }
        guard lists.allSatisfy({ $0.count <= 2 }) else {
            throw value.error("each head has 0 to 2 hidden widths between 1 and 16384")
        }
        return lists
    }

    static func parseHidden(_ value: YAMLValue) throws(DataError) -> [[Int]] {
        let items = try value.sequence()
        guard !items.isEmpty else { throw value.error("hidden needs at least one width list") }
        let lists: [[Int]]
        if items.allSatisfy({ $0.isSequence }) {
            lists = try items.map { (item) throws(DataError) in
                try item.sequence().map { (w) throws(DataError) in try w.int(in: widthRange) }
            }
        } else {
            lists = [try items.map { (w) throws(DataError) in try w.int(in: widthRange) }]
        }
        for list in lists {
            guard (1...3).contains(list.count) else {
                throw value.error("each hidden list has 1 to 3 widths between 1 and 16384, e.g. [256, 128]")
            }
        }
        return lists
    }

    /// Hidden widths and head widths: 1 to 16384.
    static let widthRange = 1...16_384

    /// The most candidates one entry may expand to (the product of its list lengths).
    static let maxCandidatesPerEntry = 100_000

    /// One whole number or a list of them, each in `range` (an error names the offending element's line).
    static func ints(_ value: YAMLValue, in range: ClosedRange<Int>) throws(DataError) -> [Int] {
        let items = value.isSequence ? try value.sequence() : [value]
        guard !items.isEmpty else { throw value.error("give at least one value") }
        return try items.map { (item) throws(DataError) in try item.int(in: range) }
    }

    /// One number or a list of them, each in `range`.
    static func doubles(_ value: YAMLValue, in range: ClosedRange<Double>) throws(DataError) -> [Double] {
        let items = value.isSequence ? try value.sequence() : [value]
        guard !items.isEmpty else { throw value.error("give at least one value") }
        return try items.map { (item) throws(DataError) in
            try item.double(in: NumberRange(range.lowerBound, range.upperBound))
        }
    }

    static func strings(_ value: YAMLValue) throws(DataError) -> [String] {
        value.isSequence ? try value.sequence().map { (v) throws(DataError) in try v.string() } : [try value.string()]
    }
}

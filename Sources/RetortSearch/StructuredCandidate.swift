import Foundation
import RetortData
import RetortStudents

/// One candidate of a structured task (FORMATS.md §9): a `nearest` retriever or a `fields` composite, with its
/// hashed-feature size, its classifiers' hidden width and its stored precision; or an `slm` decoder with its LoRA rank,
/// depth (adapted top blocks), training rows and epochs.
public struct StructuredCandidate: Sendable, Equatable, Hashable, Codable {
    /// `nearest`, `fields` or `slm`.
    public var family: Family
    /// Hashed n-gram buckets, log2.
    public var bucketsLog2: Int
    /// fields: the hidden width of every part's classifier (0: a linear classifier).
    public var hidden: Int
    /// Stored precision (nearest: fp32 only).
    public var precision: Precision
    /// fields: the most training epochs of every part; slm: the epochs over its training rows.
    public var epochs: Int
    /// slm: the LoRA rank.
    public var rank = 8
    /// slm: how many of the top decoder blocks get adapters.
    public var depth = 2
    /// slm: the train rows it learns from (a seeded sample when the task has more).
    public var trainRows = 512
    /// slm: the base model's GGUF file.
    public var model = SlmStudent.defaultModelPath

    /// A candidate.
    public init(family: Family, bucketsLog2: Int, hidden: Int = 0, precision: Precision = .fp32, epochs: Int = 30) {
        self.family = family
        self.bucketsLog2 = bucketsLog2
        self.hidden = hidden
        self.precision = precision
        self.epochs = epochs
    }

    /// An slm candidate.
    public init(slmRank rank: Int, depth: Int, epochs: Int, trainRows: Int, precision: Precision, model: String) {
        self.init(family: .slm, bucketsLog2: 0, precision: precision, epochs: epochs)
        self.rank = rank
        self.depth = depth
        self.trainRows = trainRows
        self.model = model
    }

    /// The slm default epochs over its training rows.
    public static let slmDefaultEpochs = 2
    /// The slm default number of train rows.
    public static let slmDefaultTrainRows = 512

    /// `nearest-b16`, `fields-b16-fp32`, `fields-h64-b16-int8` (epochs other than the default add `-e N`),
    /// `slm-r8-d2-fp16` (`-e N` and `-n ROWS` when not the defaults).
    public var id: String {
        if family == .slm {
            var parts = ["slm", "r\(rank)", "d\(depth)"]
            if epochs != Self.slmDefaultEpochs { parts.append("e\(epochs)") }
            if trainRows != Self.slmDefaultTrainRows { parts.append("n\(trainRows)") }
            parts.append(precision.rawValue)
            return parts.joined(separator: "-")
        }
        var parts = [family.rawValue]
        if family == .fields && hidden > 0 { parts.append("h\(hidden)") }
        parts.append("b\(bucketsLog2)")
        if family == .fields {
            if epochs != Self.defaultEpochs { parts.append("e\(epochs)") }
            parts.append(precision.rawValue)
        }
        return parts.joined(separator: "-")
    }

    /// Whether this is an slm whose base model file is not there (the search skips it with the reason, `suggest`
    /// leaves it out, halving does not race it).
    public var isMissingBaseModel: Bool {
        family == .slm && !FileManager.default.fileExists(atPath: model)
    }

    /// The candidates that share one training run (every precision of one configuration), keyed by this.
    public var trainingKey: String {
        var copy = self
        copy.precision = .fp32
        return copy.id
    }

    /// report.json `config`.
    public var config: [String: ReportValue] {
        if family == .slm {
            return [
                "rank": .int(rank), "depth": .int(depth), "epochs": .int(epochs), "train_rows": .int(trainRows),
                "model": .string(model),
            ]
        }
        var config: [String: ReportValue] = ["buckets_log2": .int(bucketsLog2)]
        if family == .fields {
            config["hidden"] = .ints(hidden > 0 ? [hidden] : [])
            config["epochs"] = .int(epochs)
        }
        return config
    }

    /// The most epochs a fields candidate trains when the catalog names none.
    public static let defaultEpochs = 30

    /// The keys a `structured:` catalog entry may have.
    static let entryKeys: Set<String> = [
        "family", "buckets_log2", "hidden", "precision", "epochs", "rank", "depth", "train_rows", "model",
    ]

    /// Expands a catalog's `structured:` section: each entry's grid (buckets × hidden × precision × epochs), in entry
    /// order. A bad entry is an error naming its line.
    static func expand(_ section: YAMLValue) throws(DataError) -> [StructuredCandidate] {
        var result: [StructuredCandidate] = []
        var seen = Set<String>()
        for entry in try section.sequence() {
            let fields = try entry.mapping(allowed: entryKeys, required: ["family"])
            guard let familyValue = fields["family"] else { throw entry.error("missing key \"family\"") }
            let family = try familyValue.choice(Family.self, named: "family")
            guard family.isStructured else {
                throw familyValue.error(
                    "\(family.rawValue) students answer labels; a structured: entry is nearest, fields or slm")
            }
            if family == .slm {
                for candidate in try expandSlm(fields) {
                    guard seen.insert(candidate.id).inserted else {
                        throw entry.error("candidate \(candidate.id) is listed twice")
                    }
                    result.append(candidate)
                }
                continue
            }
            for key in ["rank", "depth", "train_rows", "model"] {
                if let value = fields[key] { throw value.error("\(key) is an slm setting; remove it") }
            }
            let buckets =
                try fields["buckets_log2"].map { (value) throws(DataError) in try ints(value, in: 8...24) }
                ?? [16]
            let hidden = try fields["hidden"].map { (value) throws(DataError) in try ints(value, in: 0...4096) } ?? [0]
            let epochs =
                try fields["epochs"].map { (value) throws(DataError) in try ints(value, in: 1...10_000) }
                ?? [defaultEpochs]
            var precisions: [Precision] = [.fp32]
            if let value = fields["precision"] {
                precisions = []
                for item in value.isSequence ? try value.sequence() : [value] {
                    precisions.append(try item.choice(Precision.self, named: "precision"))
                }
            }
            if family == .nearest {
                for key in ["hidden", "epochs"] {
                    if let value = fields[key] {
                        throw value.error("a nearest student is an index, not trained; remove \(key)")
                    }
                }
                if let value = fields["precision"], precisions != [.fp32] {
                    throw value.error("a nearest student stores its index at fp32; remove precision")
                }
            }
            for bucket in buckets {
                for width in family == .fields ? hidden : [0] {
                    for epoch in family == .fields ? epochs : [defaultEpochs] {
                        for precision in precisions {
                            let candidate = StructuredCandidate(
                                family: family, bucketsLog2: bucket, hidden: width, precision: precision,
                                epochs: epoch)
                            guard seen.insert(candidate.id).inserted else {
                                throw entry.error("candidate \(candidate.id) is listed twice")
                            }
                            result.append(candidate)
                        }
                    }
                }
            }
        }
        return result
    }

    /// An slm entry's grid: rank × depth × epochs × train rows × precision (fp32 or fp16 adapters; fp16 by default).
    static func expandSlm(_ fields: [String: YAMLValue]) throws(DataError) -> [StructuredCandidate] {
        for key in ["buckets_log2", "hidden"] {
            if let value = fields[key] {
                throw value.error("an slm student reads tokens, not hashed features; remove \(key)")
            }
        }
        let ranks = try fields["rank"].map { (value) throws(DataError) in try ints(value, in: 1...256) } ?? [8]
        let depths = try fields["depth"].map { (value) throws(DataError) in try ints(value, in: 1...64) } ?? [2]
        let epochs =
            try fields["epochs"].map { (value) throws(DataError) in try ints(value, in: 1...100) } ?? [slmDefaultEpochs]
        let rows =
            try fields["train_rows"].map { (value) throws(DataError) in try ints(value, in: 1...1_000_000) }
            ?? [slmDefaultTrainRows]
        let model = try fields["model"]?.string() ?? SlmStudent.defaultModelPath
        var precisions: [Precision] = [.fp16]
        if let value = fields["precision"] {
            precisions = []
            for item in value.isSequence ? try value.sequence() : [value] {
                let precision = try item.choice(Precision.self, named: "precision")
                guard precision == .fp32 || precision == .fp16 else {
                    throw item.error("slm adapters are stored at fp32 or fp16")
                }
                precisions.append(precision)
            }
        }
        var result: [StructuredCandidate] = []
        for rank in ranks {
            for depth in depths {
                for epoch in epochs {
                    for count in rows {
                        for precision in precisions {
                            result.append(
                                StructuredCandidate(
                                    slmRank: rank, depth: depth, epochs: epoch, trainRows: count, precision: precision,
                                    model: model))
                        }
                    }
                }
            }
        }
        return result
    }

    /// A scalar or a list of integers in `range`.
    static func ints(_ value: YAMLValue, in range: ClosedRange<Int>) throws(DataError) -> [Int] {
        var result: [Int] = []
        for item in value.isSequence ? try value.sequence() : [value] {
            result.append(try item.int(in: range))
        }
        return result
    }
}

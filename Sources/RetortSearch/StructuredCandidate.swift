import RetortData
import RetortStudents

/// One candidate of a structured task (FORMATS.md §9): a `nearest` retriever or a `fields` composite, with its
/// hashed-feature size, its classifiers' hidden width and its stored precision.
public struct StructuredCandidate: Sendable, Equatable, Hashable {
    /// `nearest` or `fields`.
    public var family: Family
    /// Hashed n-gram buckets, log2.
    public var bucketsLog2: Int
    /// fields: the hidden width of every part's classifier (0: a linear classifier).
    public var hidden: Int
    /// Stored precision (nearest: fp32 only).
    public var precision: Precision
    /// fields: the most training epochs of every part.
    public var epochs: Int

    /// A candidate.
    public init(family: Family, bucketsLog2: Int, hidden: Int = 0, precision: Precision = .fp32, epochs: Int = 30) {
        self.family = family
        self.bucketsLog2 = bucketsLog2
        self.hidden = hidden
        self.precision = precision
        self.epochs = epochs
    }

    /// `nearest-b16`, `fields-b16-fp32`, `fields-h64-b16-int8` (epochs other than the default add `-e N`).
    public var id: String {
        var parts = [family.rawValue]
        if family == .fields && hidden > 0 { parts.append("h\(hidden)") }
        parts.append("b\(bucketsLog2)")
        if family == .fields {
            if epochs != Self.defaultEpochs { parts.append("e\(epochs)") }
            parts.append(precision.rawValue)
        }
        return parts.joined(separator: "-")
    }

    /// The candidates that share one training run (every precision of one configuration), keyed by this.
    public var trainingKey: String {
        var copy = self
        copy.precision = .fp32
        return copy.id
    }

    /// report.json `config`.
    public var config: [String: ReportValue] {
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
    static let entryKeys: Set<String> = ["family", "buckets_log2", "hidden", "precision", "epochs"]

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
                    "\(family.rawValue) students answer labels; a structured: entry is nearest or fields")
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

    /// A scalar or a list of integers in `range`.
    static func ints(_ value: YAMLValue, in range: ClosedRange<Int>) throws(DataError) -> [Int] {
        var result: [Int] = []
        for item in value.isSequence ? try value.sequence() : [value] {
            result.append(try item.int(in: range))
        }
        return result
    }
}

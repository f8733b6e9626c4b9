import RetortData
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
/// ```
public struct CandidateCatalog: Sendable {
    /// Entries for text tasks, expanded.
    public var text: [Candidate]
    /// Entries for numeric tasks, expanded.
    public var numeric: [Candidate]

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

    /// The candidates for `kind`.
    public func candidates(for kind: TaskKind) -> [Candidate] { kind == .text ? text : numeric }

    static let entryKeys: Set<String> = [
        "family", "hidden", "dim", "buckets_log2", "precision", "lr", "epochs", "batch_size", "temperature", "alpha",
        "patience", "early_stopping", "char_ngrams", "depth", "rounds", "encoder", "layers", "max_length",
        "lr_schedule", "optimizer", "normalization",
    ]

    /// Where `make models` puts the default encoder (relative to the working directory).
    public static let defaultEncoderPath = ".build-models/all-MiniLM-L6-v2"

    /// Parses and expands a catalog, validating every value.
    public init(_ value: YAMLValue) throws(DataError) {
        let sections = try value.mapping(allowed: ["text", "numeric"])
        text = try sections["text"].map { (section) throws(DataError) in try Self.expand(section, kind: .text) } ?? []
        numeric =
            try sections["numeric"].map { (section) throws(DataError) in try Self.expand(section, kind: .numeric) }
            ?? []
        guard !text.isEmpty || !numeric.isEmpty else { throw value.error("the catalog lists no candidates") }
    }

    /// The built-in default catalog (the same text as candidates/default.yaml).
    public static func standard() -> CandidateCatalog {
        do { return try CandidateCatalog(try YAMLValue.parse(defaultYAML, file: "candidates/default.yaml")) } catch {
            preconditionFailure("the built-in catalog is invalid: \(error)")
        }
    }

    static func expand(_ section: YAMLValue, kind: TaskKind) throws(DataError) -> [Candidate] {
        var result: [Candidate] = []
        var seen: Set<String> = []
        for entry in try section.sequence() {
            let fields = try entry.mapping(allowed: entryKeys, required: ["family"])
            guard let familyValue = fields["family"] else { throw entry.error("missing key \"family\"") }
            let familyName = try familyValue.string()
            guard let family = Family(rawValue: familyName) else {
                throw familyValue.error(
                    "unknown family \"\(familyName)\"; choose from \(Family.allCases.map(\.rawValue).joined(separator: ", "))"
                )
            }
            let hiddenOptions: [[Int]]
            switch family {
            case .mlp:
                guard let hidden = fields["hidden"] else {
                    throw entry.error("an mlp entry needs hidden: [[64], [128, 64]]")
                }
                if let dim = fields["dim"] { throw dim.error("dim is for embedding-bag; an mlp takes hidden") }
                hiddenOptions = try parseHidden(hidden)
            case .embeddingBag:
                guard kind == .text else {
                    throw familyValue.error("embedding-bag students read text; use mlp for numeric tasks")
                }
                guard let dim = fields["dim"] else {
                    throw entry.error("an embedding-bag entry needs dim: [16, 32, 64]")
                }
                if let hidden = fields["hidden"] {
                    throw hidden.error("an embedding-bag has one embedding; give dim, not hidden")
                }
                hiddenOptions = try ints(dim, in: 1...4096).map { [$0] }
            case .gbdt:
                guard kind == .numeric else {
                    throw familyValue.error("gbdt students read numeric features; use them on numeric tasks")
                }
                if let hidden = fields["hidden"] ?? fields["dim"] {
                    throw hidden.error("a gbdt takes depth and rounds, not \(hidden.path)")
                }
                let depths = try fields["depth"].map { (v) throws(DataError) in try ints(v, in: 1...10) } ?? [4]
                let rounds = try fields["rounds"].map { (v) throws(DataError) in try ints(v, in: 1...5000) } ?? [100]
                hiddenOptions = depths.flatMap { depth in rounds.map { [depth, $0] } }
                if let precision = fields["precision"], try strings(precision).contains("int8") {
                    throw precision.error("gbdt students come in fp32 and fp16 (trees have no int8 form here)")
                }
                if let epochs = fields["epochs"] { throw epochs.error("a gbdt's length is rounds, not epochs") }
                if let schedule = fields["lr_schedule"] {
                    throw schedule.error("a gbdt's shrinkage is constant; remove lr_schedule")
                }
            case .encoderHead:
                guard kind == .text else {
                    throw familyValue.error("encoder-head students read text; use them on text tasks")
                }
                if let dim = fields["dim"] { throw dim.error("an encoder-head takes hidden (its head), not dim") }
                hiddenOptions = try fields["hidden"].map { (value) throws(DataError) in try parseHeads(value) } ?? [[]]
            case .linear, .prototype:
                if let hidden = fields["hidden"] ?? fields["dim"] {
                    throw hidden.error("a \(family.rawValue) student has no hidden layers; remove it")
                }
                hiddenOptions = [[]]
            }
            if family == .prototype,
                let trainingKey = [
                    "lr", "epochs", "batch_size", "temperature", "alpha", "patience", "lr_schedule", "optimizer",
                ]
                .first(where: {
                    fields[$0] != nil
                }), let value = fields[trainingKey]
            {
                throw value.error("a prototype student is computed in closed form; remove \(trainingKey)")
            }
            var encoderOptions: [EncoderChoice?] = [nil]
            if family == .encoderHead {
                for key in ["buckets_log2", "char_ngrams", "normalization"] {
                    if let value = fields[key] {
                        throw value.error("\(key) is for hashed features; an encoder-head reads its encoder")
                    }
                }
                let path = try fields["encoder"]?.string() ?? Self.defaultEncoderPath
                let layers =
                    try fields["layers"].map { (v) throws(DataError) in try ints(v, in: 1...48) } ?? [1, 2, 3, 6]
                let lengths =
                    try fields["max_length"].map { (v) throws(DataError) in try ints(v, in: 4...512) } ?? [32]
                encoderOptions = layers.flatMap { depth in
                    lengths.map { EncoderChoice(path: path, layers: depth, maxLength: $0) }
                }
            } else {
                for key in ["encoder", "layers", "max_length"] {
                    if let value = fields[key] { throw value.error("\(key) is for encoder-head students") }
                }
            }
            var bucketOptions: [Int?] = [nil]
            if family == .encoderHead {
                bucketOptions = [nil]
            } else if kind == .text {
                bucketOptions =
                    try fields["buckets_log2"].map { (value) throws(DataError) in
                        try ints(value, in: 8...22).map { Optional($0) }
                    } ?? [16]
            } else if let buckets = fields["buckets_log2"] {
                throw buckets.error("buckets_log2 applies to text tasks only")
            }
            var charOptions = [true]
            if let chars = fields["char_ngrams"] {
                guard kind == .text else { throw chars.error("char_ngrams applies to text tasks only") }
                charOptions = try (chars.isSequence ? chars.sequence() : [chars]).map { (v) throws(DataError) in
                    try v.bool()
                }
            }
            var meanOptions = [false]
            if let normalization = fields["normalization"] {
                guard kind == .text else { throw normalization.error("normalization applies to text tasks only") }
                meanOptions = try strings(normalization).map { (name) throws(DataError) -> Bool in
                    guard let parsed = HashedTextFeaturizer.Normalization(rawValue: name) else {
                        throw normalization.error("normalization is l2 or mean, not \"\(name)\"")
                    }
                    return parsed == .mean
                }
            }
            var precisions: [Precision] = [.fp32]
            if let precision = fields["precision"] {
                precisions = try strings(precision).map { (name) throws(DataError) -> Precision in
                    guard let parsed = Precision(rawValue: name) else {
                        throw precision.error(
                            "unknown precision \"\(name)\"; choose from \(Precision.allCases.map(\.rawValue).joined(separator: ", "))"
                        )
                    }
                    return parsed
                }
            }
            let defaults = TrainingOptions(
                epochs: family == .prototype ? 1 : 50,
                learningRate: family == .linear
                    ? (kind == .text ? 0.02 : 0.01)
                    : family == .embeddingBag || family == .encoderHead ? 0.01 : family == .gbdt ? 0.1 : 0.003,
                patience: family == .gbdt ? 10 : 6)
            let learningRates =
                try fields["lr"].map { (v) throws(DataError) in try doubles(v, in: 1e-6...10) } ?? [
                    Double(defaults.learningRate)
                ]
            let epochs =
                try fields["epochs"].map { (v) throws(DataError) in try ints(v, in: 1...10_000) } ?? [defaults.epochs]
            let batchSizes =
                try fields["batch_size"].map { (v) throws(DataError) in try ints(v, in: 1...65_536) } ?? [
                    defaults.batchSize
                ]
            let temperatures =
                try fields["temperature"].map { (v) throws(DataError) in try doubles(v, in: 0.05...100) } ?? [
                    Double(defaults.loss.temperature)
                ]
            let alphas =
                try fields["alpha"].map { (v) throws(DataError) in try doubles(v, in: 0...1) } ?? [
                    Double(defaults.loss.alpha)
                ]
            let patiences =
                try fields["patience"].map { (v) throws(DataError) in try ints(v, in: 1...1000) } ?? [defaults.patience]
            let stoppings =
                try fields["early_stopping"].map { (value) throws(DataError) in
                    try strings(value).map { (name) throws(DataError) -> TrainingOptions.EarlyStopping in
                        guard let parsed = TrainingOptions.EarlyStopping(rawValue: name) else {
                            throw value.error(
                                "early_stopping is teacher, objective, agreement or none, not \"\(name)\"")
                        }
                        return parsed
                    }
                } ?? [defaults.earlyStopping]
            let schedules =
                try fields["lr_schedule"].map { (value) throws(DataError) in
                    try strings(value).map { (name) throws(DataError) -> TrainingOptions.LearningRateSchedule in
                        guard let parsed = TrainingOptions.LearningRateSchedule(rawValue: name) else {
                            throw value.error("lr_schedule is constant or linear, not \"\(name)\"")
                        }
                        return parsed
                    }
                } ?? [.constant]
            let optimizers =
                try fields["optimizer"].map { (value) throws(DataError) in
                    try strings(value).map { (name) throws(DataError) -> TrainingOptions.Optimizer in
                        guard let parsed = TrainingOptions.Optimizer(rawValue: name) else {
                            throw value.error("optimizer is adam or sgd, not \"\(name)\"")
                        }
                        guard parsed == .adam || family == .embeddingBag else {
                            throw value.error("optimizer sgd is for embedding-bag students; remove it")
                        }
                        return parsed
                    }
                } ?? [.adam]
            let counts: [Int] = [
                learningRates.count, epochs.count, batchSizes.count, temperatures.count, alphas.count, patiences.count,
                stoppings.count, schedules.count, optimizers.count, hiddenOptions.count, bucketOptions.count,
                charOptions.count, meanOptions.count, encoderOptions.count, precisions.count,
            ]
            let expansion = counts.reduce(1.0) { (product: Double, count: Int) in product * Double(count) }
            guard expansion <= Double(maxCandidatesPerEntry) else {
                throw entry.error(
                    "this entry expands to \(NumberRange.format(expansion)) candidates; list fewer values (at most \(maxCandidatesPerEntry) candidates per entry)"
                )
            }
            var optionsGrid: [TrainingOptions] = []
            for lr in learningRates {
                for epochCount in epochs {
                    for batch in batchSizes {
                        for temperature in temperatures {
                            for alpha in alphas {
                                for patience in patiences {
                                    for stopping in stoppings {
                                        for schedule in schedules {
                                            for optimizer in optimizers {
                                                var options = TrainingOptions(
                                                    epochs: epochCount, batchSize: batch, learningRate: Float(lr),
                                                    patience: patience,
                                                    loss: DistillationLoss(
                                                        temperature: Float(temperature), alpha: Float(alpha)),
                                                    earlyStopping: stopping)
                                                options.learningRateSchedule = schedule
                                                options.optimizer = optimizer
                                                optionsGrid.append(options)
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            for hidden in hiddenOptions {
                // A gbdt's rounds are its epochs: the fidelity halving schedules.
                let grid =
                    family == .gbdt
                    ? optionsGrid.map { options -> TrainingOptions in
                        var copy = options
                        copy.epochs = hidden[1]
                        return copy
                    } : optionsGrid
                let featureOptions = bucketOptions.flatMap { b in
                    charOptions.flatMap { c in meanOptions.map { (b, c, $0) } }
                }
                for (buckets, chars, mean) in featureOptions {
                    for (options, encoder) in grid.flatMap({ o in encoderOptions.map { (o, $0) } }) {
                        for precision in precisions {
                            var candidate = Candidate(
                                family: family, hidden: hidden, bucketsLog2: buckets, precision: precision,
                                training: options)
                            candidate.charNgrams = chars
                            candidate.meanNormalized = mean
                            candidate.encoder = encoder
                            if optionsGrid.count > 1 || seen.contains(candidate.id) {
                                candidate.trainingSuffix = Self.suffix(options, defaults: defaults)
                            }
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

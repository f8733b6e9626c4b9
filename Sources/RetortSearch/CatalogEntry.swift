import RetortData
import RetortStudents

/// One catalog entry taken apart: its shapes, feature choices, precisions and training grid, each parsed and checked
/// by its own function (``CandidateCatalog/expand(_:kind:)`` multiplies them out).
extension CandidateCatalog {
    /// An entry's feature choices (one list per key; their product is the entry's feature grid).
    struct FeatureChoices {
        /// Encoder (folder, depth, max length) per encoder-head variant; `[nil]` for hashed or numeric features.
        var encoders: [EncoderChoice?] = [nil]
        /// `buckets_log2` per text variant; `[nil]` for encoder heads and numeric tasks.
        var buckets: [Int?] = [nil]
        /// Whether character n-grams are hashed too.
        var chars = [true]
        /// Whether counts are mean-normalized (instead of l2).
        var means = [false]

        /// Variants the features alone make.
        var count: Int { encoders.count * buckets.count * chars.count * means.count }
    }

    /// An entry's training values (one list per key; their product is the entry's training grid).
    struct TrainingChoices {
        var learningRates: [Double]
        var epochs: [Int]
        var batchSizes: [Int]
        var temperatures: [Double]
        var alphas: [Double]
        var patiences: [Int]
        var stoppings: [TrainingOptions.EarlyStopping]
        var schedules: [TrainingOptions.LearningRateSchedule]
        var optimizers: [TrainingOptions.Optimizer]

        /// Variants the training values alone make.
        var counts: [Int] {
            [
                learningRates.count, epochs.count, batchSizes.count, temperatures.count, alphas.count,
                patiences.count, stoppings.count, schedules.count, optimizers.count,
            ]
        }
    }

    /// Expands one section (`text:` or `numeric:`) of a catalog: every entry's grid, in entry order. An entry that is
    /// malformed, grows past ``maxCandidatesPerEntry`` or repeats a candidate is an error naming its line.
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
            let shapes = try shapes(entry, fields: fields, family: family, familyValue: familyValue, kind: kind)
            let features = try featureChoices(fields, family: family, kind: kind)
            let precisions = try precisions(fields)
            let defaults = defaultTraining(family: family, kind: kind)
            let training = try trainingChoices(fields, family: family, defaults: defaults)
            let counts =
                training.counts + [
                    shapes.count, features.buckets.count, features.chars.count, features.means.count,
                    features.encoders.count, precisions.count,
                ]
            let expansion = counts.reduce(1.0) { (product: Double, count: Int) in product * Double(count) }
            guard expansion <= Double(maxCandidatesPerEntry) else {
                throw entry.error(
                    "this entry expands to \(NumberRange.format(expansion)) candidates; list fewer values (at most \(maxCandidatesPerEntry) candidates per entry)"
                )
            }
            let grid = trainingGrid(training)
            for candidate in entryCandidates(
                family: family, shapes: shapes, features: features, grid: grid, precisions: precisions,
                defaults: defaults, seen: seen)
            {
                guard seen.insert(candidate.id).inserted else {
                    throw entry.error("candidate \(candidate.id) is listed twice")
                }
                result.append(candidate)
            }
        }
        return result
    }

    /// An entry's shapes: hidden widths (mlp), embedding dims (embedding-bag), `[depth, rounds]` (gbdt), heads
    /// (encoder-head) or `[[]]`; checks the keys each family forbids.
    static func shapes(
        _ entry: YAMLValue, fields: [String: YAMLValue], family: Family, familyValue: YAMLValue, kind: TaskKind
    ) throws(DataError) -> [[Int]] {
        let shapes: [[Int]]
        switch family {
        case .mlp:
            guard let hidden = fields["hidden"] else {
                throw entry.error("an mlp entry needs hidden: [[64], [128, 64]]")
            }
            if let dim = fields["dim"] { throw dim.error("dim is for embedding-bag; an mlp takes hidden") }
            shapes = try parseHidden(hidden)
        case .embeddingBag:
            guard kind == .text else {
                throw familyValue.error("embedding-bag students read text; use mlp for numeric tasks")
            }
            guard let dim = fields["dim"] else { throw entry.error("an embedding-bag entry needs dim: [16, 32, 64]") }
            if let hidden = fields["hidden"] {
                throw hidden.error("an embedding-bag has one embedding; give dim, not hidden")
            }
            shapes = try ints(dim, in: 1...4096).map { [$0] }
        case .gbdt:
            shapes = try gbdtShapes(fields, familyValue: familyValue, kind: kind)
        case .encoderHead:
            guard kind == .text else {
                throw familyValue.error("encoder-head students read text; use them on text tasks")
            }
            if let dim = fields["dim"] { throw dim.error("an encoder-head takes hidden (its head), not dim") }
            shapes = try fields["hidden"].map { (value) throws(DataError) in try parseHeads(value) } ?? [[]]
        case .nearest, .fields, .slm:
            throw familyValue.error(
                "\(family.rawValue) students answer structured tasks (FORMATS.md §9); list them under structured:")
        case .linear, .prototype:
            if let hidden = fields["hidden"] ?? fields["dim"] {
                throw hidden.error("a \(family.rawValue) student has no hidden layers; remove it")
            }
            shapes = [[]]
        }
        if family == .prototype,
            let trainingKey = [
                "lr", "epochs", "batch_size", "temperature", "alpha", "patience", "lr_schedule", "optimizer",
            ]
            .first(where: { fields[$0] != nil }), let value = fields[trainingKey]
        {
            throw value.error("a prototype student is computed in closed form; remove \(trainingKey)")
        }
        return shapes
    }

    /// A gbdt entry's `[depth, rounds]` pairs; checks what a booster does not take (int8, epochs, lr_schedule).
    static func gbdtShapes(_ fields: [String: YAMLValue], familyValue: YAMLValue, kind: TaskKind) throws(DataError)
        -> [[Int]]
    {
        guard kind == .numeric else {
            throw familyValue.error("gbdt students read numeric features; use them on numeric tasks")
        }
        if let hidden = fields["hidden"] ?? fields["dim"] {
            throw hidden.error("a gbdt takes depth and rounds, not \(hidden.path)")
        }
        let depths = try fields["depth"].map { (v) throws(DataError) in try ints(v, in: 1...10) } ?? [4]
        let rounds = try fields["rounds"].map { (v) throws(DataError) in try ints(v, in: 1...5000) } ?? [100]
        let shapes = depths.flatMap { depth in rounds.map { [depth, $0] } }
        if let precision = fields["precision"], try strings(precision).contains("int8") {
            throw precision.error("gbdt students come in fp32 and fp16 (trees have no int8 form here)")
        }
        if let epochs = fields["epochs"] { throw epochs.error("a gbdt's length is rounds, not epochs") }
        if let schedule = fields["lr_schedule"] {
            throw schedule.error("a gbdt's shrinkage is constant; remove lr_schedule")
        }
        return shapes
    }

    /// An entry's feature choices: encoder variants (encoder-head), hash buckets, character n-grams and normalization
    /// (text), each checked against the family and task kind.
    static func featureChoices(_ fields: [String: YAMLValue], family: Family, kind: TaskKind) throws(DataError)
        -> FeatureChoices
    {
        var choices = FeatureChoices()
        if family == .encoderHead {
            for key in ["buckets_log2", "char_ngrams", "normalization"] {
                if let value = fields[key] {
                    throw value.error("\(key) is for hashed features; an encoder-head reads its encoder")
                }
            }
            let path = try fields["encoder"]?.string() ?? Self.defaultEncoderPath
            let layers = try fields["layers"].map { (v) throws(DataError) in try ints(v, in: 1...48) } ?? [1, 2, 3, 6]
            let lengths = try fields["max_length"].map { (v) throws(DataError) in try ints(v, in: 4...512) } ?? [32]
            choices.encoders = layers.flatMap { depth in
                lengths.map { EncoderChoice(path: path, layers: depth, maxLength: $0) }
            }
        } else {
            for key in ["encoder", "layers", "max_length"] {
                if let value = fields[key] { throw value.error("\(key) is for encoder-head students") }
            }
        }
        if family != .encoderHead && kind == .text {
            choices.buckets =
                try fields["buckets_log2"].map { (value) throws(DataError) in
                    try ints(value, in: 8...22).map { Optional($0) }
                } ?? [16]
        } else if family != .encoderHead, let buckets = fields["buckets_log2"] {
            throw buckets.error("buckets_log2 applies to text tasks only")
        }
        if let chars = fields["char_ngrams"] {
            guard kind == .text else { throw chars.error("char_ngrams applies to text tasks only") }
            choices.chars = try (chars.isSequence ? chars.sequence() : [chars]).map { (v) throws(DataError) in
                try v.bool()
            }
        }
        if let normalization = fields["normalization"] {
            guard kind == .text else { throw normalization.error("normalization applies to text tasks only") }
            choices.means = try strings(normalization).map { (name) throws(DataError) -> Bool in
                guard let parsed = HashedTextFeaturizer.Normalization(rawValue: name) else {
                    throw normalization.error("normalization is l2 or mean, not \"\(name)\"")
                }
                return parsed == .mean
            }
        }
        return choices
    }

    /// An entry's precisions (default fp32).
    static func precisions(_ fields: [String: YAMLValue]) throws(DataError) -> [Precision] {
        guard let precision = fields["precision"] else { return [.fp32] }
        return try strings(precision).map { (name) throws(DataError) -> Precision in
            guard let parsed = Precision(rawValue: name) else {
                throw precision.error(
                    "unknown precision \"\(name)\"; choose from \(Precision.allCases.map(\.rawValue).joined(separator: ", "))"
                )
            }
            return parsed
        }
    }

    /// A family's default training: 50 epochs (one for a prototype), its learning rate and patience.
    static func defaultTraining(family: Family, kind: TaskKind) -> TrainingOptions {
        TrainingOptions(
            epochs: family == .prototype ? 1 : 50,
            learningRate: family == .linear
                ? (kind == .text ? 0.02 : 0.01)
                : family == .embeddingBag || family == .encoderHead ? 0.01 : family == .gbdt ? 0.1 : 0.003,
            patience: family == .gbdt ? 10 : 6)
    }

    /// An entry's training values, each key a value or a list (absent keys take `defaults`).
    static func trainingChoices(_ fields: [String: YAMLValue], family: Family, defaults: TrainingOptions)
        throws(DataError) -> TrainingChoices
    {
        func values<T>(_ key: String, _ parse: (YAMLValue) throws(DataError) -> [T], default value: T)
            throws(DataError) -> [T]
        {
            guard let field = fields[key] else { return [value] }
            return try parse(field)
        }
        func named<T>(_ key: String, _ make: (String) -> T?, _ message: (String) -> String, default value: T)
            throws(DataError) -> [T]
        {
            guard let field = fields[key] else { return [value] }
            return try strings(field).map { (name) throws(DataError) -> T in
                guard let parsed = make(name) else { throw field.error(message(name)) }
                return parsed
            }
        }
        let choices = TrainingChoices(
            learningRates: try values(
                "lr", { (v) throws(DataError) in try doubles(v, in: 1e-6...10) },
                default: Double(defaults.learningRate)),
            epochs: try values(
                "epochs", { (v) throws(DataError) in try ints(v, in: 1...10_000) }, default: defaults.epochs),
            batchSizes: try values(
                "batch_size", { (v) throws(DataError) in try ints(v, in: 1...65_536) },
                default: defaults.batchSize),
            temperatures: try values(
                "temperature", { (v) throws(DataError) in try doubles(v, in: 0.05...100) },
                default: Double(defaults.loss.temperature)),
            alphas: try values(
                "alpha", { (v) throws(DataError) in try doubles(v, in: 0...1) },
                default: Double(defaults.loss.alpha)),
            patiences: try values(
                "patience", { (v) throws(DataError) in try ints(v, in: 1...1000) },
                default: defaults.patience),
            stoppings: try named(
                "early_stopping", TrainingOptions.EarlyStopping.init(rawValue:),
                { "early_stopping is teacher, objective, agreement or none, not \"\($0)\"" },
                default: defaults.earlyStopping),
            schedules: try named(
                "lr_schedule", TrainingOptions.LearningRateSchedule.init(rawValue:),
                { "lr_schedule is constant or linear, not \"\($0)\"" }, default: .constant),
            optimizers: try optimizers(fields, family: family))
        return choices
    }

    /// An entry's optimizers (default adam; sgd for embedding-bag students only).
    static func optimizers(_ fields: [String: YAMLValue], family: Family) throws(DataError) -> [TrainingOptions
        .Optimizer]
    {
        guard let value = fields["optimizer"] else { return [.adam] }
        return try strings(value).map { (name) throws(DataError) -> TrainingOptions.Optimizer in
            guard let parsed = TrainingOptions.Optimizer(rawValue: name) else {
                throw value.error("optimizer is adam or sgd, not \"\(name)\"")
            }
            guard parsed == .adam || family == .embeddingBag else {
                throw value.error("optimizer sgd is for embedding-bag students; remove it")
            }
            return parsed
        }
    }

    /// The training grid of `choices`, learning rate outermost and optimizer innermost.
    static func trainingGrid(_ choices: TrainingChoices) -> [TrainingOptions] {
        var grid: [TrainingOptions] = []
        for lr in choices.learningRates {
            for epochCount in choices.epochs {
                for batch in choices.batchSizes {
                    for temperature in choices.temperatures {
                        for alpha in choices.alphas {
                            for patience in choices.patiences {
                                for stopping in choices.stoppings {
                                    for schedule in choices.schedules {
                                        for optimizer in choices.optimizers {
                                            var options = TrainingOptions(
                                                epochs: epochCount, batchSize: batch, learningRate: Float(lr),
                                                patience: patience,
                                                loss: DistillationLoss(
                                                    temperature: Float(temperature), alpha: Float(alpha)),
                                                earlyStopping: stopping)
                                            options.learningRateSchedule = schedule
                                            options.optimizer = optimizer
                                            grid.append(options)
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return grid
    }

    /// An entry's candidates: shapes × features × training grid × precisions, in that nesting order. A candidate's id
    /// carries a training suffix when the grid has several points or the id is taken (`seen`, plus the ones made here).
    static func entryCandidates(
        family: Family, shapes: [[Int]], features: FeatureChoices, grid optionsGrid: [TrainingOptions],
        precisions: [Precision], defaults: TrainingOptions, seen: Set<String>
    ) -> [Candidate] {
        var made: [Candidate] = []
        var seen = seen
        for hidden in shapes {
            // A gbdt's rounds are its epochs: the fidelity halving schedules.
            let grid =
                family == .gbdt
                ? optionsGrid.map { options -> TrainingOptions in
                    var copy = options
                    copy.epochs = hidden[1]
                    return copy
                } : optionsGrid
            let featureOptions = features.buckets.flatMap { b in
                features.chars.flatMap { c in features.means.map { (b, c, $0) } }
            }
            for (buckets, chars, mean) in featureOptions {
                for (options, encoder) in grid.flatMap({ o in features.encoders.map { (o, $0) } }) {
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
                        seen.insert(candidate.id)
                        made.append(candidate)
                    }
                }
            }
        }
        return made
    }
}

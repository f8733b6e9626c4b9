/// The closed choices a job file, a catalog or a flag names, as enums: read with ``YAMLValue/choice(_:)`` so that a
/// wrong name is a located error listing the choices.

/// How a search schedules training.
public enum SearchStrategy: String, Sendable, CaseIterable, Codable {
    /// Every feasible candidate at full fidelity (the reference).
    case exhaustive
    /// Pareto-aware successive halving (Jamieson & Talwalkar 2016): rungs at fidelities η^(r−R); after each rung the
    /// best 1/η by non-dominated rank, then crowding distance, continue from their state.
    case halving
    /// Guided by history: candidates train at full fidelity in the order of their predicted chance to become the
    /// recommendation (cheapest likely-qualifying first), a few at a time; the search stops when no untrained candidate
    /// could change the recommendation at the stated confidence.
    case learned
}

/// A metric Retort reports. A task kind says which apply (classification: accuracy, agreement, macro_f1; structured:
/// exact_match, field_f1, valid, agreement, field_f1_vs_teacher).
public enum Metric: String, Sendable, Codable, CaseIterable {
    /// Share of rows whose prediction equals gold (rows with gold only).
    case accuracy
    /// Share of rows whose prediction equals the teacher's answer (for structured answers: `exact_match` against the
    /// teacher, over the rows whose teacher answer is valid).
    case agreement
    /// Unweighted mean over classes of F1 against gold (or the teacher when the split has no gold), over the
    /// classes present in the reference or the predictions.
    case macroF1 = "macro_f1"
    /// Structured answers: share of rows whose whole object equals gold (rows with gold only).
    case exactMatch = "exact_match"
    /// Structured answers: micro-F1 over key=value pairs against gold, null values left out: Σ 2·tp / Σ (2·tp + fp +
    /// fn) over the rows with gold.
    case fieldF1 = "field_f1"
    /// Structured answers: share of outputs that are a valid object under the task's schema.
    case valid
    /// Structured answers: `field_f1` against the teacher's answer, over the rows whose teacher answer is valid.
    case fieldF1VsTeacher = "field_f1_vs_teacher"
}

/// A student family.
public enum Family: String, Sendable, Codable, CaseIterable {
    /// Softmax regression on the features.
    case linear
    /// A multilayer perceptron with ReLU hidden layers.
    case mlp
    /// fastText's recipe: hashed n-gram embeddings of dimension d averaged (a linear first layer, no activation),
    /// then a linear layer to the classes.
    case embeddingBag = "embedding-bag"
    /// Nearest class centroid: the teacher-weighted mean feature vector of each class, scored by cosine (text) or
    /// squared Euclidean distance (numeric); computed in closed form, no training loop.
    case prototype
    /// Gradient-boosted regression trees on the teacher's distribution (numeric tasks): `hidden` holds
    /// `[depth, rounds]`.
    case gbdt
    /// A frozen pretrained text encoder (BERT family, first k layers) whose pooled sentence vector feeds a linear
    /// (`hidden` empty) or ReLU MLP head trained by distillation.
    case encoderHead = "encoder-head"
    /// Structured tasks: the teacher's answer on the most similar train input (hashed n-gram cosine); the floor.
    case nearest
    /// Structured tasks: a composite from the schema (a classifier per closed-set key, a span tagger for copied
    /// values, presence for optional keys).
    case fields
    /// Structured tasks: a small pretrained decoder language model (SmolLM2-135M-Instruct) fine-tuned with LoRA on the
    /// teacher's answers, decoding constrained to the schema.
    case slm

    /// Whether the family answers structured tasks (a JSON object) rather than a label.
    public var isStructured: Bool { self == .nearest || self == .fields || self == .slm }

    /// Whether the family has no hidden layer.
    public var isSingleLayer: Bool { self == .linear || self == .prototype }

    /// Whether the family is a tree ensemble rather than a dense network.
    public var isTrees: Bool { self == .gbdt }
}

extension YAMLValue {
    /// The `E` case this scalar names; otherwise `FILE:LINE: unknown NAME "x"; choose from a, b, c`.
    public func choice<E: RawRepresentable & CaseIterable>(_ type: E.Type, named name: String) throws(DataError) -> E
    where E.RawValue == String {
        let text = try string()
        guard let value = E(rawValue: text) else {
            throw error(
                "unknown \(name) \"\(text)\"; choose from \(E.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return value
    }
}

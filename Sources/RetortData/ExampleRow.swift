/// One example's input: a text or a fixed-length numeric vector.
public enum ExampleInput: Sendable, Equatable {
    /// A text task's input.
    case text(String)
    /// A numeric task's input.
    case numeric([Float])
}

/// What the teacher answered for one example, as recorded (FORMATS.md §1).
public struct TeacherAnswer: Sendable, Equatable {
    /// The teacher's answer; nil means the arg-max of `probabilities`.
    public var label: String?
    /// Label → probability (possibly partial top-k), converted from `logprobs` when those were given.
    public var probabilities: [String: Double]?
    /// Tokens used (input, output), when recorded.
    public var usage: (input: Int, output: Int)?
    /// Latency of the call in milliseconds, when recorded.
    public var latencyMs: Double?
    /// The model that answered, when recorded.
    public var model: String?

    /// An answer with the given fields.
    public init(
        label: String?, probabilities: [String: Double]? = nil, usage: (input: Int, output: Int)? = nil,
        latencyMs: Double? = nil, model: String? = nil
    ) {
        self.label = label
        self.probabilities = probabilities
        self.usage = usage
        self.latencyMs = latencyMs
        self.model = model
    }

    /// The answer: `label`, or the most probable listed label (ties: the lexicographically first).
    public var answer: String {
        if let label { return label }
        let best = (probabilities ?? [:]).max { a, b in a.value < b.value || (a.value == b.value && a.key > b.key) }
        return best?.key ?? ""
    }

    /// Field-wise equality (`usage` compared by its two counts).
    public static func == (a: TeacherAnswer, b: TeacherAnswer) -> Bool {
        a.label == b.label && a.probabilities == b.probabilities && a.usage?.input == b.usage?.input
            && a.usage?.output == b.usage?.output && a.latencyMs == b.latencyMs && a.model == b.model
    }
}

/// One parsed JSONL row, before labels are indexed.
public struct ExampleRow: Sendable, Equatable {
    /// The row's id (the `id` field, or `line-N`).
    public var id: String
    /// The input.
    public var input: ExampleInput
    /// The teacher's answer, when present.
    public var teacher: TeacherAnswer?
    /// The reference label, when present.
    public var gold: String?
    /// The 1-based line the row came from.
    public var line: Int

    /// A row with the given fields.
    public init(id: String, input: ExampleInput, teacher: TeacherAnswer?, gold: String?, line: Int) {
        self.id = id
        self.input = input
        self.teacher = teacher
        self.gold = gold
        self.line = line
    }
}

import RetortNumerics

/// One split of a task, indexed against the task's labels.
public struct SplitData: Sendable {
    /// Split name: train, validation or test.
    public let name: String
    /// The file it came from (for messages).
    public let path: String
    /// Row ids.
    public let ids: [String]
    /// Inputs, one per row.
    public let inputs: [ExampleInput]
    /// Teacher distributions, `rows × labels` (each row sums to 1), or nil when the split has no teacher.
    public let teacherProbabilities: Matrix
    /// The teacher's answer per row (label index).
    public let teacherLabels: [Int]
    /// Gold label per row (label index), nil where the row has none.
    public let gold: [Int?]
    /// Tokens the teacher used per row, where recorded.
    public let teacherUsage: [(input: Int, output: Int)?]
    /// Teacher latency per row in ms, where recorded.
    public let teacherLatencyMs: [Double?]
    /// The model that answered each row, where recorded.
    public let teacherModels: [String?]

    /// Number of rows.
    public var count: Int { ids.count }

    /// Whether any row has gold.
    public var hasGold: Bool { gold.contains { $0 != nil } }

    /// A split from its parts.
    public init(
        name: String, path: String, ids: [String], inputs: [ExampleInput], teacherProbabilities: Matrix,
        teacherLabels: [Int], gold: [Int?], teacherUsage: [(input: Int, output: Int)?] = [],
        teacherLatencyMs: [Double?] = [], teacherModels: [String?] = []
    ) {
        self.teacherModels = teacherModels
        self.name = name
        self.path = path
        self.ids = ids
        self.inputs = inputs
        self.teacherProbabilities = teacherProbabilities
        self.teacherLabels = teacherLabels
        self.gold = gold
        self.teacherUsage = teacherUsage.isEmpty ? Array(repeating: nil, count: ids.count) : teacherUsage
        self.teacherLatencyMs = teacherLatencyMs.isEmpty ? Array(repeating: nil, count: ids.count) : teacherLatencyMs
    }

    /// Text inputs (empty strings for numeric rows).
    public var texts: [String] {
        inputs.map { if case .text(let text) = $0 { text } else { "" } }
    }
}

extension SplitData {
    /// Indexes parsed rows against `vocabulary`, turning teacher answers into full distributions.
    ///
    /// A partial (top-k) distribution spreads its missing mass evenly over the labels it does not list; a full one
    /// is renormalised; a hard label becomes one-hot.
    public static func indexing(
        _ rows: [ExampleRow], name: String, path: String, vocabulary: LabelVocabulary
    ) -> SplitData {
        let k = vocabulary.count
        var probabilities = Matrix(rows: rows.count, columns: k)
        var teacherLabels: [Int] = []
        var gold: [Int?] = []
        for (i, row) in rows.enumerated() {
            let teacher = row.teacher ?? TeacherAnswer(label: row.gold)
            let answer = vocabulary.index(of: teacher.answer) ?? 0
            teacherLabels.append(answer)
            gold.append(row.gold.flatMap { vocabulary.index(of: $0) })
            if let listed = teacher.probabilities {
                var total = 0.0
                // Sorted: Swift's dictionary order changes from process to process, and so would the sum's last bits.
                for (label, p) in listed.sorted(by: { $0.key < $1.key }) {
                    guard let j = vocabulary.index(of: label) else { continue }
                    probabilities[i, j] = Float(p)
                    total += p
                }
                let unlisted = k - listed.count
                if unlisted > 0 && total < 1 {
                    let share = Float((1 - total) / Double(unlisted))
                    for j in 0..<k where listed[vocabulary.labels[j]] == nil { probabilities[i, j] = share }
                } else if total > 0 {
                    for j in 0..<k { probabilities[i, j] = Float(Double(probabilities[i, j]) / total) }
                }
            } else {
                probabilities[i, answer] = 1
            }
        }
        return SplitData(
            name: name, path: path, ids: rows.map(\.id), inputs: rows.map(\.input),
            teacherProbabilities: probabilities, teacherLabels: teacherLabels, gold: gold,
            teacherUsage: rows.map { $0.teacher?.usage }, teacherLatencyMs: rows.map { $0.teacher?.latencyMs },
            teacherModels: rows.map { $0.teacher?.model })
    }
}

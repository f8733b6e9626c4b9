/// The label set of a task: every label seen in `teacher` (answers and distribution keys) and `gold`,
/// in lexicographic order so indices are stable across runs.
public struct LabelVocabulary: Sendable, Equatable, Codable {
    /// Labels by index.
    public let labels: [String]
    private let indexByLabel: [String: Int]

    /// A vocabulary over `labels` (deduplicated and sorted).
    public init(_ labels: some Sequence<String>) {
        self.labels = Array(Set(labels)).sorted()
        var index: [String: Int] = [:]
        for (position, label) in self.labels.enumerated() { index[label] = position }
        indexByLabel = index
    }

    /// A vocabulary that keeps `labels` in the order given (an exported model's labels, indexed by its outputs);
    /// the labels must be distinct.
    public init(inOrder labels: [String]) {
        self.labels = labels
        var index: [String: Int] = [:]
        for (position, label) in labels.enumerated() { index[label] = position }
        indexByLabel = index
    }

    /// Number of labels.
    public var count: Int { labels.count }

    /// The index of `label`, if it is in the set.
    public func index(of label: String) -> Int? { indexByLabel[label] }

    enum CodingKeys: CodingKey { case labels }

    /// Decodes from `{"labels": [...]}`.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(try container.decode([String].self, forKey: .labels))
    }

    /// Encodes as `{"labels": [...]}`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(labels, forKey: .labels)
    }
}

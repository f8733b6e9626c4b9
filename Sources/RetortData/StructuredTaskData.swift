import Foundation
import RetortNumerics

/// One split of a structured task: its rows' inputs and call details, the teacher's answers and the gold objects.
public struct StructuredSplit: Sendable {
    /// The rows as every kind shares them: name, path, ids, text inputs, the teacher's usage, latency and model.
    /// A structured split has no labels: `teacherLabels` and `gold` are empty, `teacherProbabilities` has no
    /// columns.
    public let rows: SplitData
    /// The teacher's answer per row; nil where its text is not one flat JSON object (an invalid teacher answer).
    public let teacher: [StructuredAnswer?]
    /// The teacher's raw text per row, where the row gave the text form.
    public let teacherTexts: [String?]
    /// The gold object per row, nil where the row has none.
    public let gold: [StructuredAnswer?]
    /// The teacher's answer tokens with log-probabilities per row, where the row recorded them.
    public let teacherTokens: [[TeacherToken]?]
    /// The 1-based line of each row in its file.
    public let lines: [Int]

    /// The split of `rows` read from `path`.
    public init(_ rows: [StructuredRow], name: String, path: String) {
        self.rows = SplitData(
            name: name, path: path, ids: rows.map(\.id), inputs: rows.map { .text($0.input) },
            teacherProbabilities: Matrix(rows: rows.count, columns: 0), teacherLabels: [], gold: [],
            teacherUsage: rows.map(\.usage), teacherLatencyMs: rows.map(\.latencyMs), teacherModels: rows.map(\.model))
        teacher = rows.map(\.teacher)
        teacherTexts = rows.map(\.teacherText)
        gold = rows.map(\.gold)
        teacherTokens = rows.map(\.teacherTokens)
        lines = rows.map(\.line)
    }

    /// Split name: train, validation or test.
    public var name: String { rows.name }
    /// The file it came from.
    public var path: String { rows.path }
    /// Number of rows.
    public var count: Int { rows.count }
    /// The text inputs.
    public var texts: [String] { rows.texts }
    /// Rows whose teacher text is not a valid answer (`teacher.invalid_rows` in reports).
    public var invalidTeacherRows: Int { teacher.lazy.filter { $0 == nil }.count }
    /// Whether any row has gold.
    public var hasGold: Bool { gold.contains { $0 != nil } }
}

/// A loaded structured task (FORMATS.md §9): name, teacher, the answers' schema and three splits.
///
/// The schema is task.json's `"schema"` when given (and every gold object must match it), else inferred from the
/// train split's valid teacher answers (``StructuredSchema/inferred(from:)``).
public struct StructuredTaskData: Sendable {
    /// Task name.
    public let name: String
    /// The teacher, after job overrides.
    public let teacher: TeacherInfo
    /// The answers' schema.
    public let schema: StructuredSchema
    /// Whether task.json gave the schema (false: inferred from train).
    public let schemaIsGiven: Bool
    /// Training rows.
    public let train: StructuredSplit
    /// Model-selection rows.
    public let validation: StructuredSplit
    /// Held-out rows.
    public let test: StructuredSplit
    /// The public dataset the task was made from (task.json `dataset`), when it says.
    public let dataset: String?

    /// A task from its parts.
    public init(
        name: String, teacher: TeacherInfo, schema: StructuredSchema, schemaIsGiven: Bool, train: StructuredSplit,
        validation: StructuredSplit, test: StructuredSplit, dataset: String? = nil
    ) {
        self.name = name
        self.dataset = dataset
        self.teacher = teacher
        self.schema = schema
        self.schemaIsGiven = schemaIsGiven
        self.train = train
        self.validation = validation
        self.test = test
    }

    /// The three splits in order.
    public var splits: [StructuredSplit] { [train, validation, test] }

    /// Loads the structured task a job names, reading every split whole; every row must carry `teacher`.
    ///
    /// All splits are read and all their problems reported together. task.json, when there is one, must say
    /// `"kind": "structured"` (a file list without task.json is read as structured, with the schema inferred).
    public static func load(_ job: Job) throws(DataError) -> StructuredTaskData {
        let (urls, taskJSON) = try TaskData.sources(job)
        let info = try taskJSON.map { (url) throws(DataError) in try TaskFile.load(url) }
        if let info, let taskJSON, !info.structured {
            throw DataError(
                .badData,
                "task.json says kind \"\(info.kind?.rawValue ?? "text")\"; a structured task says \"kind\": "
                    + "\"structured\" (FORMATS.md §9)",
                file: taskJSON.relativePath)
        }
        let splits = try TaskData.readSplits(urls) { (url) throws(DataError) in
            try RowReader.readStructured(url, schema: info?.schema)
        }
        let schema: StructuredSchema
        if let given = info?.schema {
            schema = given
        } else {
            let answers = splits[0].compactMap(\.teacher)
            guard !answers.isEmpty else {
                throw DataError(
                    .badData,
                    "no teacher text in train is a valid JSON object, so the schema cannot be inferred; fix the "
                        + "teacher answers or give \"schema\" in task.json",
                    file: urls[0].relativePath)
            }
            schema = StructuredSchema.inferred(from: answers)
        }
        let names = ["train", "validation", "test"]
        let loaded = (0..<3).map { StructuredSplit(splits[$0], name: names[$0], path: urls[$0].relativePath) }
        return StructuredTaskData(
            name: info?.name ?? TaskData.fallbackName(job),
            teacher: job.teacher.applied(to: info?.teacher ?? TeacherInfo(name: "teacher")), schema: schema,
            schemaIsGiven: info?.schema != nil, train: loaded[0], validation: loaded[1], test: loaded[2],
            dataset: info?.dataset)
    }

    /// Loads the structured task folder `folder` with no job overrides.
    public static func load(folder: URL) throws(DataError) -> StructuredTaskData { try load(Job(task: folder)) }
}

import Foundation

/// A loaded task: its kind, labels, teacher description and three indexed splits.
public struct TaskData: Sendable {
    /// Task name.
    public let name: String
    /// Text or numeric.
    public let kind: TaskKind
    /// The label set.
    public let vocabulary: LabelVocabulary
    /// The teacher, after job overrides.
    public let teacher: TeacherInfo
    /// Training rows.
    public let train: SplitData
    /// Model-selection rows.
    public let validation: SplitData
    /// Held-out rows (only the final report reads them).
    public let test: SplitData
    /// Numeric input dimension (0 for text).
    public let inputDimension: Int
    /// The public dataset the task was made from (task.json `dataset`, e.g. `keel:iris`), when it says.
    public let dataset: String?

    /// A task from its parts.
    public init(
        name: String, kind: TaskKind, vocabulary: LabelVocabulary, teacher: TeacherInfo, train: SplitData,
        validation: SplitData, test: SplitData, inputDimension: Int, dataset: String? = nil
    ) {
        self.name = name
        self.dataset = dataset
        self.kind = kind
        self.vocabulary = vocabulary
        self.teacher = teacher
        self.train = train
        self.validation = validation
        self.test = test
        self.inputDimension = inputDimension
    }

    /// Loads the data a job names, reading every split whole before anything is trained.
    ///
    /// Every row of every split must carry `teacher` (validation and test rows are needed to compare the student
    /// with the teacher). All splits are read and all problems reported together.
    public static func load(_ job: Job) throws(DataError) -> TaskData {
        let (urls, taskJSON) = try sources(job)
        if let taskJSON, TaskFile.declaresStructured(taskJSON) {
            throw DataError(
                .badData,
                "a structured task (\"kind\": \"structured\", FORMATS.md §9): Retort reads and scores its rows, but no "
                    + "student family answers structured tasks yet; search a text or numeric task",
                file: taskJSON.relativePath)
        }
        let splits = try readSplits(urls) { (url) throws(DataError) in try RowReader.read(url, requireTeacher: true) }
        let info = try taskJSON.map { (url) throws(DataError) in try TaskFile.load(url) }
        let paths = urls.map(\.relativePath)
        let kinds = splits.map { rows -> TaskKind in
            if case .text = rows[0].input { .text } else { .numeric }
        }
        for index in 1..<3 where kinds[index] != kinds[0] {
            throw DataError(
                .badData,
                "rows are \(kinds[index].rawValue) but \(paths[0]) is \(kinds[0].rawValue); all splits must match",
                file: paths[index], line: splits[index][0].line)
        }
        let kind = kinds[0]
        if let declared = info?.kind, declared != kind {
            throw DataError(
                .badData,
                "task.json says kind \"\(declared.rawValue)\" but the rows are \(kind.rawValue); fix \"kind\"",
                file: taskJSON?.relativePath)
        }
        var dimension = 0
        if case .numeric(let first) = splits[0][0].input {
            dimension = first.count
            for index in 1..<3 {
                if case .numeric(let values) = splits[index][0].input, values.count != dimension {
                    throw DataError(
                        .badData,
                        "input has \(values.count) numbers but \(paths[0]) rows have \(dimension); all splits need the same length",
                        file: paths[index], line: splits[index][0].line)
                }
            }
        }
        var labels: Set<String> = []
        for rows in splits {
            for row in rows {
                if let gold = row.gold { labels.insert(gold) }
                if let teacher = row.teacher {
                    if let label = teacher.label { labels.insert(label) }
                    labels.formUnion(teacher.probabilities?.keys ?? [:].keys)
                }
            }
        }
        guard labels.count >= 2 else {
            throw DataError(
                .badData, "only \(labels.count) label(s) in teacher and gold; a classification task needs at least 2",
                file: paths[0])
        }
        let vocabulary = LabelVocabulary(labels)
        let names = ["train", "validation", "test"]
        let indexed = (0..<3).map {
            SplitData.indexing(splits[$0], name: names[$0], path: paths[$0], vocabulary: vocabulary)
        }
        let baseTeacher = info?.teacher ?? TeacherInfo(name: "teacher")
        return TaskData(
            name: info?.name ?? fallbackName(job), kind: kind, vocabulary: vocabulary,
            teacher: job.teacher.applied(to: baseTeacher),
            train: indexed[0], validation: indexed[1], test: indexed[2], inputDimension: dimension,
            dataset: info?.dataset)
    }
}

extension TaskData {
    /// The train, validation and test files a job names, and the task.json beside them (a task folder's own; for a
    /// file list, the one beside the train file when there is one).
    static func sources(_ job: Job) throws(DataError) -> (splits: [URL], taskJSON: URL?) {
        switch job.data {
        case .task(let folder):
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: folder.path, isDirectory: &isDirectory), isDirectory.boolValue
            else {
                throw DataError(
                    .missingInput,
                    "no such task folder; it must hold train.jsonl, validation.jsonl, test.jsonl and task.json",
                    file: folder.relativePath)
            }
            let splits = ["train", "validation", "test"].map { folder.appendingPathComponent($0 + ".jsonl") }
            return (splits, folder.appendingPathComponent("task.json"))
        case .files(let train, let validation, let test):
            let sibling = train.deletingLastPathComponent().appendingPathComponent("task.json")
            return ([train, validation, test], FileManager.default.fileExists(atPath: sibling.path) ? sibling : nil)
        }
    }

    /// Reads every split with `read`, all of them even when one fails, and throws the splits' errors as one: each
    /// split's error already lists its findings (and how many it left out), so they are kept as they are, the first
    /// leading.
    static func readSplits<Row>(
        _ urls: [URL], _ read: (URL) throws(DataError) -> [Row]
    ) throws(DataError) -> [[Row]] {
        var findings: [DataError] = []
        var splits: [[Row]] = []
        for url in urls {
            do { splits.append(try read(url)) } catch {
                findings.append(error)
                splits.append([])
            }
        }
        guard let first = findings.first else { return splits }
        throw DataError(
            first.code, first.message, file: first.file, line: first.line,
            more: first.more + findings.dropFirst().flatMap { [$0] + $0.more })
    }

    /// The task's name when task.json gives none: the folder's name, or the job's for a file list.
    static func fallbackName(_ job: Job) -> String {
        switch job.data {
        case .task(let folder): folder.standardizedFileURL.lastPathComponent
        case .files: job.name
        }
    }
}

/// task.json (FORMATS.md §2).
public struct TaskFile: Sendable {
    /// Task name.
    public var name: String?
    /// Declared kind of input (`"structured"` declares text inputs).
    public var kind: TaskKind?
    /// Whether task.json says `"kind": "structured"`: answers are JSON objects (FORMATS.md §9), not labels.
    public var structured = false
    /// The answers' schema (`"schema"`, structured tasks only), when given.
    public var schema: StructuredSchema?
    /// The teacher.
    public var teacher: TeacherInfo
    /// The public dataset the rows come from (`"dataset"`, e.g. `keel:iris` or `ha-intents:de`): tasks made from one
    /// dataset share it, so a benchmark can leave a whole dataset out of a history.
    public var dataset: String?

    /// Whether the task `job` names has a task.json saying `"kind": "structured"`, whatever else it holds (false when
    /// it cannot be read as a JSON object: ``load(_:)`` reports that).
    public static func declaresStructured(_ job: Job) -> Bool {
        guard let taskJSON = try? TaskData.sources(job).taskJSON else { return false }
        return declaresStructured(taskJSON)
    }

    /// Whether the task.json at `url` says `"kind": "structured"` (read leniently: an unreadable file is not).
    public static func declaresStructured(_ url: URL) -> Bool {
        guard let data = FileManager.default.contents(atPath: url.path),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return false }
        return object["kind"] as? String == "structured"
    }

    /// Loads and validates task.json.
    public static func load(_ url: URL) throws(DataError) -> TaskFile {
        let path = url.relativePath
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw DataError(
                .missingInput, "no task.json; write {\"name\", \"kind\", \"teacher\": {...}} (FORMATS.md §2)",
                file: path)
        }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw DataError(.badData, "not a valid JSON object", file: path)
        }
        let allowed: Set<String> = ["name", "kind", "teacher", "source", "schema", "dataset"]
        if let unknown = Set(object.keys).subtracting(allowed).sorted().first {
            throw DataError(
                .badData, "unknown key \"\(unknown)\"; allowed: \(allowed.sorted().joined(separator: ", "))", file: path
            )
        }
        var result = TaskFile(name: object["name"] as? String, kind: nil, teacher: TeacherInfo(name: "teacher"))
        if let kind = object["kind"] {
            if let text = kind as? String, text == "structured" {
                result.structured = true
                result.kind = .text
            } else {
                guard let text = kind as? String, let parsed = TaskKind(rawValue: text) else {
                    throw DataError(.badData, "\"kind\" must be \"text\", \"numeric\" or \"structured\"", file: path)
                }
                result.kind = parsed
            }
        }
        if let dataset = object["dataset"] {
            guard let text = dataset as? String, !text.trimmingCharacters(in: .whitespaces).isEmpty else {
                throw DataError(
                    .badData, "\"dataset\" must be a non-empty string naming the source dataset, e.g. \"keel:iris\"",
                    file: path)
            }
            result.dataset = text
        }
        if let schema = object["schema"] {
            guard result.structured else {
                throw DataError(
                    .badData,
                    "\"schema\" describes structured answers; add \"kind\": \"structured\" or remove \"schema\"",
                    file: path)
            }
            result.schema = try StructuredSchema.parse(schema, file: path)
        }
        if let teacher = object["teacher"] {
            guard let fields = teacher as? [String: Any] else {
                throw DataError(.badData, "\"teacher\" must be an object", file: path)
            }
            let teacherKeys: Set<String> = ["name", "params", "latency_ms_p50", "cost_per_1k_requests_usd", "price"]
            if let unknown = Set(fields.keys).subtracting(teacherKeys).sorted().first {
                throw DataError(
                    .badData,
                    "unknown key \"teacher.\(unknown)\"; allowed: \(teacherKeys.sorted().joined(separator: ", "))",
                    file: path)
            }
            func number(
                _ key: String, in dictionary: [String: Any], prefix: String = "teacher.", upTo upper: Double
            ) throws(DataError) -> Double? {
                guard let value = dictionary[key] else { return nil }
                guard RowReader.isNumber(value), let number = value as? NSNumber,
                    NumberRange.nonNegative(upTo: upper).contains(number.doubleValue)
                else {
                    throw DataError(
                        .badData,
                        "\"\(prefix)\(key)\" must be a number in \(NumberRange.nonNegative(upTo: upper).description()), got \(value)",
                        file: path)
                }
                return number.doubleValue
            }
            result.teacher.name = fields["name"] as? String ?? "teacher"
            result.teacher.params = try number("params", in: fields, upTo: 1e15).map { Int($0.rounded()) }
            result.teacher.latencyMsP50 = try number("latency_ms_p50", in: fields, upTo: JobLimits.latencyMs.upper)
            result.teacher.costPer1kRequestsUSD = try number(
                "cost_per_1k_requests_usd", in: fields, upTo: JobLimits.usd.upper)
            if let price = fields["price"] {
                guard let priceFields = price as? [String: Any] else {
                    throw DataError(.badData, "\"teacher.price\" must be an object", file: path)
                }
                result.teacher.inputPerMTokUSD = try number(
                    "input_per_mtok_usd", in: priceFields, prefix: "teacher.price.", upTo: JobLimits.pricePerMTok.upper)
                result.teacher.outputPerMTokUSD = try number(
                    "output_per_mtok_usd", in: priceFields, prefix: "teacher.price.", upTo: JobLimits.pricePerMTok.upper
                )
            }
        }
        return result
    }
}

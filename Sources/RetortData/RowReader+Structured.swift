import Foundation

/// One row of a structured task (FORMATS.md §9): a text input, the teacher's JSON answer and an optional gold object.
public struct StructuredRow: Sendable {
    /// The row's id (the `id` field, or `line-N`).
    public var id: String
    /// The text input.
    public var input: String
    /// The teacher's answer; nil when its `text` is not one flat JSON object (an invalid teacher answer).
    public var teacher: StructuredAnswer?
    /// The teacher's raw `text`, when the row gave the text form.
    public var teacherText: String?
    /// The reference object, when present.
    public var gold: StructuredAnswer?
    /// Tokens the teacher call used (input, output), when recorded.
    public var usage: (input: Int, output: Int)?
    /// Latency of the teacher call in milliseconds, when recorded.
    public var latencyMs: Double?
    /// The model that answered, when recorded.
    public var model: String?
    /// The teacher's answer tokens with their log-probabilities (`teacher.tokens`), when recorded.
    public var teacherTokens: [TeacherToken]?
    /// The 1-based line the row came from.
    public var line: Int

    /// A row with the given fields.
    public init(
        id: String, input: String, teacher: StructuredAnswer?, teacherText: String? = nil,
        gold: StructuredAnswer? = nil, usage: (input: Int, output: Int)? = nil, latencyMs: Double? = nil,
        model: String? = nil, line: Int
    ) {
        self.id = id
        self.input = input
        self.teacher = teacher
        self.teacherText = teacherText
        self.gold = gold
        self.usage = usage
        self.latencyMs = latencyMs
        self.model = model
        self.line = line
    }
}

extension RowReader {
    /// Keys of the teacher's text form: `{"text": "<JSON>", usage, latency_ms, model, tokens}`.
    static let structuredTeacherKeys: Set<String> = ["text", "usage", "latency_ms", "model", "tokens"]

    /// Reads every structured row of `url`; every row must carry `teacher`. Throws one ``DataError`` listing all
    /// findings when any row is bad.
    ///
    /// - Parameter schema: task.json's schema, when it gives one: each gold object must be valid under it.
    /// - Parameter requireTeacher: false for rows to predict (`retort predict`), where the teacher is optional.
    public static func readStructured(
        _ url: URL, schema: StructuredSchema?, requireTeacher: Bool = true
    ) throws(DataError) -> [StructuredRow] {
        try parseStructured(
            try contents(of: url), path: url.relativePath, schema: schema, requireTeacher: requireTeacher)
    }

    /// Parses structured JSONL `data` that came from `path` (used in messages).
    ///
    /// A teacher `text` that is not one flat JSON object makes an invalid teacher answer (`teacher` nil), never an
    /// error. Errors, each `FILE:LINE`, all reported together: a row that is not an object or has unknown keys, an
    /// input that is not a string, a teacher that is a label (a classification row) or neither `{"text": ...}` nor
    /// an object, a teacher object or gold with a nested value, a gold that is not an object or does not match
    /// `schema`, a repeated id.
    ///
    /// A teacher object with a `text` key is the text form; any other object is the answer itself (an answer with a
    /// key of its own named `text` must therefore come in the text form).
    public static func parseStructured(
        _ data: Data, path: String, schema: StructuredSchema?, requireTeacher: Bool = true
    ) throws(DataError) -> [StructuredRow] {
        var rows: [StructuredRow] = []
        var ids = SeenIds()
        let example = #"{"input": "...", "teacher": {"text": "{\"intent\": \"HassTurnOn\"}"}, "gold": {...}}"#
        try forEachObject(in: data, path: path, example: example) { (object, line) throws(RowProblem) in
            let row = try parseStructuredRow(object, line: line, schema: schema, requireTeacher: requireTeacher)
            try ids.insert(row.id, line: line)
            rows.append(row)
        }
        guard !rows.isEmpty else {
            throw DataError(.badData, "no rows; every split needs at least one JSONL row", file: path)
        }
        return rows
    }

    static func parseStructuredRow(
        _ object: [String: Any], line: Int, schema: StructuredSchema?, requireTeacher: Bool
    ) throws(RowProblem) -> StructuredRow {
        let id = try parseID(object, line: line)
        guard let rawInput = object["input"] else { throw RowProblem("missing \"input\"; give the text (a string)") }
        guard let input = rawInput as? String, !isNumber(rawInput) else {
            throw RowProblem("\"input\" must be a string in a structured task, found \(jsonTypeName(rawInput))")
        }
        var row = StructuredRow(id: id, input: input, teacher: nil, line: line)
        if let rawTeacher = object["teacher"], !(rawTeacher is NSNull) {
            try parseStructuredTeacher(rawTeacher, into: &row)
        } else if requireTeacher {
            throw RowProblem(
                "missing \"teacher\"; every row needs the teacher's answer: {\"text\": \"<the JSON it wrote>\"} or the "
                    + "answer object")
        }
        if let rawGold = object["gold"], !(rawGold is NSNull) {
            if rawGold is String {
                throw RowProblem(
                    "\"gold\" is a label string, a classification answer, but this task is structured; give the "
                        + "reference object such as {\"intent\": \"HassTurnOn\"}")
            }
            let gold = try answer(rawGold, named: "\"gold\"")
            if let problem = schema?.problem(in: gold) {
                throw RowProblem("\"gold\" does not match task.json's schema: \(problem)")
            }
            row.gold = gold
        }
        return row
    }

    /// The teacher's answer (the text form, or the object itself) and call details into `row`.
    static func parseStructuredTeacher(_ raw: Any, into row: inout StructuredRow) throws(RowProblem) {
        if raw is String {
            throw RowProblem(
                "\"teacher\" is a label string, a classification answer, but this task is structured; give "
                    + "{\"text\": \"<the JSON the teacher wrote>\"} or the answer object")
        }
        guard let object = raw as? [String: Any] else {
            throw RowProblem(
                "\"teacher\" must be {\"text\": \"<the JSON the teacher wrote>\"} or the answer object, found "
                    + jsonTypeName(raw))
        }
        guard let rawText = object["text"] else {
            if object["probs"] is [String: Any] || object["logprobs"] is [String: Any] {
                throw RowProblem(
                    "\"teacher\" has probs/logprobs, a classification answer, but this task is structured; give "
                        + "{\"text\": \"<the JSON the teacher wrote>\"} or the answer object")
            }
            row.teacher = try answer(object, named: "\"teacher\"")
            return
        }
        let unknown = Set(object.keys).subtracting(structuredTeacherKeys).sorted()
        if !unknown.isEmpty {
            throw RowProblem(
                "unknown teacher key \(unknown.map { "\"\($0)\"" }.joined(separator: ", ")); with \"text\" the teacher "
                    + "has only text, usage, latency_ms, model, tokens")
        }
        guard let text = rawText as? String, !isNumber(rawText) else {
            throw RowProblem(
                "\"teacher.text\" must be a string (the raw output), found \(jsonTypeName(rawText)); give a parsed "
                    + "answer as the teacher object itself")
        }
        if let tokens = object["tokens"] { row.teacherTokens = try parseTokens(tokens) }
        row.teacherText = text
        row.teacher = StructuredAnswer.parse(text: text)
        (row.usage, row.latencyMs, row.model) = try parseCall(object)
    }

    /// `tokens`: an OpenAI `logprobs.content` array, each entry with a string `token`, a number `logprob` ≤ 0 and
    /// optionally `top_logprobs`, an array of entries of the same two keys (`bytes` and other keys are ignored).
    static func parseTokens(_ raw: Any) throws(RowProblem) -> [TeacherToken] {
        guard let entries = raw as? [Any] else {
            throw RowProblem("\"teacher.tokens\" must be an array of {\"token\", \"logprob\", \"top_logprobs\"}")
        }
        /// The token and log-probability of an entry, or nil when either is missing or wrong.
        func pair(_ entry: Any) -> (String, Double)? {
            guard let fields = entry as? [String: Any], let token = fields["token"] as? String,
                !isNumber(fields["token"] as Any), let logprob = fields["logprob"], isNumber(logprob),
                let number = logprob as? NSNumber, number.doubleValue.isFinite, number.doubleValue <= 1e-6
            else { return nil }
            return (token, min(0, number.doubleValue))
        }
        var tokens: [TeacherToken] = []
        for (index, entry) in entries.enumerated() {
            guard let (token, logprob) = pair(entry) else {
                throw RowProblem(
                    "\"teacher.tokens\"[\(index)] must be an object with a string \"token\" and a \"logprob\" ≤ 0")
            }
            var alternatives: [TeacherToken.Alternative] = []
            if let top = (entry as? [String: Any])?["top_logprobs"], !(top is NSNull) {
                guard let list = top as? [Any] else {
                    throw RowProblem(
                        "\"teacher.tokens\"[\(index)].top_logprobs must be an array of {\"token\", \"logprob\"}")
                }
                for (position, alternative) in list.enumerated() {
                    guard let (text, value) = pair(alternative) else {
                        throw RowProblem(
                            "\"teacher.tokens\"[\(index)].top_logprobs[\(position)] must be an object with a string "
                                + "\"token\" and a \"logprob\" ≤ 0")
                    }
                    alternatives.append(.init(token: text, logprob: value))
                }
            }
            tokens.append(TeacherToken(token: token, logprob: logprob, alternatives: alternatives))
        }
        return tokens
    }

    /// A parsed JSON value as an answer, its problems as the row's.
    static func answer(_ raw: Any, named name: String) throws(RowProblem) -> StructuredAnswer {
        do { return try StructuredAnswer(jsonObject: raw, named: name) } catch { throw RowProblem(error.message) }
    }
}

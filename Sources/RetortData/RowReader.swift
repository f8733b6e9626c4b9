import Foundation

/// Reads JSONL example rows (FORMATS.md §1), collecting every problem as `FILE:LINE: what is wrong`.
public enum RowReader {
    static let rowKeys: Set<String> = ["id", "input", "teacher", "gold"]
    static let teacherKeys: Set<String> = ["label", "probs", "logprobs", "usage", "latency_ms", "model"]

    /// Reads every row of `url`. Throws one ``DataError`` listing all findings when any row is bad.
    ///
    /// - Parameters:
    ///   - requireTeacher: whether every row must carry `teacher` (train rows must).
    public static func read(_ url: URL, requireTeacher: Bool) throws(DataError) -> [ExampleRow] {
        try parse(try contents(of: url), path: url.relativePath, requireTeacher: requireTeacher)
    }

    /// The bytes of the rows file at `url`, or a missing-input error naming it.
    static func contents(of url: URL) throws(DataError) -> Data {
        let path = url.relativePath
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), !isDirectory.boolValue else {
            throw DataError(.missingInput, "no such file; check the path in the job or the --task folder", file: path)
        }
        do { return try Data(contentsOf: url) } catch {
            throw DataError(.missingInput, "cannot read: \(FileProblem.reason(error))", file: path)
        }
    }

    /// Parses JSONL `data` that came from `path` (used in messages).
    public static func parse(_ data: Data, path: String, requireTeacher: Bool) throws(DataError) -> [ExampleRow] {
        var rows: [ExampleRow] = []
        var ids = SeenIds()
        var firstNumeric: (count: Int, line: Int)?
        var firstKind: (isText: Bool, line: Int)?
        try forEachObject(in: data, path: path, example: #"{"input": "...", "teacher": "LABEL"}"#) {
            (dictionary, lineNumber) throws(RowProblem) in
            let row = try parseRow(dictionary, line: lineNumber, requireTeacher: requireTeacher)
            try ids.insert(row.id, line: lineNumber)
            switch row.input {
            case .text:
                if let firstKind, !firstKind.isText {
                    throw RowProblem(
                        "input is a string but line \(firstKind.line) has numbers; a file is all text or all numeric")
                }
            case .numeric(let values):
                if let firstKind, firstKind.isText {
                    throw RowProblem(
                        "input is numbers but line \(firstKind.line) has a string; a file is all text or all numeric")
                }
                if let firstNumeric, firstNumeric.count != values.count {
                    throw RowProblem(
                        "input has \(values.count) numbers but line \(firstNumeric.line) has \(firstNumeric.count); every row needs the same length"
                    )
                }
                if firstNumeric == nil { firstNumeric = (values.count, lineNumber) }
            }
            if firstKind == nil {
                if case .text = row.input {
                    firstKind = (true, lineNumber)
                } else {
                    firstKind = (false, lineNumber)
                }
            }
            rows.append(row)
        }
        guard !rows.isEmpty else {
            throw DataError(.badData, "no rows; every split needs at least one JSONL row", file: path)
        }
        return rows
    }

    /// Walks the JSONL lines of `data` (from `path`), skipping blank lines, and hands each line that is one JSON
    /// object with only row keys to `body` with its 1-based line number. Collects every problem, `body`'s included,
    /// as `FILE:LINE: message` and throws them together at the end.
    ///
    /// - Parameter example: a row as the task kind writes it, quoted when a line is not JSON.
    static func forEachObject(
        in data: Data, path: String, example: String, _ body: ([String: Any], Int) throws(RowProblem) -> Void
    ) throws(DataError) {
        var findings: [DataError] = []
        var lineNumber = 0
        var start = data.startIndex
        let newline = UInt8(ascii: "\n")
        while start <= data.endIndex {
            let end = data[start...].firstIndex(of: newline) ?? data.endIndex
            lineNumber += 1
            let lineData = data[start..<end]
            defer { start = end + 1 }
            if lineData.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) {
                if end == data.endIndex { break }
                continue
            }
            func fail(_ message: String) {
                findings.append(DataError(.badData, message, file: path, line: lineNumber))
            }
            guard String(data: lineData, encoding: .utf8) != nil else {
                fail("not valid UTF-8; save the file as UTF-8")
                continue
            }
            let object: Any
            do {
                object = try JSONSerialization.jsonObject(with: Data(lineData), options: [])
            } catch {
                fail("not valid JSON; each line must be one JSON object such as \(example)")
                continue
            }
            guard let dictionary = object as? [String: Any] else {
                fail("expected a JSON object with \"input\" and \"teacher\", found \(jsonTypeName(object))")
                continue
            }
            let unknown = Set(dictionary.keys).subtracting(rowKeys).sorted()
            if !unknown.isEmpty {
                fail(
                    "unknown key \(unknown.map { "\"\($0)\"" }.joined(separator: ", ")); a row has only id, input, teacher, gold"
                )
                continue
            }
            do throws(RowProblem) {
                try body(dictionary, lineNumber)
            } catch {
                fail(error.message)
            }
        }
        if let error = DataError.combined(findings) { throw error }
    }

    /// The ids of a file's rows so far, each with its line: ids must be unique within a file.
    struct SeenIds {
        var lines: [String: Int] = [:]

        /// Records `id` at `line`, or throws naming the line that already used it.
        mutating func insert(_ id: String, line: Int) throws(RowProblem) {
            if let previous = lines[id] {
                throw RowProblem("id \"\(id)\" is already used on line \(previous); ids must be unique within a file")
            }
            lines[id] = line
        }
    }

    struct RowProblem: Error { let message: String; init(_ message: String) { self.message = message } }

    /// The row's `id`, or `line-N`.
    static func parseID(_ object: [String: Any], line: Int) throws(RowProblem) -> String {
        guard let value = object["id"] else { return "line-\(line)" }
        guard let string = value as? String, !isNumber(value) else {
            throw RowProblem("\"id\" must be a string, found \(jsonTypeName(value))")
        }
        return string
    }

    static func parseRow(_ object: [String: Any], line: Int, requireTeacher: Bool) throws(RowProblem) -> ExampleRow {
        let id = try parseID(object, line: line)
        guard let rawInput = object["input"] else {
            throw RowProblem("missing \"input\"; give the text (a string) or the features (an array of numbers)")
        }
        let input: ExampleInput
        if let text = rawInput as? String, !isNumber(rawInput) {
            input = .text(text)
        } else if let array = rawInput as? [Any] {
            guard !array.isEmpty else { throw RowProblem("\"input\" is an empty array; give at least one number") }
            var values: [Float] = []
            values.reserveCapacity(array.count)
            for (index, element) in array.enumerated() {
                guard isNumber(element), let number = element as? NSNumber else {
                    throw RowProblem(
                        "\"input\"[\(index)] is \(jsonTypeName(element)); numeric inputs hold numbers only")
                }
                let value = number.doubleValue
                guard value.isFinite, Float(value).isFinite else {
                    throw RowProblem(
                        "\"input\"[\(index)] is not a finite number; replace NaN/Inf or out-of-range values")
                }
                values.append(Float(value))
            }
            input = .numeric(values)
        } else {
            throw RowProblem("\"input\" must be a string or an array of numbers, found \(jsonTypeName(rawInput))")
        }
        var teacher: TeacherAnswer?
        if let rawTeacher = object["teacher"], !(rawTeacher is NSNull) {
            teacher = try parseTeacher(rawTeacher)
        } else if requireTeacher {
            throw RowProblem(
                "missing \"teacher\"; every row needs the teacher's answer (a label or {\"probs\": {...}})")
        }
        var gold: String?
        if let rawGold = object["gold"], !(rawGold is NSNull) {
            if rawGold is [String: Any] {
                throw RowProblem(
                    "\"gold\" is an object, a structured answer, but this task is classification; give the gold label, "
                        + "or add \"kind\": \"structured\" to task.json if every row answers with an object")
            }
            guard let string = rawGold as? String, !isNumber(rawGold), !string.isEmpty else {
                throw RowProblem("\"gold\" must be a non-empty label string, found \(jsonTypeName(rawGold))")
            }
            gold = string
        }
        return ExampleRow(id: id, input: input, teacher: teacher, gold: gold, line: line)
    }

    static func parseTeacher(_ raw: Any) throws(RowProblem) -> TeacherAnswer {
        if let label = raw as? String, !isNumber(raw) {
            guard !label.isEmpty else { throw RowProblem("\"teacher\" is an empty string; give the teacher's label") }
            return TeacherAnswer(label: label)
        }
        guard let object = raw as? [String: Any] else {
            throw RowProblem(
                "\"teacher\" must be a label string or an object with label/probs/logprobs, found \(jsonTypeName(raw))")
        }
        if object["text"] != nil {
            throw RowProblem(
                "\"teacher\" has \"text\", a structured answer, but this task is classification; give the teacher's "
                    + "label, or add \"kind\": \"structured\" to task.json if every row answers with an object")
        }
        let unknown = Set(object.keys).subtracting(teacherKeys).sorted()
        if !unknown.isEmpty {
            throw RowProblem(
                "unknown teacher key \(unknown.map { "\"\($0)\"" }.joined(separator: ", ")); allowed: label, probs, logprobs, usage, latency_ms, model"
            )
        }
        var answer = TeacherAnswer(label: nil)
        if let rawLabel = object["label"] {
            guard let label = rawLabel as? String, !isNumber(rawLabel), !label.isEmpty else {
                throw RowProblem("\"teacher.label\" must be a non-empty string, found \(jsonTypeName(rawLabel))")
            }
            answer.label = label
        }
        if object["probs"] != nil && object["logprobs"] != nil {
            throw RowProblem("\"teacher\" has both probs and logprobs; give one of them")
        }
        if let rawProbs = object["probs"] {
            answer.probabilities = try parseDistribution(rawProbs, key: "probs", isLog: false)
        } else if let rawLogprobs = object["logprobs"] {
            answer.probabilities = try parseDistribution(rawLogprobs, key: "logprobs", isLog: true)
        }
        if answer.label == nil && answer.probabilities == nil {
            throw RowProblem("\"teacher\" needs \"label\", \"probs\" or \"logprobs\"")
        }
        (answer.usage, answer.latencyMs, answer.model) = try parseCall(object)
        return answer
    }

    /// The teacher call's `usage`, `latency_ms` and `model` (FORMATS.md §1), where recorded.
    static func parseCall(
        _ object: [String: Any]
    ) throws(RowProblem) -> (usage: (input: Int, output: Int)?, latencyMs: Double?, model: String?) {
        var usage: (input: Int, output: Int)?
        var latencyMs: Double?
        var model: String?
        if let rawUsage = object["usage"] {
            guard let fields = rawUsage as? [String: Any],
                let input = fields["input_tokens"].flatMap(nonNegativeInteger),
                let output = fields["output_tokens"].flatMap(nonNegativeInteger),
                Set(fields.keys).isSubset(of: ["input_tokens", "output_tokens"])
            else {
                throw RowProblem(
                    "\"teacher.usage\" must be {\"input_tokens\": N, \"output_tokens\": M} with whole numbers ≥ 0")
            }
            usage = (input, output)
        }
        if let rawLatency = object["latency_ms"] {
            guard isNumber(rawLatency), let number = rawLatency as? NSNumber, number.doubleValue.isFinite,
                number.doubleValue >= 0
            else {
                throw RowProblem("\"teacher.latency_ms\" must be a finite number ≥ 0")
            }
            latencyMs = number.doubleValue
        }
        if let rawModel = object["model"] {
            guard let name = rawModel as? String, !isNumber(rawModel) else {
                throw RowProblem("\"teacher.model\" must be a string")
            }
            model = name
        }
        return (usage, latencyMs, model)
    }

    static func parseDistribution(_ raw: Any, key: String, isLog: Bool) throws(RowProblem) -> [String: Double] {
        guard let object = raw as? [String: Any], !object.isEmpty else {
            throw RowProblem("\"teacher.\(key)\" must be a non-empty object mapping labels to numbers")
        }
        var result: [String: Double] = [:]
        var total = 0.0
        for (label, rawValue) in object {
            guard isNumber(rawValue), let number = rawValue as? NSNumber else {
                throw RowProblem("\"teacher.\(key)\".\"\(label)\" must be a number, found \(jsonTypeName(rawValue))")
            }
            let value = number.doubleValue
            guard value.isFinite else {
                throw RowProblem("\"teacher.\(key)\".\"\(label)\" is not finite; replace NaN/Inf")
            }
            let probability: Double
            if isLog {
                guard value <= 1e-6 else {
                    throw RowProblem(
                        "\"teacher.logprobs\".\"\(label)\" is \(value) > 0; logprobs are natural logs of probabilities")
                }
                probability = exp(min(0, value))
            } else {
                guard value >= 0, value <= 1 + 1e-6 else {
                    throw RowProblem("\"teacher.probs\".\"\(label)\" is \(value); probabilities lie in [0, 1]")
                }
                probability = min(1, value)
            }
            result[label] = probability
            total += probability
        }
        guard total <= 1.01 else {
            throw RowProblem(
                "\"teacher.\(key)\" sums to \(String(format: "%.4f", total)) > 1; probabilities must sum to at most 1")
        }
        return result
    }

    static func nonNegativeInteger(_ value: Any) -> Int? {
        guard isNumber(value), let number = value as? NSNumber else { return nil }
        let double = number.doubleValue
        guard double.isFinite, double >= 0, double == double.rounded(), double < 1e15 else { return nil }
        return Int(double)
    }

    static func isNumber(_ value: Any) -> Bool {
        guard let number = value as? NSNumber else { return false }
        // Booleans bridge to NSNumber too; JSON `true` is not a number.
        return String(cString: number.objCType) != "c" && !(value is String) && type(of: value) != Bool.self
    }

    static func jsonTypeName(_ value: Any) -> String {
        switch value {
        case is NSNull: "null"
        case is String: "a string"
        case is [Any]: "an array"
        case is [String: Any]: "an object"
        case let number as NSNumber where !isNumber(number): "a boolean"
        case is NSNumber: "a number"
        default: "an unsupported value"
        }
    }
}

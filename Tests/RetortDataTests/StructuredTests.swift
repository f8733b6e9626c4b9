import Foundation
import RetortData
import RetortNumerics
import RetortTestSupport
import Testing

/// Structured answers, schemas and structured task folders (FORMATS.md §9).
@Suite struct StructuredTests {
    static let schemaJSON = """
        {"type": "object", "properties": {
          "intent": {"type": "string", "enum": ["HassTurnOn", "HassTurnOff", "HassLightSet"]},
          "area": {"type": "string"}, "brightness": {"type": "integer"}, "volume_step": {}},
         "required": ["intent"]}
        """

    static func taskJSON(schema: String? = schemaJSON) -> String {
        #"{"name": "extract", "kind": "structured", "teacher": {"name": "llm", "latency_ms_p50": 800}"#
            + (schema.map { #", "schema": "# + $0 } ?? "") + "}"
    }

    /// A row line: `teacher` is raw JSON (a quoted text form or an object), `gold` raw JSON or nil.
    static func row(_ id: String, _ input: String, teacher: String, gold: String? = nil) -> String {
        #"{"id": "\#(id)", "input": "\#(input)", "teacher": \#(teacher)"# + (gold.map { #", "gold": "# + $0 } ?? "")
            + "}"
    }

    /// The text form of a teacher answer whose raw output is `output`.
    static func text(_ output: String) -> String {
        let quoted = String(decoding: (try? JSONSerialization.data(withJSONObject: [output])) ?? Data(), as: UTF8.self)
        return #"{"text": "# + quoted.dropFirst().dropLast()
            + #", "usage": {"input_tokens": 400, "output_tokens": 12}, "#
            + #""latency_ms": 812.5, "model": "m"}"#
    }

    func answer(_ json: String) throws -> StructuredAnswer { try #require(StructuredAnswer.parse(text: json)) }

    // MARK: answers

    @Test("equality ignores key order, whitespace and number spelling; a missing key equals null; strings are exact")
    func equality() throws {
        let a = try answer(#"{"intent": "HassLightSet", "area": "Kitchen", "brightness": 40}"#)
        #expect(a == (try answer(#"{ "brightness" : 40.0 , "area":"Kitchen","intent":"HassLightSet" }"#)))
        #expect(a == (try answer(#"{"intent": "HassLightSet", "area": "Kitchen", "brightness": 4e1, "color": null}"#)))
        #expect(a != (try answer(#"{"intent": "HassLightSet", "area": "kitchen", "brightness": 40}"#)))
        #expect(a != (try answer(#"{"intent": "HassLightSet", "area": "Kitchen ", "brightness": 40}"#)))
        #expect(a != (try answer(#"{"intent": "HassLightSet", "area": "Kitchen", "brightness": "40"}"#)))
        #expect(a != (try answer(#"{"intent": "HassLightSet", "area": "Kitchen"}"#)))
        #expect((try answer(#"{"on": true}"#)) != (try answer(#"{"on": 1}"#)))
        #expect((try answer(#"{"on": false}"#)) != (try answer(#"{"on": 0}"#)))
        #expect((try answer(#"{"x": null}"#)) == (try answer("{}")))
        #expect(a.pairs.count == 3)
        #expect((try answer(#"{"intent": "X", "area": null}"#)).pairs == [.init(key: "intent", value: .string("X"))])
    }

    @Test("a teacher text that is not exactly one flat JSON object is invalid, not an error")
    func invalidTexts() throws {
        for text in [
            "", "Sure! Here is the JSON: {\"intent\": \"X\"}", #"{"intent": "Has"#, #"[{"intent": "X"}]"#, "42",
            #""intent""#, #"{"intent": "X", "slots": {"area": "Kitchen"}}"#, #"{"intent": "X", "items": ["a"]}"#,
            #"{"intent": "X"} {"intent": "Y"}"#, "null", #"{"n": 1e400}"#,
        ] {
            #expect(StructuredAnswer.parse(text: text) == nil, "\(text)")
        }
        #expect(StructuredAnswer.parse(text: "  {\"intent\": \"X\"}\n") != nil, "whitespace around is fine")
        #expect(StructuredAnswer.parse(text: "{}")?.fields.isEmpty == true)
    }

    @Test("canonical JSON sorts keys, prints integral numbers without a fraction and escapes strings")
    func canonical() throws {
        let a = try answer(
            #"{"z": 1.50, "a": "say \"hi\"\n", "m": 40.0, "b": true, "n": null, "e": -2e-3, "c": "\u0001\u001f/é"}"#)
        #expect(a.canonicalJSON == #"{"a":"say \"hi\"\n","b":true,"c":"\u0001\u001f/é","e":-0.002,"m":40,"z":1.5}"#)
        #expect(try answer(a.canonicalJSON) == a)
        let line = try JSONSerialization.data(withJSONObject: a.jsonObject, options: [.sortedKeys])
        #expect(try answer(String(decoding: line, as: UTF8.self)) == a)
    }

    @Test("a parsed object with a nested value or a non-object is an error naming the place")
    func parsedObjects() throws {
        let nested = #expect(throws: DataError.self) {
            try StructuredAnswer(jsonObject: ["area": ["name": "Kitchen"]], named: "\"gold\"")
        }
        #expect(nested?.message.contains(#""gold"."area" is an object"#) == true)
        let label = #expect(throws: DataError.self) {
            try StructuredAnswer(jsonObject: "HassTurnOn", named: "\"gold\"")
        }
        #expect(label?.message.contains("found a string") == true)
    }

    // MARK: schema

    @Test("a schema parses the §9 subset; valid checks keys, types, enums and required keys")
    func schemaValidity() throws {
        let schema = try StructuredSchema.parse(
            try JSONSerialization.jsonObject(with: Data(Self.schemaJSON.utf8)), file: "task.json")
        #expect(schema.keys == ["area", "brightness", "intent", "volume_step"])
        #expect(schema.required == ["intent"])
        #expect(schema.isValid(try answer(#"{"intent": "HassLightSet", "brightness": 40.0, "area": "Den"}"#)))
        #expect(schema.isValid(try answer(#"{"intent": "HassTurnOn", "volume_step": "up"}"#)))
        #expect(schema.isValid(try answer(#"{"intent": "HassTurnOn", "volume_step": 5, "area": null}"#)))
        let problems: [(String, String)] = [
            (#"{"intent": "HassTurnOn", "color": "red"}"#, #"unknown key "color""#),
            (#"{"intent": "HassLightSet", "brightness": 40.5}"#, "type is integer"),
            (#"{"intent": "HassLightSet", "brightness": "40"}"#, "type is integer"),
            (#"{"intent": "HassDance"}"#, "enum"),
            (#"{"area": "Den"}"#, #""intent" is required"#),
            (#"{"intent": null}"#, #""intent" is required"#),
            (#"{"intent": "HassTurnOn", "volume_step": true, "area": 3}"#, #""area" is a number"#),
        ]
        for (json, fragment) in problems {
            let problem = schema.problem(in: try answer(json))
            #expect(problem?.contains(fragment) == true, "\(json): \(problem ?? "valid")")
        }
    }

    @Test("a bad schema is an error naming the key in task.json")
    func badSchemas() throws {
        let cases: [(String, String)] = [
            (#"{"type": "array", "properties": {"a": {}}}"#, #""schema.type" must be "object""#),
            (#"{"properties": {"a": {"type": "float"}}}"#, #""schema.properties.a.type" must be"#),
            (#"{"properties": {"a": {"type": "string", "enum": ["x", 3]}}}"#, #""schema.properties.a.enum[1]""#),
            (#"{"properties": {"a": {"enum": []}}}"#, #""schema.properties.a.enum" must be a non-empty"#),
            (
                #"{"properties": {"a": {"type": "string", "format": "date"}}}"#,
                #"unknown key "schema.properties.a.format""#
            ),
            (#"{"properties": {"a": {}}, "required": ["b"]}"#, #""schema.required" names "b""#),
            (#"{"properties": {"a": {}}, "patternProperties": {}}"#, #"unknown key "schema.patternProperties""#),
            (#"{"properties": {}}"#, #""schema.properties" must be a non-empty object"#),
            (#"{"properties": {"a": "string"}}"#, #""schema.properties.a" must be an object"#),
            (#"{"properties": {"a": {"enum": [{"x": 1}]}}}"#, #""schema.properties.a.enum[0]" is an object"#),
            (#"["a"]"#, #""schema" must be a JSON object"#),
        ]
        for (schema, fragment) in cases {
            let task = try RawTask(
                train: [Self.row("a", "x", teacher: Self.text(#"{"a": "x"}"#))], validation: [], test: [],
                taskJSON: Self.taskJSON(schema: schema))
            expectDataError(file: task.path("task.json"), line: nil, mentions: [fragment]) {
                _ = try TaskFile.load(task.url("task.json"))
            }
        }
        let text = try RawTask(
            train: [], validation: [], test: [],
            taskJSON: #"{"kind": "text", "schema": {"properties": {"a": {}}}}"#)
        expectDataError(file: text.path("task.json"), line: nil, mentions: [#"add "kind": "structured""#]) {
            _ = try TaskFile.load(text.url("task.json"))
        }
        let kind = try RawTask(train: [], validation: [], test: [], taskJSON: #"{"kind": "json"}"#)
        expectDataError(file: kind.path("task.json"), line: nil, mentions: [#""structured""#]) {
            _ = try TaskFile.load(kind.url("task.json"))
        }
    }

    @Test("an inferred schema: keys, types, required keys, and closed sets only for values that repeat")
    func inference() throws {
        var generator = SeededGenerator(seed: 23)
        let intents = (0..<40).map { "Intent\($0)" }
        var answers: [StructuredAnswer] = []
        for row in 0..<400 {
            var fields: [String: StructuredValue?] = ["intent": .string(intents[generator.index(below: 40)])]
            if row.isMultiple(of: 2) { fields["item"] = .string("item number \(row)") }
            if row.isMultiple(of: 3) { fields["brightness"] = .number(Double(generator.index(below: 101))) }
            if row.isMultiple(of: 5) { fields["temperature"] = .number(Double(row) / 4) }
            if row.isMultiple(of: 7) { fields["step"] = row.isMultiple(of: 14) ? .string("up") : .number(5) }
            if row.isMultiple(of: 11) { fields["on"] = .bool(row.isMultiple(of: 22)) }
            if row < 10 { fields["rare"] = .string("r") }
            answers.append(StructuredAnswer(fields))
        }
        let schema = StructuredSchema.inferred(from: answers)
        #expect(schema.keys == ["brightness", "intent", "item", "on", "rare", "step", "temperature"])
        #expect(schema.required == ["intent"])
        let intent = try #require(schema.properties["intent"])
        #expect(intent.type == .string && intent.allowed?.count == 40, "40 intents, each seen about 10 times: closed")
        #expect(schema.properties["item"]?.type == .string && schema.properties["item"]?.allowed == nil)
        #expect(schema.properties["brightness"]?.type == .integer)
        #expect(schema.properties["brightness"]?.allowed == nil, "0…100 over 134 rows: many values seen once")
        #expect(schema.properties["temperature"]?.type == .number)
        #expect(schema.properties["step"]?.type == nil && schema.properties["step"]?.allowed?.count == 2)
        #expect(schema.properties["on"]?.type == .boolean && schema.properties["on"]?.allowed == nil)
        #expect(schema.properties["rare"]?.allowed == nil, "10 occurrences are too few to close a set")
        #expect(schema.isValid(answers[0]))
        #expect(!schema.isValid(StructuredAnswer(["intent": .string("Intent99")])))
        #expect(StructuredSchema.inferred(from: []).required.isEmpty)
    }

    // MARK: reading

    @Test("a structured folder loads: answers, gold, call details, invalid teacher texts counted per split")
    func loadsFolder() throws {
        let task = try RawTask(
            train: [
                Self.row(
                    "t1", "dim the kitchen", teacher: Self.text(#"{"intent":"HassLightSet","brightness":40}"#),
                    gold: #"{"intent": "HassLightSet", "brightness": 40.0, "area": null}"#),
                Self.row(
                    "t2", "on", teacher: Self.text("Sure! {\"intent\":\"HassTurnOn\"}"),
                    gold: #"{"intent": "HassTurnOn"}"#),
                "",
                Self.row("t3", "off", teacher: #"{"intent": "HassTurnOff", "area": "Den"}"#),
            ],
            validation: [Self.row("v1", "off", teacher: Self.text(#"{"intent":"HassTurnOff"#))],
            test: [
                Self.row(
                    "s1", "on", teacher: Self.text(#"{"intent":"HassTurnOn"}"#), gold: #"{"intent": "HassTurnOn"}"#)
            ],
            taskJSON: Self.taskJSON())
        let loaded = try StructuredTaskData.load(folder: task.folder)
        #expect(loaded.name == "extract" && loaded.teacher.latencyMsP50 == 800 && loaded.schemaIsGiven)
        #expect(loaded.train.count == 3 && loaded.train.rows.ids == ["t1", "t2", "t3"])
        #expect(loaded.train.lines == [1, 2, 4])
        #expect(loaded.splits.map(\.invalidTeacherRows) == [1, 1, 0])
        #expect(
            loaded.train.teacher[0] == StructuredAnswer(["intent": .string("HassLightSet"), "brightness": .number(40)]))
        #expect(loaded.train.teacher[0] == loaded.train.gold[0])
        #expect(loaded.train.teacher[1] == nil && loaded.train.teacherTexts[1] == "Sure! {\"intent\":\"HassTurnOn\"}")
        #expect(loaded.train.teacher[2]?["area"] == .string("Den") && loaded.train.teacherTexts[2] == nil)
        #expect(loaded.train.gold[2] == nil && loaded.train.hasGold && !loaded.validation.hasGold)
        #expect(loaded.train.rows.teacherUsage[0]?.output == 12 && loaded.train.rows.teacherLatencyMs[0] == 812.5)
        #expect(loaded.train.rows.teacherModels[0] == "m" && loaded.train.texts[0] == "dim the kitchen")
    }

    @Test("without a schema in task.json the train split's valid teacher answers give it")
    func inferredWhenAbsent() throws {
        let train = (0..<40).map { Self.row("t\($0)", "x", teacher: Self.text(#"{"intent": "I\#($0 % 2)"}"#)) }
        let task = try RawTask(
            train: train + [Self.row("bad", "x", teacher: Self.text("{"))], validation: [train[0]], test: [train[1]],
            taskJSON: Self.taskJSON(schema: nil))
        let loaded = try StructuredTaskData.load(folder: task.folder)
        #expect(!loaded.schemaIsGiven && loaded.schema.keys == ["intent"])
        #expect(loaded.schema.properties["intent"]?.allowed == [.string("I0"), .string("I1")])
        #expect(loaded.train.invalidTeacherRows == 1)
        let none = try RawTask(
            train: [Self.row("bad", "x", teacher: Self.text("{"))], validation: [train[0]], test: [train[1]],
            taskJSON: Self.taskJSON(schema: nil))
        expectDataError(file: none.path("train.jsonl"), line: nil, mentions: ["schema cannot be inferred"]) {
            _ = try StructuredTaskData.load(folder: none.folder)
        }
    }

    @Test("every bad structured row is reported at its line, all of a split's problems together")
    func locatedErrors() throws {
        let good = Self.row("ok", "x", teacher: Self.text(#"{"intent": "HassTurnOn"}"#))
        let train = [
            good,
            Self.row(
                "n1", "x", teacher: Self.text(#"{"intent":"HassTurnOn"}"#),
                gold: #"{"intent": "HassTurnOn", "area": {"name": "Den"}}"#),
            Self.row("n2", "x", teacher: Self.text(#"{"intent":"HassTurnOn"}"#), gold: #""HassTurnOn""#),
            Self.row("n3", "x", teacher: #""HassTurnOn""#),
            Self.row("n4", "x", teacher: "[1, 2]"),
            Self.row("n5", "x", teacher: Self.text(#"{"intent":"HassTurnOn"}"#), gold: #"{"intent": "HassDance"}"#),
            Self.row(
                "n6", "x", teacher: Self.text(#"{"intent":"HassTurnOn"}"#),
                gold: #"{"intent": "HassTurnOn", "color": "red"}"#),
            Self.row("n7", "x", teacher: #"{"text": "{}", "label": "HassTurnOn"}"#),
            Self.row("n8", "x", teacher: #"{"intent": "HassTurnOn", "slots": ["a"]}"#),
            #"{"id": "n9", "input": [1, 2], "teacher": {"text": "{}"}}"#,
            #"{"id": "n10", "input": "x", "teacher": {"text": "{}"}, "extra": 1}"#,
            Self.row("ok", "x", teacher: Self.text("{}")),
            Self.row("n12", "x", teacher: #"{"probs": {"HassTurnOn": 0.9}}"#),
            Self.row("n13", "x", teacher: #"{"text": {"intent": "HassTurnOn"}}"#),
            #"{"id": "n14", "input": "x"}"#,
        ]
        let task = try RawTask(
            train: train, validation: [good], test: [Self.row("s", "x", teacher: #"{"text": 5}"#)],
            taskJSON: Self.taskJSON())
        let error = expectDataError(
            file: task.path("train.jsonl"), line: 2, mentions: [#""gold"."area" is an object"#]
        ) { _ = try StructuredTaskData.load(folder: task.folder) }
        let findings = try #require(error.map { [$0] + $0.more })
        let expected: [(String, Int, String)] = [
            ("train.jsonl", 2, #""gold"."area" is an object"#),
            ("train.jsonl", 3, #""gold" is a label string"#),
            ("train.jsonl", 4, #""teacher" is a label string, a classification answer, but this task is structured"#),
            ("train.jsonl", 5, #""teacher" must be {"text""#),
            ("train.jsonl", 6, #""gold" does not match task.json's schema"#),
            ("train.jsonl", 7, #"unknown key "color""#),
            ("train.jsonl", 8, #"unknown teacher key "label""#),
            ("train.jsonl", 9, #""teacher"."slots" is an array"#),
            ("train.jsonl", 10, #""input" must be a string in a structured task"#),
            ("train.jsonl", 11, #"unknown key "extra""#),
            ("train.jsonl", 12, #"id "ok" is already used on line 1"#),
            ("train.jsonl", 13, "probs/logprobs, a classification answer"),
            ("train.jsonl", 14, #""teacher.text" must be a string"#),
            ("train.jsonl", 15, #"missing "teacher""#),
            ("test.jsonl", 1, #""teacher.text" must be a string"#),
        ]
        #expect(findings.count == expected.count)
        for (finding, (file, line, fragment)) in zip(findings, expected) {
            #expect(finding.file == task.path(file) && finding.line == line, "\(finding)")
            #expect(finding.message.contains(fragment), "\(finding) lacks \(fragment)")
        }
    }

    @Test("a structured row in a classification file is an error that says so, at its line")
    func structuredRowInTextTask() throws {
        let label = #"{"id": "a", "input": "x", "teacher": "on", "gold": "on"}"#
        let labelB = #"{"id": "b", "input": "y", "teacher": "off"}"#
        let task = try RawTask(
            train: [label, labelB, Self.row("c", "x", teacher: Self.text(#"{"intent": "on"}"#))],
            validation: [label, #"{"id": "d", "input": "x", "teacher": "on", "gold": {"intent": "on"}}"#],
            test: [label], taskJSON: #"{"name": "t", "kind": "text"}"#)
        let error = expectDataError(
            file: task.path("train.jsonl"), line: 3, mentions: [#""teacher" has "text""#, "classification"]
        ) { _ = try task.load() }
        let gold = try #require(error?.more.first)
        #expect(gold.file == task.path("validation.jsonl") && gold.line == 2)
        #expect(gold.message.contains(#""gold" is an object, a structured answer"#))
    }

    @Test("the classification loader refuses a structured task in one line; the structured loader refuses a text task")
    func kindsAtTheDoor() throws {
        let row = Self.row("a", "x", teacher: Self.text(#"{"intent": "HassTurnOn"}"#))
        let structured = try RawTask(train: [row], validation: [row], test: [row], taskJSON: Self.taskJSON())
        let error = expectDataError(
            file: structured.path("task.json"), line: nil, mentions: ["structured", "no student family"]
        ) { _ = try structured.load() }
        #expect(error?.more.isEmpty == true && error?.description.contains("\n") == false)
        let badSchema = try RawTask(
            train: [row], validation: [row], test: [row], taskJSON: Self.taskJSON(schema: #"{"properties": {}}"#))
        expectDataError(file: badSchema.path("task.json"), line: nil, mentions: ["no student family"]) {
            _ = try badSchema.load()
        }
        let label = #"{"input": "x", "teacher": "on"}"#
        let text = try RawTask(
            train: [label], validation: [label], test: [label], taskJSON: #"{"name": "t", "kind": "text"}"#)
        expectDataError(file: text.path("task.json"), line: nil, mentions: [#"says kind "text""#]) {
            _ = try StructuredTaskData.load(folder: text.folder)
        }
    }
}

import Foundation
import RetortData
import Testing

/// Bad JSONL rows: each is reported as `FILE:LINE` with a message that says what to fix.
@Suite struct RowReaderErrorTests {
    static let good = #"{"id": "ok-1", "input": [1, 2], "teacher": "a", "gold": "a"}"#
    static let path = "data/train.jsonl"

    @Test("a line that is not JSON is reported at its line")
    func malformedJSON() {
        expectDataError(file: Self.path, line: 2, mentions: ["not valid JSON", "one JSON object"]) {
            _ = try parseRows([Self.good, #"{"input": [1, 2], "teacher": "a""#])
        }
    }

    @Test("a line holding a JSON array instead of an object is rejected")
    func arrayInsteadOfObject() {
        expectDataError(file: Self.path, line: 2, mentions: ["expected a JSON object", "an array"]) {
            _ = try parseRows([Self.good, "[1, 2, 3]"])
        }
    }

    @Test("an unknown row key is named, with the keys a row may have")
    func unknownRowKey() {
        expectDataError(file: Self.path, line: 1, mentions: [#"unknown key "label""#, "id, input, teacher, gold"]) {
            _ = try parseRows([#"{"input": [1, 2], "teacher": "a", "label": "a"}"#, Self.good])
        }
    }

    @Test("a row without input says to give text or numbers")
    func missingInput() {
        expectDataError(file: Self.path, line: 3, mentions: [#"missing "input""#]) {
            _ = try parseRows([Self.good, "", #"{"id": "x", "teacher": "a"}"#])
        }
    }

    @Test("an input of the wrong type (a boolean) is rejected and named")
    func inputOfWrongType() {
        expectDataError(
            file: Self.path, line: 1, mentions: [#""input" must be a string or an array of numbers"#, "a boolean"]
        ) {
            _ = try parseRows([#"{"input": true, "teacher": "a"}"#])
        }
    }

    @Test("a non-numeric element in a numeric input is located by index")
    func stringElementInNumericInput() {
        expectDataError(file: Self.path, line: 2, mentions: [#""input"[1]"#, "a string", "numbers only"]) {
            _ = try parseRows([Self.good, #"{"id": "x", "input": [1, "NaN"], "teacher": "a"}"#])
        }
    }

    @Test("a number too large for a 32-bit float is rejected as not finite")
    func outOfRangeNumber() {
        expectDataError(file: Self.path, line: 1, mentions: [#""input"[0]"#, "not a finite number"]) {
            _ = try parseRows([#"{"input": [1e39, 2], "teacher": "a"}"#])
        }
    }

    @Test("numeric rows of different lengths name the line with the first length")
    func numericRowsOfDifferentLengths() {
        expectDataError(file: Self.path, line: 3, mentions: ["3 numbers", "line 1 has 2", "same length"]) {
            _ = try parseRows([
                Self.good, #"{"id": "b", "input": [3, 4], "teacher": "a"}"#,
                #"{"id": "c", "input": [3, 4, 5], "teacher": "a"}"#,
            ])
        }
    }

    @Test("text and numeric rows in one file are rejected")
    func textAndNumericMixed() {
        expectDataError(file: Self.path, line: 2, mentions: ["input is a string", "line 1 has numbers"]) {
            _ = try parseRows([Self.good, #"{"id": "t", "input": "hello", "teacher": "a"}"#])
        }
        expectDataError(file: Self.path, line: 2, mentions: ["input is numbers", "line 1 has a string"]) {
            _ = try parseRows([#"{"id": "t", "input": "hello", "teacher": "a"}"#, Self.good])
        }
    }

    @Test("a train row without teacher is rejected; without requireTeacher it is accepted")
    func missingTeacher() throws {
        let lines = [Self.good, #"{"id": "x", "input": [1, 2], "gold": "a"}"#]
        expectDataError(file: Self.path, line: 2, mentions: [#"missing "teacher""#]) {
            _ = try parseRows(lines)
        }
        let rows = try parseRows(lines, requireTeacher: false)
        #expect(rows.count == 2)
        #expect(rows[1].teacher == nil)
    }

    @Test("a teacher probability outside [0, 1] is rejected")
    func probabilityOutOfRange() {
        expectDataError(file: Self.path, line: 1, mentions: [#""teacher.probs"."a""#, "[0, 1]"]) {
            _ = try parseRows([#"{"input": [1, 2], "teacher": {"probs": {"a": 1.5}}}"#])
        }
        expectDataError(file: Self.path, line: 1, mentions: [#""teacher.probs"."b""#, "[0, 1]"]) {
            _ = try parseRows([#"{"input": [1, 2], "teacher": {"probs": {"a": 0.5, "b": -0.1}}}"#])
        }
    }

    @Test("teacher probabilities that sum to more than 1 are rejected with the sum")
    func probabilitiesSumAboveOne() {
        expectDataError(file: Self.path, line: 1, mentions: ["sums to 1.3000", "at most 1"]) {
            _ = try parseRows([#"{"input": [1, 2], "teacher": {"probs": {"a": 0.7, "b": 0.6}}}"#])
        }
    }

    @Test("a positive logprob is rejected")
    func positiveLogprob() {
        expectDataError(file: Self.path, line: 1, mentions: [#""teacher.logprobs"."a""#, "> 0", "natural logs"]) {
            _ = try parseRows([#"{"input": [1, 2], "teacher": {"logprobs": {"a": 0.5}}}"#])
        }
    }

    @Test("a duplicate id names the line that used it first")
    func duplicateIds() {
        expectDataError(file: Self.path, line: 3, mentions: [#"id "ok-1""#, "line 1", "unique"]) {
            _ = try parseRows([Self.good, #"{"id": "other", "input": [1, 2], "teacher": "a"}"#, Self.good])
        }
    }

    @Test("an empty or blank file is rejected: every split needs rows", arguments: ["", "\n\n", "  \n\t\n"])
    func emptyFile(text: String) {
        expectDataError(file: "data/validation.jsonl", line: nil, mentions: ["no rows"]) {
            _ = try RowReader.parse(Data(text.utf8), path: "data/validation.jsonl", requireTeacher: true)
        }
    }

    @Test("teacher with both probs and logprobs, or with neither, is rejected")
    func teacherObjectShape() {
        expectDataError(file: Self.path, line: 1, mentions: ["both probs and logprobs"]) {
            _ = try parseRows([#"{"input": [1, 2], "teacher": {"probs": {"a": 1}, "logprobs": {"a": 0}}}"#])
        }
        expectDataError(file: Self.path, line: 1, mentions: [#"needs "label", "probs" or "logprobs""#]) {
            _ = try parseRows([#"{"input": [1, 2], "teacher": {"model": "m"}}"#])
        }
        expectDataError(file: Self.path, line: 1, mentions: [#"unknown teacher key "prob""#]) {
            _ = try parseRows([#"{"input": [1, 2], "teacher": {"prob": {"a": 1}}}"#])
        }
    }

    @Test("every bad row of a file is reported, in line order, not only the first")
    func allBadRowsReported() throws {
        let lines = [
            Self.good,
            "not json",  // 2
            #"{"id": "b", "input": [1, 2], "teacher": "a"}"#,
            #"{"id": "c", "input": [1, 2], "teacher": "a", "extra": 1}"#,  // 4
            "",
            #"{"id": "d", "input": [1, "x"], "teacher": "a"}"#,  // 6
            #"{"id": "b", "input": [1, 2], "teacher": "a"}"#,  // 7: duplicate of line 3
        ]
        let error = try #require(
            expectDataError(file: Self.path, line: 2, mentions: ["not valid JSON"]) { _ = try parseRows(lines) })
        #expect(error.more.map(\.line) == [4, 6, 7])
        #expect(error.more.allSatisfy { $0.file == Self.path })
        #expect(error.more.map(\.message).joined().contains(#"unknown key "extra""#))
        #expect(error.more.last?.message.contains("line 3") == true)
        let printed = error.description.split(separator: "\n").map(String.init)
        #expect(printed.count == 4)
        #expect(printed.first?.hasPrefix("data/train.jsonl:2: ") == true)
        #expect(printed.last?.hasPrefix("data/train.jsonl:7: ") == true)
    }

    @Test("past 20 findings the report ends with how many more problems there are")
    func manyBadRowsAreSummarised() throws {
        let lines = (0..<25).map { _ in "{" }
        let error = try #require(
            expectDataError(file: Self.path, line: 1, mentions: ["not valid JSON"]) { _ = try parseRows(lines) })
        #expect(error.more.count == 20)
        #expect(error.more.prefix(19).map(\.line) == Array(2...20))
        #expect(error.more.last?.message.contains("5 more problems") == true)
    }
}

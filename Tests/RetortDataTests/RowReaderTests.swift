import Foundation
import RetortData
import RetortTestSupport
import Testing

/// Valid JSONL rows parse into what the file says (FORMATS.md §1).
@Suite struct RowReaderTests {
    @Test("rows keep their fields; blank lines are skipped but still counted for line numbers")
    func fieldsAndLines() throws {
        let rows = try parseRows([
            #"{"id": "u-1", "input": "turn off the lights", "teacher": "off", "gold": "off"}"#,
            "",
            #"{"input": "turn on", "teacher": {"label": "on", "usage": {"input_tokens": 12, "output_tokens": 3}, "#
                + #""latency_ms": 850, "model": "m-1"}}"#,
            "   ",
        ])
        #expect(rows.count == 2)
        #expect(rows[0].id == "u-1")
        #expect(rows[0].input == .text("turn off the lights"))
        #expect(rows[0].gold == "off")
        #expect(rows[0].line == 1)
        #expect(rows[1].line == 3)
        #expect(rows[1].id == "line-3")
        let teacher = try #require(rows[1].teacher)
        #expect(teacher.answer == "on")
        #expect(teacher.usage?.input == 12)
        #expect(teacher.usage?.output == 3)
        #expect(teacher.latencyMs == 850)
        #expect(teacher.model == "m-1")
    }

    @Test("numeric inputs become floats of the same length")
    func numericInput() throws {
        let rows = try parseRows([#"{"input": [0.12, 3.4, -1.0, 7], "teacher": "B"}"#])
        guard case .numeric(let values) = rows[0].input else {
            Issue.record("expected a numeric input, got \(rows[0].input)")
            return
        }
        let expected: [Float] = [0.12, 3.4, -1.0, 7]
        #expect(values.count == 4)
        #expect(zip(values, expected).allSatisfy { approximatelyEqual($0, $1) })
    }

    @Test("logprobs become probabilities")
    func logprobsConvert() throws {
        let rows = try parseRows([#"{"input": [1], "teacher": {"logprobs": {"a": -0.35667494, "b": -1.60943791}}}"#])
        let probabilities = try #require(rows[0].teacher?.probabilities)
        #expect(approximatelyEqual(Float(try #require(probabilities["a"])), 0.7))
        #expect(approximatelyEqual(Float(try #require(probabilities["b"])), 0.2))
        #expect(rows[0].teacher?.answer == "a")
    }

    @Test("without label the teacher's answer is the most probable listed label")
    func answerIsArgmax() throws {
        let rows = try parseRows([#"{"input": [1], "teacher": {"probs": {"a": 0.2, "b": 0.5, "c": 0.3}}}"#])
        #expect(rows[0].teacher?.label == nil)
        #expect(rows[0].teacher?.answer == "b")
    }
}

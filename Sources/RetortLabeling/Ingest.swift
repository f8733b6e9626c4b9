import Foundation
import RetortData
import RetortTeacher

/// `retort ingest openai-log`: teacher rows from chat-completion logs you already have, without calling any model.
///
/// Reads JSONL lines that are either request/response pairs (`{"request": {...}, "response": {...}}`, as logging
/// proxies and SDK wrappers write them) or OpenAI batch output lines (`{"custom_id", "response": {"status_code",
/// "body"}}`), whose requests come from the batch input file given with `requests`. The answers are labels of a set
/// (rows with `teacher.label`, `logprobs` from the first token's alternatives) or JSON objects (FORMATS.md §9: rows
/// with `teacher.text`, and `tokens` from the answer's `logprobs.content` when the log kept them).
public struct LogIngest: Sendable {
    /// What an ingest wrote and set aside.
    public struct Summary: Sendable {
        /// Lines read.
        public var lines = 0
        /// Rows written.
        public var rows = 0
        /// Rows with logprobs (a structured row: with its tokens' logprobs).
        public var withLogprobs = 0
        /// Answers that are no label, or no JSON object the schema admits (in the `.rejected.jsonl` file).
        public var rejected = 0
        /// Lines without a usable answer (errors, non-200 batch lines).
        public var failed = 0
        /// Rows per answering model.
        public var models: [String: Int] = [:]
    }

    /// What the answers are.
    public let answers: CaptureExport.Answers
    let inputTemplate: String

    /// An ingest of `answers` with the `capture_input`-style template for the row input.
    public init(answers: CaptureExport.Answers, inputTemplate: String = "{{last_user}}") {
        self.answers = answers
        self.inputTemplate = inputTemplate
    }

    /// An ingest with the label set of `labelsPath` and the `capture_input`-style template for the row input.
    public init(labelsPath: String, inputTemplate: String = "{{last_user}}") throws(DataError) {
        self.init(answers: .labels(try LabelMatcher.readLabels(labelsPath)), inputTemplate: inputTemplate)
    }

    static func jsonLines(_ path: String) throws(DataError) -> [(line: Int, value: JSON)] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw DataError(.missingInput, "cannot read the file", file: path)
        }
        var result: [(Int, JSON)] = []
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            guard let value = try? JSON.parse(trimmed), value.object != nil else {
                throw DataError(.badData, "not a JSON object", file: path, line: index + 1)
            }
            result.append((index + 1, value))
        }
        return result
    }

    /// Reads `logPath` (and the batch input `requestsPath`), writes rows to `outPath` whole.
    public func run(logPath: String, requestsPath: String?, outPath: String) throws(DataError) -> Summary {
        var requests: [String: JSON] = [:]
        if let requestsPath {
            for (line, value) in try LogIngest.jsonLines(requestsPath) {
                guard let id = value["custom_id"]?.string, let body = value["body"] else {
                    throw DataError(
                        .badData, "a batch input line needs custom_id and body", file: requestsPath, line: line)
                }
                requests[id] = body
            }
        }
        var summary = Summary()
        var rows: [String] = []
        var rejected: [String] = []
        for (line, value) in try LogIngest.jsonLines(logPath) {
            summary.lines += 1
            let id: String
            let request: JSON
            let completion: JSON
            if let customID = value["custom_id"]?.string {
                id = customID
                guard let body = requests[customID] else {
                    throw DataError(
                        .badData,
                        requestsPath == nil
                            ? "a batch output line: give the batch input file with --requests to know its input"
                            : "custom_id \(customID) is not in the batch input file",
                        file: logPath, line: line)
                }
                request = body
                guard value["response"]?["status_code"]?.int == 200, let body = value["response"]?["body"] else {
                    summary.failed += 1
                    continue
                }
                completion = body
            } else if let body = value["request"], let answer = value["response"] {
                id = value["id"]?.string ?? "log-\(line)"
                request = body
                completion = answer
            } else {
                throw DataError(
                    .badData, "expected {\"request\", \"response\"} or a batch output line with custom_id",
                    file: logPath,
                    line: line)
            }
            guard let answer = completion["choices"]?[0]?["message"]?["content"]?.string else {
                summary.failed += 1
                continue
            }
            let input = CaptureInput.text(inputTemplate, chat: request)
            let model = completion["model"]?.string ?? request["model"]?.string ?? ""
            guard let teacher = teacher(answer: answer, completion: completion, model: model, summary: &summary) else {
                summary.rejected += 1
                rejected.append(Labeler.rejectedLine(id: id, input: input, answer: answer, model: model))
                continue
            }
            rows.append(
                JSON(dictionaryLiteral: ("id", .string(id)), ("input", .string(input)), ("teacher", teacher)).text)
            summary.models[model, default: 0] += 1
            summary.rows += 1
        }
        guard !rows.isEmpty else {
            throw DataError(
                .badData, "no line had a usable answer (every answer was \(answers.rejectedWhat))", file: logPath)
        }
        try Labeler.writeWhole(rows, to: outPath)
        let rejectedPath = Labeler.rejectedPath(for: outPath)
        if !rejected.isEmpty { try Labeler.writeWhole(rejected, to: rejectedPath) }
        return summary
    }

    /// The row's `teacher` for `answer`, nil when it is not one of the answers sought.
    func teacher(answer: String, completion: JSON, model: String, summary: inout Summary) -> JSON? {
        var teacher: JSON
        switch answers {
        case .labels(let labels):
            guard let label = LabelMatcher.label(for: answer, in: labels) else { return nil }
            teacher = ["label": .string(label)]
            if let alternatives = LabelMatcher.firstTokenAlternatives(completion),
                let logprobs = LabelMatcher.logprobs(alternatives, labels: labels)
            {
                teacher["logprobs"] = .object(logprobs.mapValues { JSON.number($0) })
                summary.withLogprobs += 1
            }
        case .structured:
            guard answers.admits(structured: answer) else { return nil }
            teacher = ["text": .string(answer)]
            if let tokens = Labeler.answerTokens(completion) {
                teacher["tokens"] = tokens
                summary.withLogprobs += 1
            }
        }
        let usage = TokenUsage(openAI: completion["usage"] ?? [:])
        teacher["model"] = .string(model)
        teacher["usage"] = [
            "input_tokens": .int(usage.inputUncached + usage.cacheRead + usage.cacheWrite),
            "output_tokens": .int(usage.output),
        ]
        return teacher
    }
}

import Foundation
import GRDB
import RetortData
import RetortTeacher

/// A labelling prompt (FORMATS.md §7).
public struct LabelPrompt: Sendable {
    /// The system message, if any.
    public var system: String?
    /// The user message template: `{{input}}`, `{{labels}}`, `{{id}}`.
    public var user: String
    /// The label set, in the order given.
    public var labels: [String]
    /// Output tokens per answer.
    public var maxTokens: Int
    /// Sampling temperature (nil: the provider's default).
    public var temperature: Double?
    /// Top logprobs to ask for where the deployment has them.
    public var topLogprobs: Int?

    /// Reads and validates `path` (FILE:LINE errors).
    public static func load(_ path: String) throws(DataError) -> LabelPrompt {
        let url = URL(fileURLWithPath: path)
        return try load(try YAMLValue.load(url), at: url)
    }

    /// Validates a prompt already parsed from the file at `url` (a labels_file resolves against it); the fuzzer's
    /// in-memory entry.
    public static func load(_ root: YAMLValue, at url: URL) throws(DataError) -> LabelPrompt {
        let entry = try root.mapping(
            allowed: ["system", "user", "labels", "labels_file", "max_tokens", "temperature", "top_logprobs"],
            required: ["user"]
        )
        let userValue = try entry.need("user")
        let user = try userValue.string()
        var unknown: [String] = []
        var rest = Substring(user)
        while let open = rest.range(of: "{{") {
            guard let close = rest[open.upperBound...].range(of: "}}") else {
                throw userValue.error("a {{ without its }}; placeholders are {{input}}, {{labels}} and {{id}}")
            }
            let name = rest[open.upperBound..<close.lowerBound].trimmingCharacters(in: .whitespaces)
            if !["input", "labels", "id"].contains(name) { unknown.append(name) }
            rest = rest[close.upperBound...]
        }
        guard unknown.isEmpty else {
            throw userValue.error(
                "unknown placeholder {{\(unknown[0])}}; use {{input}}, {{labels}} and {{id}}"
            )
        }
        guard user.contains("{{input}}") else { throw userValue.error("the template never uses {{input}}") }
        var labels: [String] = []
        if let list = entry["labels"] {
            for item in try list.sequence() { labels.append(try item.string()) }
        } else if let fileValue = entry["labels_file"] {
            let name = try fileValue.string()
            let file = name.hasPrefix("/") ? name : url.deletingLastPathComponent().appendingPathComponent(name).path
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw fileValue.error("cannot read the labels file \(file)")
            }
            labels = LabelMatcher.labels(inFile: text)
        } else {
            throw root.error("give the label set as labels: [...] or labels_file: labels.txt")
        }
        guard labels.count >= 2 else { throw root.error("a label set needs at least two labels") }
        var seen: [String: String] = [:]
        for label in labels {
            let key = LabelMatcher.normalize(label)
            if let other = seen[key] {
                throw root.error("labels \"\(other)\" and \"\(label)\" are the same after normalising; keep one")
            }
            seen[key] = label
        }
        let maxTokens = try entry["max_tokens"]?.int(in: 1...1_000_000) ?? 8
        let topLogprobs = try entry["top_logprobs"]?.int(in: 0...20)
        return LabelPrompt(
            system: try entry["system"]?.string(), user: user, labels: labels, maxTokens: maxTokens,
            temperature: try entry["temperature"]?.double(in: NumberRange(0, 2)), topLogprobs: topLogprobs
        )
    }

    /// The chat request for one input (route name as the model).
    public func request(route: String, input: String, id: String, sampling: Bool) -> JSON {
        let text = user.replacingOccurrences(of: "{{labels}}", with: labels.joined(separator: ", "))
            .replacingOccurrences(of: "{{id}}", with: id).replacingOccurrences(of: "{{input}}", with: input)
        var messages: [JSON] = []
        if let system { messages.append(["role": "system", "content": .string(system)]) }
        messages.append(["role": "user", "content": .string(text)])
        var body: JSON = ["model": .string(route), "messages": .array(messages), "max_tokens": .int(maxTokens)]
        if sampling {
            body["temperature"] = 1
        } else {
            if let temperature { body["temperature"] = .number(temperature) }
            if let topLogprobs, topLogprobs > 0 {
                body["logprobs"] = true
                body["top_logprobs"] = .int(topLogprobs)
            }
        }
        return body
    }
}

/// Matches answers and logprob tokens to a label set (FORMATS.md §7).
public enum LabelMatcher {
    /// The labels of a labels file's text: one a line, trimmed, blank lines skipped.
    public static func labels(inFile text: String) -> [String] {
        text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// Reads a labels file (at least two labels, one a line).
    public static func readLabels(_ path: String) throws(DataError) -> [String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw DataError(.missingInput, "cannot read the labels file", file: path)
        }
        let labels = labels(inFile: text)
        guard labels.count >= 2 else { throw DataError(.badData, "need at least two labels, one per line", file: path) }
        return labels
    }

    /// Lower-cased, trimmed of whitespace and surrounding punctuation.
    public static func normalize(_ text: String) -> String {
        text.trimmingCharacters(in: .whitespacesAndNewlines.union(.punctuationCharacters).union(.symbols))
            .lowercased()
    }

    /// The label `answer` names, if any.
    public static func label(for answer: String, in labels: [String]) -> String? {
        let key = normalize(answer)
        return labels.first { normalize($0) == key }
    }

    /// Label log-probabilities from the first answer token's alternatives: a token that is a whole label, or the
    /// start of exactly one label, counts for it (alternatives for one label are summed by log-sum-exp); tokens that
    /// match nothing are dropped (their mass is missing). nil when a token starts several labels (never guess).
    public static func logprobs(_ alternatives: [(token: String, logprob: Double)], labels: [String]) -> [String:
        Double]?
    {
        var result: [String: Double] = [:]
        let normalized = labels.map { ($0, normalize($0)) }
        for alternative in alternatives {
            let token = normalize(alternative.token)
            guard !token.isEmpty else { continue }
            let exact = normalized.filter { $0.1 == token }
            let candidates = exact.isEmpty ? normalized.filter { $0.1.hasPrefix(token) } : exact
            if candidates.count > 1 { return nil }
            guard let label = candidates.first?.0 else { continue }
            if let existing = result[label] {
                let high = max(existing, alternative.logprob)
                result[label] =
                    high + Foundation.log(Foundation.exp(existing - high) + Foundation.exp(alternative.logprob - high))
            } else {
                result[label] = alternative.logprob
            }
        }
        return result.isEmpty ? nil : result
    }

    /// The first answer token's alternatives in an OpenAI chat completion.
    public static func firstTokenAlternatives(_ completion: JSON) -> [(token: String, logprob: Double)]? {
        guard let alternatives = alternatives(inChoice: completion["choices"]?[0]), !alternatives.isEmpty else {
            return nil
        }
        return alternatives
    }

    /// The first token's alternatives in a choice (of an answer, or of a stream chunk), nil when it has none listed.
    package static func alternatives(inChoice choice: JSON?) -> [(token: String, logprob: Double)]? {
        guard let top = choice?["logprobs"]?["content"]?[0]?["top_logprobs"]?.array else { return nil }
        return top.compactMap { item in
            guard let token = item["token"]?.string, let logprob = item["logprob"]?.double else { return nil }
            return (token, logprob)
        }
    }
}

/// The content-addressed answer cache: the same request to the same model is paid once, across runs and crashes.
public final class LabelCache: Sendable {
    let queue: DatabasePool

    /// Opens (creating) the cache at `path`.
    public init(path: String) throws(DataError) {
        try? FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        do {
            var configuration = Configuration()
            configuration.busyMode = .timeout(10)
            configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = NORMAL") }
            queue = try DatabasePool(path: path, configuration: configuration)
            try queue.write { db in
                try db.execute(
                    sql: """
                        CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, model TEXT NOT NULL,
                            body TEXT NOT NULL, cost_usd REAL NOT NULL, tokens INTEGER NOT NULL,
                            latency_ms REAL NOT NULL, time REAL NOT NULL)
                        """)
            }
        } catch {
            throw DataError(.cannotCreateOutput, "cannot open the label cache: \(error)", file: path)
        }
    }

    /// The cache key: SHA-256 of the model and the request body without `stream`/`stream_options` (+ sample index).
    public static func key(model: String, body: JSON, sample: Int?) -> String {
        var request = body
        request["stream"] = nil
        request["stream_options"] = nil
        request["model"] = nil
        let text = model + "\n" + request.text + (sample.map { "\n#sample \($0)" } ?? "")
        return sha256Hex(text)
    }

    /// A cached answer: the OpenAI-shaped completion, its cost, tokens and latency.
    public struct Entry: Sendable {
        /// The model that answered.
        public var model: String
        /// The completion.
        public var body: JSON
        /// What it cost when it was paid.
        public var costUSD: Double
        /// Tokens it used.
        public var tokens: Int
        /// How long it took.
        public var latencyMilliseconds: Double
    }

    /// The entry under `key`, if any.
    public func get(_ key: String) throws -> Entry? {
        try queue.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM answers WHERE key = ?", arguments: [key]) else {
                return nil
            }
            let text: String = row["body"]
            return Entry(
                model: row["model"], body: (try? JSON.parse(text)) ?? .null, costUSD: row["cost_usd"],
                tokens: row["tokens"], latencyMilliseconds: row["latency_ms"])
        }
    }

    /// Commits `entry` under `key` (before the worker sends its next request).
    public func put(_ key: String, _ entry: Entry) throws {
        try queue.write { db in
            try db.execute(
                sql:
                    "INSERT OR REPLACE INTO answers (key, model, body, cost_usd, tokens, latency_ms, time) VALUES (?, ?, ?, ?, ?, ?, ?)",
                arguments: [
                    key, entry.model, entry.body.text, entry.costUSD, entry.tokens, entry.latencyMilliseconds,
                    Date().timeIntervalSince1970,
                ])
        }
    }
}

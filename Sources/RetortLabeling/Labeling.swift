import Foundation
import RetortData
import RetortTeacher
import Yams

/// A labelling prompt (FORMATS.md §7): a label set, or a JSON schema for a structured task (FORMATS.md §9).
public struct LabelPrompt: Sendable {
    /// The system message, if any (`{{schema}}` expands in it for a structured prompt).
    public var system: String?
    /// The user message template: `{{input}}`, `{{labels}}` (or `{{schema}}`), `{{id}}`.
    public var user: String
    /// The label set, in the order given (empty for a structured prompt).
    public var labels: [String]
    /// A structured prompt's schema: answers are flat JSON objects checked against it.
    public var schema: Schema?
    /// Output tokens per answer.
    public var maxTokens: Int
    /// Sampling temperature (nil: the provider's default).
    public var temperature: Double?
    /// Top logprobs to ask for where the deployment has them.
    public var topLogprobs: Int?

    /// The schema of a structured prompt: as read (for the request and `{{schema}}`) and as checked.
    public struct Schema: Sendable {
        /// The schema as JSON (keys sorted).
        public var json: JSON
        /// Its compact text (what `{{schema}}` expands to).
        public var text: String
        /// The subset of JSON Schema FORMATS.md §9 reads, to check answers with.
        public var checked: StructuredSchema

        /// Whether OpenAI's strict structured outputs take it as it is: `additionalProperties: false` and every
        /// property required.
        public var isStrict: Bool {
            json["additionalProperties"]?.bool == false && checked.required == Set(checked.properties.keys)
        }

        /// The request's `response_format` (strict where the schema allows it; see ``isStrict``).
        public var responseFormat: JSON {
            [
                "type": "json_schema",
                "json_schema": ["name": "answer", "schema": json, "strict": .bool(isStrict)],
            ]
        }

        /// Reads a schema already parsed into a Foundation value (a JSON object), checked as task.json's `"schema"`.
        public static func make(_ raw: Any, file: String) throws(DataError) -> Schema {
            let checked = try StructuredSchema.parse(raw, file: file)
            let options: JSONSerialization.WritingOptions = [.sortedKeys, .withoutEscapingSlashes]
            guard JSONSerialization.isValidJSONObject(raw),
                let data = try? JSONSerialization.data(withJSONObject: raw, options: options),
                let text = String(data: data, encoding: .utf8), let json = try? JSON.parse(text)
            else {
                throw DataError(.badData, "the schema holds a value JSON cannot write (a date, NaN)", file: file)
            }
            return Schema(json: json, text: text, checked: checked)
        }
    }

    /// Whether answers are JSON objects (a `schema`) rather than labels.
    public var isStructured: Bool { schema != nil }

    /// Reads and validates `path` (FILE:LINE errors).
    public static func load(_ path: String) throws(DataError) -> LabelPrompt {
        let url = URL(fileURLWithPath: path)
        return try load(try YAMLValue.load(url), at: url)
    }

    /// Validates a prompt already parsed from the file at `url` (a labels_file or schema_file resolves against it); the
    /// fuzzer's in-memory entry.
    public static func load(_ root: YAMLValue, at url: URL) throws(DataError) -> LabelPrompt {
        let entry = try root.mapping(
            allowed: [
                "system", "user", "labels", "labels_file", "schema", "schema_file", "max_tokens", "temperature",
                "top_logprobs",
            ],
            required: ["user"]
        )
        let given = ["labels", "labels_file", "schema", "schema_file"].filter { entry[$0] != nil }
        if given.count > 1, let second = entry[given[1]] {
            throw second.error(
                "give exactly one of labels, labels_file (a label task) or schema, schema_file (a structured task); "
                    + "this prompt has \(given.joined(separator: " and "))")
        }
        let structured = entry["schema"] != nil || entry["schema_file"] != nil
        let placeholders = structured ? ["input", "schema", "id"] : ["input", "labels", "id"]
        let listed = "{{input}}, " + (structured ? "{{schema}}" : "{{labels}}") + " and {{id}}"
        let userValue = try entry.need("user")
        let user = try userValue.string()
        var unknown: [String] = []
        var rest = Substring(user)
        while let open = rest.range(of: "{{") {
            guard let close = rest[open.upperBound...].range(of: "}}") else {
                throw userValue.error("a {{ without its }}; placeholders are \(listed)")
            }
            let name = rest[open.upperBound..<close.lowerBound].trimmingCharacters(in: .whitespaces)
            if !placeholders.contains(name) { unknown.append(name) }
            rest = rest[close.upperBound...]
        }
        if let first = unknown.first {
            let hint =
                first == "labels" && structured
                ? " (a structured prompt has a schema, not labels)"
                : first == "schema" && !structured ? " (give schema: or schema_file: for a structured task)" : ""
            throw userValue.error("unknown placeholder {{\(first)}}\(hint); use \(listed)")
        }
        guard user.contains("{{input}}") else { throw userValue.error("the template never uses {{input}}") }
        var labels: [String] = []
        var schema: Schema?
        if let list = entry["labels"] {
            for item in try list.sequence() { labels.append(try item.string()) }
        } else if let fileValue = entry["labels_file"] {
            let name = try fileValue.string()
            let file = name.hasPrefix("/") ? name : url.deletingLastPathComponent().appendingPathComponent(name).path
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw fileValue.error("cannot read the labels file \(file)")
            }
            labels = LabelMatcher.labels(inFile: text)
        } else if let inline = entry["schema"] {
            let raw = try plainValue(inline)
            do { schema = try Schema.make(raw, file: inline.file) } catch {
                throw DataError(.badData, error.message, file: inline.file, line: inline.line)
            }
        } else if let fileValue = entry["schema_file"] {
            let name = try fileValue.string()
            let file = name.hasPrefix("/") ? name : url.deletingLastPathComponent().appendingPathComponent(name).path
            guard let data = FileManager.default.contents(atPath: file) else {
                throw fileValue.error("cannot read the schema file \(file)")
            }
            let raw: Any
            do { raw = try JSONSerialization.jsonObject(with: data) } catch {
                throw DataError(
                    .badData, "not valid JSON (\(FileProblem.reason(error))); write the schema as one JSON object",
                    file: file)
            }
            schema = try Schema.make(raw, file: file)
        } else {
            throw root.error(
                "give the label set as labels: [...] or labels_file: labels.txt, or a structured task's schema as "
                    + "schema: {...} or schema_file: schema.json")
        }
        if schema == nil {
            guard labels.count >= 2 else { throw root.error("a label set needs at least two labels") }
            var seen: [String: String] = [:]
            for label in labels {
                let key = LabelMatcher.normalize(label)
                if let other = seen[key] {
                    throw root.error("labels \"\(other)\" and \"\(label)\" are the same after normalising; keep one")
                }
                seen[key] = label
            }
        }
        let maxTokens = try entry["max_tokens"]?.int(in: 1...1_000_000) ?? (schema == nil ? 8 : 256)
        let topLogprobs = try entry["top_logprobs"]?.int(in: 0...20)
        return LabelPrompt(
            system: try entry["system"]?.string(), user: user, labels: labels, schema: schema, maxTokens: maxTokens,
            temperature: try entry["temperature"]?.double(in: NumberRange(0, 2)), topLogprobs: topLogprobs
        )
    }

    /// A YAML node as the Foundation value JSON would parse to (mappings with string keys, lists, strings, numbers,
    /// booleans, null), or an error at the node.
    static func plainValue(_ value: YAMLValue) throws(DataError) -> Any {
        switch value.node {
        case .mapping(let mapping):
            var object: [String: Any] = [:]
            for (key, child) in mapping {
                guard case .scalar(let scalar) = key else { throw value.error("a mapping key must be a plain name") }
                let path = value.path.isEmpty ? scalar.string : value.path + "." + scalar.string
                object[scalar.string] = try plainValue(YAMLValue(node: child, file: value.file, path: path))
            }
            return object
        case .sequence(let sequence):
            var items: [Any] = []
            for (index, child) in sequence.enumerated() {
                items.append(
                    try plainValue(YAMLValue(node: child, file: value.file, path: value.path + "[\(index)]")))
            }
            return items
        case .scalar(let scalar):
            switch Tag.Name(rawValue: value.node.tag.rawValue) {
            case .null: return NSNull()
            case .bool: if let flag = value.node.bool { return flag }
            case .int: if let number = value.node.int { return number }
            case .float:
                if let number = value.node.float, number.isFinite { return number }
                throw value.error("\(scalar.string) is not a finite number")
            default: break
            }
            return scalar.string
        case .alias: throw value.error("YAML aliases are not read here; write the value out")
        }
    }

    /// The chat request for one input (route name as the model).
    /// A structured prompt asks for `response_format` (a JSON schema), which OpenAI-compatible deployments take and
    /// an Anthropic deployment does not (the prompt alone carries the schema there).
    public func request(route: String, input: String, id: String, sampling: Bool) -> JSON {
        var text = user
        if let schema {
            text = text.replacingOccurrences(of: "{{schema}}", with: schema.text)
        } else {
            text = text.replacingOccurrences(of: "{{labels}}", with: labels.joined(separator: ", "))
        }
        text = text.replacingOccurrences(of: "{{id}}", with: id).replacingOccurrences(of: "{{input}}", with: input)
        var messages: [JSON] = []
        if var system {
            if let schema { system = system.replacingOccurrences(of: "{{schema}}", with: schema.text) }
            messages.append(["role": "system", "content": .string(system)])
        }
        messages.append(["role": "user", "content": .string(text)])
        var body: JSON = ["model": .string(route), "messages": .array(messages), "max_tokens": .int(maxTokens)]
        if let schema { body["response_format"] = schema.responseFormat }
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
/// A SQLite file beside the config, or the tables `answers` and `batches` of a PostgreSQL ledger (shared by every
/// machine that labels through it).
public final class LabelCache: Sendable {
    let database: any LedgerDatabase

    /// Opens (creating) the SQLite cache at `path`.
    public init(path: String) throws(DataError) {
        do {
            let sqlite = try Ledger.openSQLite(path: path, busyTimeout: 10)
            try sqlite.execute(
                """
                CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, model TEXT NOT NULL,
                    body TEXT NOT NULL, cost_usd REAL NOT NULL, tokens INTEGER NOT NULL,
                    latency_ms REAL NOT NULL, time REAL NOT NULL)
                """, [])
            database = sqlite
        } catch {
            throw DataError(.cannotCreateOutput, "cannot open the label cache: \(error)", file: path)
        }
    }

    /// The cache in `ledger`'s PostgreSQL database, or the SQLite file at `path` for a SQLite ledger.
    public convenience init(ledger: Ledger, path: String) throws(DataError) {
        if ledger.isShared {
            self.init(database: ledger.database)
        } else {
            try self.init(path: path)
        }
    }

    init(database: any LedgerDatabase) { self.database = database }

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
        guard let row = try database.query("SELECT * FROM answers WHERE key = ?", [.text(key)]).first else {
            return nil
        }
        return Entry(
            model: row.string("model"), body: (try? JSON.parse(row.string("body"))) ?? .null,
            costUSD: row.double("cost_usd"), tokens: row.int("tokens"), latencyMilliseconds: row.double("latency_ms"))
    }

    /// Commits `entry` under `key` (before the worker sends its next request).
    public func put(_ key: String, _ entry: Entry) throws {
        try database.execute(
            """
            INSERT INTO answers (key, model, body, cost_usd, tokens, latency_ms, time) VALUES (?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (key) DO UPDATE SET model = excluded.model, body = excluded.body, cost_usd = excluded.cost_usd,
                tokens = excluded.tokens, latency_ms = excluded.latency_ms, time = excluded.time
            """,
            [
                .text(key), .text(entry.model), .text(entry.body.text), .real(entry.costUSD), .integer(entry.tokens),
                .real(entry.latencyMilliseconds), .real(Date().timeIntervalSince1970),
            ])
    }
}

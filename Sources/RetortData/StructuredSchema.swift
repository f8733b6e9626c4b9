import Foundation

/// The shape of a structured task's answers (FORMATS.md §9): the JSON Schema subset task.json's `"schema"` carries, or
/// the schema inferred from the train split's valid teacher answers.
///
/// ```json
/// {"type": "object",
///  "properties": {"intent": {"type": "string", "enum": ["HassTurnOn", "HassTurnOff"]},
///                 "brightness": {"type": "integer"}, "volume_step": {}},
///  "required": ["intent"]}
/// ```
///
/// An answer is valid under the schema (``isValid(_:)``) when every key is a listed property, every value has its
/// property's type and lies in its `enum` when there is one, and every required key has a (non-null) value.
public struct StructuredSchema: Sendable, Equatable {
    /// A property's JSON type.
    public enum ValueType: String, Sendable, CaseIterable {
        /// A JSON string.
        case string
        /// Any finite JSON number.
        case number
        /// A number with an integral value (`40` and `40.0` both are).
        case integer
        /// `true` or `false`.
        case boolean

        /// Whether `value` has this type.
        public func admits(_ value: StructuredValue) -> Bool {
            switch (self, value) {
            case (.string, .string), (.number, .number), (.boolean, .bool): true
            case (.integer, .number(let number)): number == number.rounded()
            default: false
            }
        }
    }

    /// What one key may hold.
    public struct Property: Sendable, Equatable {
        /// The type; nil takes any scalar (a string, a number or a boolean).
        public var type: ValueType?
        /// The closed set of values (JSON Schema `enum`), sorted; nil when any value of the type is allowed.
        public var allowed: [StructuredValue]?

        /// A property of `type`, restricted to `allowed` when given.
        public init(type: ValueType?, allowed: [StructuredValue]? = nil) {
            self.type = type
            self.allowed = allowed.map { Array(Set($0)).sorted() }
        }

        /// Whether `value` has the type and lies in the closed set.
        public func admits(_ value: StructuredValue) -> Bool {
            (type?.admits(value) ?? true) && (allowed?.contains(value) ?? true)
        }
    }

    /// The properties by key.
    public var properties: [String: Property]
    /// The keys every answer must give a non-null value.
    public var required: Set<String>

    /// A schema from its parts.
    public init(properties: [String: Property], required: Set<String> = []) {
        self.properties = properties
        self.required = required
    }

    /// The property keys, sorted.
    public var keys: [String] { properties.keys.sorted() }

    /// Whether `answer` is an object under this schema.
    public func isValid(_ answer: StructuredAnswer) -> Bool { problem(in: answer) == nil }

    /// Why `answer` is not valid under this schema (the first reason, keys in sorted order), or nil when it is.
    public func problem(in answer: StructuredAnswer) -> String? {
        for (key, value) in answer.fields.sorted(by: { $0.key < $1.key }) {
            guard let property = properties[key] else {
                return "unknown key \"\(key)\"; the schema lists \(keys.map { "\"\($0)\"" }.joined(separator: ", "))"
            }
            if let type = property.type, !type.admits(value) {
                return "\"\(key)\" is \(value.typeName) (\(value)) but the schema's type is \(type.rawValue)"
            }
            if let allowed = property.allowed, !allowed.contains(value) {
                return "\"\(key)\" is \(value), not one of the schema's enum (\(Self.listed(allowed)))"
            }
        }
        if let missing = required.sorted().first(where: { answer[$0] == nil }) {
            return "\"\(missing)\" is required by the schema but missing or null"
        }
        return nil
    }

    static func listed(_ values: [StructuredValue]) -> String {
        let shown = values.prefix(8).map(\.description).joined(separator: ", ")
        return values.count > 8 ? shown + ", … \(values.count - 8) more" : shown
    }
}

extension StructuredSchema {
    /// Fewest occurrences of a key before its observed values may be taken as a closed set.
    public static let minimumClosedOccurrences = 30
    /// Largest Good–Turing estimate of the chance that a key's next value is one never seen, for a closed set.
    public static let maximumUnseenShare = 0.01

    /// The schema the train split's valid teacher answers imply (task.json gives none).
    ///
    /// - Keys: every key some answer gives a non-null value.
    /// - Types: `boolean`, `integer` (every number integral), `number` or `string` when every value of the key has that
    ///   type; no type (any scalar) when the values mix types.
    /// - Required: the keys every answer gives (none when there are no answers).
    /// - Closed sets: a key's observed values become its `enum` when new values look rare. With N occurrences of the
    ///   key and N₁ of them values seen exactly once, Good–Turing estimates the chance that the next occurrence is a
    ///   value never seen as N₁/N (Good 1953); the set is closed when N ≥ ``minimumClosedOccurrences`` and
    ///   N₁/N ≤ ``maximumUnseenShare``. A category keeps repeating its few values and closes; a free span or a free
    ///   number keeps meeting new ones and stays open. A cap on the count of distinct values would not tell these
    ///   apart: in ha-extract's train split the 42 intents (4204 occurrences, none seen once) close, while 31 search
    ///   queries (93 occurrences, 11 seen once) and 26 brightness values (36, 22 seen once) stay open. Booleans get
    ///   no enum (the type already closes them).
    public static func inferred(from answers: some Sequence<StructuredAnswer>) -> StructuredSchema {
        var counts: [String: [StructuredValue: Int]] = [:]
        var answerCount = 0
        var everywhere: Set<String>?
        for answer in answers {
            answerCount += 1
            let keys = Set(answer.fields.keys)
            everywhere = everywhere.map { $0.intersection(keys) } ?? keys
            for (key, value) in answer.fields { counts[key, default: [:]][value, default: 0] += 1 }
        }
        var properties: [String: Property] = [:]
        for (key, values) in counts {
            let distinct = Array(values.keys)
            let type: ValueType?
            if distinct.allSatisfy({ ValueType.boolean.admits($0) }) {
                type = .boolean
            } else if distinct.allSatisfy({ ValueType.integer.admits($0) }) {
                type = .integer
            } else if distinct.allSatisfy({ ValueType.number.admits($0) }) {
                type = .number
            } else if distinct.allSatisfy({ ValueType.string.admits($0) }) {
                type = .string
            } else {
                type = nil
            }
            let occurrences = values.values.reduce(0, +)
            let seenOnce = values.values.filter { $0 == 1 }.count
            let closed =
                type != .boolean && occurrences >= minimumClosedOccurrences
                && Double(seenOnce) <= maximumUnseenShare * Double(occurrences)
            properties[key] = Property(type: type, allowed: closed ? distinct : nil)
        }
        return StructuredSchema(properties: properties, required: answerCount > 0 ? everywhere ?? [] : [])
    }

    /// The schema in task.json's `"schema"` (already parsed JSON), checked against the subset FORMATS.md §9 reads.
    ///
    /// - Throws: ``DataError`` at `file` naming the key at fault (`"schema.properties.x.type" must be ...`).
    public static func parse(_ raw: Any, file: String) throws(DataError) -> StructuredSchema {
        func fail(_ message: String) -> DataError { DataError(.badData, message, file: file) }
        guard let object = raw as? [String: Any] else {
            throw fail(
                "\"schema\" must be a JSON object such as {\"type\": \"object\", \"properties\": {\"intent\": "
                    + "{\"type\": \"string\"}}}, found \(RowReader.jsonTypeName(raw))")
        }
        let topKeys: Set<String> = [
            "$schema", "type", "properties", "required", "additionalProperties", "title",
            "description",
        ]
        if let unknown = Set(object.keys).subtracting(topKeys).sorted().first {
            throw fail("unknown key \"schema.\(unknown)\"; allowed: \(topKeys.sorted().joined(separator: ", "))")
        }
        if let type = object["type"], (type as? String) != "object" || RowReader.isNumber(type) {
            throw fail("\"schema.type\" must be \"object\": an answer is one flat JSON object")
        }
        if let additional = object["additionalProperties"],
            RowReader.isNumber(additional) || (additional as? Bool) != false
        {
            throw fail(
                "\"schema.additionalProperties\" must be false (answers hold only the listed properties) or left out")
        }
        guard let rawProperties = object["properties"] as? [String: Any], !rawProperties.isEmpty else {
            throw fail("\"schema.properties\" must be a non-empty object mapping each key to {\"type\": ...}")
        }
        var properties: [String: Property] = [:]
        for (key, rawProperty) in rawProperties.sorted(by: { $0.key < $1.key }) {
            properties[key] = try property(rawProperty, at: "schema.properties.\(key)", fail: fail)
        }
        var required: Set<String> = []
        if let rawRequired = object["required"] {
            guard let names = rawRequired as? [Any], names.allSatisfy({ $0 is String && !RowReader.isNumber($0) })
            else {
                throw fail("\"schema.required\" must be an array of property names")
            }
            for case let name as String in names {
                guard properties[name] != nil else {
                    throw fail(
                        "\"schema.required\" names \"\(name)\", which \"schema.properties\" does not list; add it "
                            + "there or remove it")
                }
                required.insert(name)
            }
        }
        return StructuredSchema(properties: properties, required: required)
    }

    private static func property(
        _ raw: Any, at place: String, fail: (String) -> DataError
    ) throws(DataError) -> Property {
        guard let fields = raw as? [String: Any] else {
            throw fail("\"\(place)\" must be an object such as {\"type\": \"string\"} ({} takes any scalar)")
        }
        let allowedKeys: Set<String> = ["type", "enum", "title", "description"]
        if let unknown = Set(fields.keys).subtracting(allowedKeys).sorted().first {
            throw fail("unknown key \"\(place).\(unknown)\"; allowed: \(allowedKeys.sorted().joined(separator: ", "))")
        }
        var type: ValueType?
        if let rawType = fields["type"] {
            guard let name = rawType as? String, !RowReader.isNumber(rawType), let parsed = ValueType(rawValue: name)
            else {
                throw fail(
                    "\"\(place).type\" must be \"string\", \"number\", \"integer\" or \"boolean\" (leave it out for "
                        + "any scalar), found \(rawType)")
            }
            type = parsed
        }
        var allowed: [StructuredValue]?
        if let rawEnum = fields["enum"] {
            guard let items = rawEnum as? [Any], !items.isEmpty else {
                throw fail("\"\(place).enum\" must be a non-empty array of the values allowed")
            }
            var values: [StructuredValue] = []
            for (index, item) in items.enumerated() {
                let value: StructuredValue?
                do { value = try StructuredAnswer.value(item, at: "\"\(place).enum[\(index)]\"") } catch {
                    throw fail(error.message)
                }
                guard let value else { continue }
                if let type, !type.admits(value) {
                    throw fail("\"\(place).enum[\(index)]\" is \(value.typeName) but the type is \(type.rawValue)")
                }
                values.append(value)
            }
            guard !values.isEmpty else { throw fail("\"\(place).enum\" lists only null; list the values allowed") }
            allowed = values
        }
        return Property(type: type, allowed: allowed)
    }
}

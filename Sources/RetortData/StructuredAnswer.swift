import Foundation

/// One value of a structured answer (FORMATS.md §9): a string, a number or a boolean. JSON `null` is no value: the
/// answer leaves the key out, since a missing key equals `null`.
///
/// Numbers compare by value, so `40`, `40.0` and `4e1` are the same number; strings compare as Swift strings (exactly,
/// with no case folding or trimming); `true` and `1` differ.
public enum StructuredValue: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// A JSON string.
    case string(String)
    /// A finite JSON number.
    case number(Double)
    /// A JSON boolean.
    case bool(Bool)

    /// The value as canonical JSON: a number with an integral value below 2^53 without a fraction (`40`), any other
    /// number in Swift's shortest round-trip form, a string with JSON escapes.
    public var description: String {
        switch self {
        case .string(let text): Self.quoted(text)
        case .number(let number):
            if let integer = Self.integer(number) { String(integer) } else { number.description }
        case .bool(let flag): flag ? "true" : "false"
        }
    }

    /// The value as `JSONSerialization` writes it: an `Int` for integral numbers below 2^53, else the `Double`.
    public var jsonValue: any Sendable {
        switch self {
        case .string(let text): text
        case .number(let number): Self.integer(number).map { $0 as any Sendable } ?? number
        case .bool(let flag): flag
        }
    }

    /// The JSON type's name for messages: "a string", "a number", "a boolean".
    public var typeName: String {
        switch self {
        case .string: "a string"
        case .number: "a number"
        case .bool: "a boolean"
        }
    }

    /// Booleans before numbers before strings; within a type, by value. The order of printed enums and sorted pairs.
    public static func < (a: StructuredValue, b: StructuredValue) -> Bool {
        switch (a, b) {
        case (.bool(let x), .bool(let y)): !x && y
        case (.number(let x), .number(let y)): x < y
        case (.string(let x), .string(let y)): x < y
        default: a.rank < b.rank
        }
    }

    private var rank: Int {
        switch self {
        case .bool: 0
        case .number: 1
        case .string: 2
        }
    }

    /// `number` as an integer when it is integral and exactly representable (|x| < 2^53).
    static func integer(_ number: Double) -> Int64? {
        guard number == number.rounded(), abs(number) < 9_007_199_254_740_992 else { return nil }
        return Int64(number)
    }

    /// `text` as a JSON string literal: `"` and `\` escaped, control characters as `\n`, `\t`, … or `\u00XX`.
    static func quoted(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            if let escape = escapes[scalar] {
                result += escape
            } else if scalar.value < 0x20 {
                result += "\\u00" + (scalar.value < 0x10 ? "0" : "") + String(scalar.value, radix: 16)
            } else {
                result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }

    private static let escapes: [Unicode.Scalar: String] = [
        "\"": "\\\"", "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t",
    ]
}

/// A structured answer (FORMATS.md §9): one flat JSON object whose values are strings, numbers, booleans or null.
///
/// Two answers are equal when they have the same keys with equal values: key order, whitespace and the spelling of
/// numbers do not matter, and a key whose value is `null` equals a missing key (both are left out of ``fields``).
public struct StructuredAnswer: Sendable, Hashable, CustomStringConvertible {
    /// One key with its (non-null) value: the unit field F1 counts.
    public struct Field: Sendable, Hashable, Comparable {
        /// The key.
        public let key: String
        /// Its value.
        public let value: StructuredValue

        /// The pair `key`=`value`.
        public init(key: String, value: StructuredValue) {
            self.key = key
            self.value = value
        }

        /// By key, then value.
        public static func < (a: Field, b: Field) -> Bool { a.key < b.key || (a.key == b.key && a.value < b.value) }
    }

    /// The keys with non-null values.
    public let fields: [String: StructuredValue]

    /// An answer with the given fields; `nil` values (JSON `null`) are left out.
    public init(_ fields: [String: StructuredValue?]) {
        self.fields = fields.compactMapValues { $0 }
    }

    /// The value under `key`, nil when the key is missing or null.
    public subscript(key: String) -> StructuredValue? { fields[key] }

    /// The key=value pairs, null values left out: what field F1 matches between two answers.
    public var pairs: Set<Field> { Set(fields.map { Field(key: $0.key, value: $0.value) }) }

    /// Canonical JSON: keys sorted, no whitespace, numbers as ``StructuredValue/description`` prints them. Equal
    /// answers print the same text.
    public var canonicalJSON: String {
        let members = fields.sorted { $0.key < $1.key }.map {
            StructuredValue.quoted($0.key) + ":" + $0.value.description
        }
        return "{" + members.joined(separator: ",") + "}"
    }

    /// The canonical JSON.
    public var description: String { canonicalJSON }

    /// The answer as a `JSONSerialization` object (integral numbers as `Int`), for prediction lines.
    public var jsonObject: [String: any Sendable] { fields.mapValues(\.jsonValue) }

    /// A teacher's raw text as an answer, or nil when it is not exactly one flat JSON object: not JSON, text around
    /// the object, an array or a scalar, a value that is an object or an array, or a number out of range. Such a text
    /// is an *invalid* teacher answer (counted, never an error).
    public static func parse(text: String) -> StructuredAnswer? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) else { return nil }
        return try? StructuredAnswer(jsonObject: object, named: "the answer")
    }

    /// An already parsed JSON value (the teacher's object form, or gold) as an answer.
    ///
    /// - Parameter name: what the value is in messages (`"gold"`).
    /// - Throws: ``DataError`` (no location: the caller knows the line) when `object` is not a JSON object or one of
    ///   its values is an object, an array or a non-finite number.
    public init(jsonObject object: Any, named name: String) throws(DataError) {
        guard let dictionary = object as? [String: Any] else {
            throw DataError(
                .badData,
                "\(name) must be a JSON object such as {\"intent\": \"HassTurnOn\", \"area\": \"Kitchen\"}, found "
                    + RowReader.jsonTypeName(object))
        }
        var fields: [String: StructuredValue] = [:]
        for (key, raw) in dictionary {
            if let value = try Self.value(raw, at: "\(name).\"\(key)\"") { fields[key] = value }
        }
        self.fields = fields
    }

    /// One JSON scalar as a value (nil for `null`).
    static func value(_ raw: Any, at place: String) throws(DataError) -> StructuredValue? {
        if raw is NSNull { return nil }
        if let text = raw as? String, !RowReader.isNumber(raw) { return .string(text) }
        if let number = raw as? NSNumber {
            if !RowReader.isNumber(number) { return .bool(number.boolValue) }
            guard number.doubleValue.isFinite else {
                throw DataError(.badData, "\(place) is not a finite number; write it as a JSON number in range")
            }
            return .number(number.doubleValue)
        }
        throw DataError(
            .badData,
            "\(place) is \(RowReader.jsonTypeName(raw)); an answer is flat: its values are strings, numbers, booleans "
                + "or null")
    }
}

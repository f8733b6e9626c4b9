import Foundation

/// A JSON value, for requests and answers the gateway passes through without knowing every field.
public enum JSON: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSON])
    case object([String: JSON])

    /// Parses UTF-8 JSON text.
    public static func parse(_ data: Data) throws -> JSON {
        try JSONDecoder().decode(JSON.self, from: data)
    }

    /// Parses UTF-8 JSON text.
    public static func parse(_ text: String) throws -> JSON { try parse(Data(text.utf8)) }

    /// The compact JSON text.
    public var data: Data {
        var text = ""
        write(to: &text)
        return Data(text.utf8)
    }

    /// The compact JSON text.
    public var text: String {
        var text = ""
        write(to: &text)
        return text
    }

    /// Member `key` of an object (nil for other kinds or a missing key).
    public subscript(key: String) -> JSON? {
        get {
            if case .object(let members) = self { return members[key] }
            return nil
        }
        set {
            guard case .object(var members) = self else { return }
            members[key] = newValue
            self = .object(members)
        }
    }

    /// Element `index` of an array.
    public subscript(index: Int) -> JSON? {
        if case .array(let items) = self, items.indices.contains(index) { return items[index] }
        return nil
    }

    /// The text, if this is a string.
    public var string: String? { if case .string(let value) = self { value } else { nil } }
    /// The number, if this is a number.
    public var double: Double? { if case .number(let value) = self { value } else { nil } }
    /// The number, if it is a whole number.
    public var int: Int? { double.flatMap { $0.isFinite && $0 == $0.rounded() ? Int(exactly: $0) : nil } }
    /// The value, if this is a boolean.
    public var bool: Bool? { if case .bool(let value) = self { value } else { nil } }
    /// The items, if this is an array.
    public var array: [JSON]? { if case .array(let value) = self { value } else { nil } }
    /// The members, if this is an object.
    public var object: [String: JSON]? { if case .object(let value) = self { value } else { nil } }
    /// Whether this is `null`.
    public var isNull: Bool { self == .null }

    func write(to out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let value): out += value ? "true" : "false"
        case .number(let value):
            if value == value.rounded(), abs(value) < 1e15 {
                out += String(Int64(value))
            } else if value.isFinite {
                out += "\(value)"
            } else {
                out += "null"
            }
        case .string(let value): JSON.writeString(value, to: &out)
        case .array(let items):
            out += "["
            for (index, item) in items.enumerated() {
                if index > 0 { out += "," }
                item.write(to: &out)
            }
            out += "]"
        case .object(let members):
            out += "{"
            for (index, member) in members.sorted(by: { $0.key < $1.key }).enumerated() {
                if index > 0 { out += "," }
                JSON.writeString(member.key, to: &out)
                out += ":"
                member.value.write(to: &out)
            }
            out += "}"
        }
    }

    static func writeString(_ value: String, to out: inout String) {
        out += "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                out +=
                    "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count)
                    + String(scalar.value, radix: 16)
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }
}

extension JSON: Codable {
    /// Decodes any JSON value.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSON].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSON].self))
        }
    }

    /// Encodes the value as JSON.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}

extension JSON: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    /// Creates the JSON value from a literal.
    public init(stringLiteral value: String) { self = .string(value) }
    /// Creates the JSON value from a literal.
    public init(integerLiteral value: Int) { self = .number(Double(value)) }
    /// Creates the JSON value from a literal.
    public init(floatLiteral value: Double) { self = .number(value) }
    /// Creates the JSON value from a literal.
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    /// Creates the JSON value from a literal.
    public init(arrayLiteral elements: JSON...) { self = .array(elements) }
    /// Creates the JSON value from a literal.
    public init(dictionaryLiteral elements: (String, JSON)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { $1 }))
    }
    /// Creates the JSON value from a literal.
    public init(nilLiteral: ()) { self = .null }
}

extension JSON {
    /// A number from an integer.
    public static func int(_ value: Int) -> JSON { .number(Double(value)) }
}

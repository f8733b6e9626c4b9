import Foundation

/// A JSON value, for requests and answers the gateway passes through without knowing every field.
///
/// Numbers keep the text they were parsed from (``JSONNumber``), so a value the gateway passes through reaches the
/// upstream spelled exactly as the client sent it: an integer above 2^53 (a `seed`, an id in `metadata`) or `1.0`
/// is not rounded through a `Double` on the way.
public enum JSON: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(JSONNumber)
    case string(String)
    case array([JSON])
    case object([String: JSON])

    /// Parses UTF-8 JSON text, exactly as RFC 8259 defines it.
    ///
    /// Accepts only what the grammar allows: numbers `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?` (kept as
    /// their text), strings without raw control characters and with only the escapes `\" \\ \/ \b \f \n \r \t` and
    /// `\uXXXX`, whitespace of space, tab, CR and LF only, and nothing but whitespace after the value.
    ///
    /// Decisions where RFC 8259 leaves a choice (JSONTestSuite's `i_` cases):
    /// - Invalid UTF-8 (overlong forms, UTF-8-encoded surrogates, bytes above F4, truncated sequences) is rejected.
    /// - A `\u` escape of a lone surrogate (a high one not followed by a low one, or a low one alone) is rejected:
    ///   a Swift `String` cannot hold it, and replacing it would change the text silently.
    /// - A byte order mark at the start is rejected.
    /// - Numbers of any size or precision are accepted and kept as text (`1E400`, 40-digit integers);
    ///   ``JSONNumber/double`` is nil when the value is beyond `Double`'s range.
    /// - Arrays and objects nest at most 512 deep; deeper text throws instead of exhausting the stack.
    /// - A key repeated in one object keeps its last value.
    ///
    /// Parsing is a single pass over the bytes (several times faster than `JSONDecoder` here).
    /// - Throws: ``JSONParseError`` with the byte offset of the problem and what is wrong there.
    public static func parse(_ data: Data) throws -> JSON {
        try data.withUnsafeBytes { raw in
            var parser = JSONParser(bytes: raw.bindMemory(to: UInt8.self))
            return try parser.parseDocument()
        }
    }

    /// Parses UTF-8 JSON text (see ``parse(_:)-(Data)``).
    public static func parse(_ text: String) throws -> JSON { try parse(Data(text.utf8)) }

    /// The compact JSON text: no whitespace, object keys sorted, numbers as their text, strings escaping only `"`,
    /// `\\` and control characters.
    public var data: Data { Data(utf8) }

    /// The compact JSON text (as ``data``).
    public var text: String { String(decoding: utf8, as: UTF8.self) }

    /// The compact JSON text's bytes.
    var utf8: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        write(to: &out)
        return out
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
    /// The number as a `Double`, if this is a number within `Double`'s range (see ``JSONNumber/double``).
    public var double: Double? { if case .number(let value) = self { value.double } else { nil } }
    /// The number, if it is a whole number that fits in an `Int` (exact; see ``JSONNumber/int``).
    public var int: Int? { if case .number(let value) = self { value.int } else { nil } }
    /// The value, if this is a boolean.
    public var bool: Bool? { if case .bool(let value) = self { value } else { nil } }
    /// The items, if this is an array.
    public var array: [JSON]? { if case .array(let value) = self { value } else { nil } }
    /// The members, if this is an object.
    public var object: [String: JSON]? { if case .object(let value) = self { value } else { nil } }
    /// Whether this is `null`.
    public var isNull: Bool { if case .null = self { true } else { false } }

    func write(to out: inout [UInt8]) {
        switch self {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let value): out.append(contentsOf: value ? "true".utf8 : "false".utf8)
        case .number(let value): out.append(contentsOf: value.text.utf8)
        case .string(let value): JSON.writeString(value, to: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (index, item) in items.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                item.write(to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            for (index, member) in members.sorted(by: { $0.key < $1.key }).enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                JSON.writeString(member.key, to: &out)
                out.append(UInt8(ascii: ":"))
                member.value.write(to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// Writes `value` quoted, escaping `"`, `\\`, `\n`, `\r`, `\t` by name and other control characters as
    /// `\u00xx`; everything else is copied as UTF-8, a run at a time.
    static func writeString(_ value: String, to out: inout [UInt8]) {
        var value = value
        out.append(UInt8(ascii: "\""))
        value.withUTF8 { utf8 in
            var runStart = 0
            for index in utf8.indices {
                let byte = utf8[index]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                out.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<index]))
                runStart = index + 1
                out.append(UInt8(ascii: "\\"))
                switch byte {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"): out.append(byte)
                case 0x0A: out.append(UInt8(ascii: "n"))
                case 0x0D: out.append(UInt8(ascii: "r"))
                case 0x09: out.append(UInt8(ascii: "t"))
                default:
                    let hex: [UInt8] = Array("0123456789abcdef".utf8)
                    out.append(contentsOf: [UInt8(ascii: "u"), 0x30, 0x30, hex[Int(byte >> 4)], hex[Int(byte & 0xF)]])
                }
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart...]))
        }
        out.append(UInt8(ascii: "\""))
    }
}

extension JSON {
    /// A number from an integer.
    public static func int(_ value: Int) -> JSON { .number(JSONNumber(value)) }

    /// A number from a `Double`, written as before: whole values below 10^15 without a fraction (`3`), others in
    /// Swift's shortest round-tripping form (`0.1`, `1e+20`); `null` for infinity and NaN, which JSON cannot hold.
    public static func number(_ value: Double) -> JSON { JSONNumber(value).map { .number($0) } ?? .null }
}

/// A JSON number, kept as the text it was written in.
///
/// Parsing keeps the text (`12345678901234567891`, `-0`, `1.0`, `1E400` stay as they are) and writing emits it
/// unchanged; ``double``, ``int``, ``int64`` and ``uint64`` read the value on demand. Two numbers are equal when
/// their values are equal exactly (`40` equals `40.0` and `4e1`; `12345678901234567891` does not equal
/// `12345678901234567892`, though both round to the same `Double`).
public struct JSONNumber: Sendable, Equatable, CustomStringConvertible {
    /// The number's JSON text (always valid RFC 8259 number syntax).
    public let text: String

    init(unchecked text: String) { self.text = text }

    /// The number written as `text`, or nil when `text` is not exactly one RFC 8259 number.
    public init?(_ text: String) {
        var bytes = Array(text.utf8)
        let valid = bytes.withUnsafeMutableBufferPointer { buffer in
            var parser = JSONParser(bytes: UnsafeBufferPointer(buffer))
            return (try? parser.parseNumber()) != nil && parser.index == buffer.count
        }
        guard valid else { return nil }
        self.text = text
    }

    /// The integer `value`.
    public init(_ value: Int) { text = String(value) }
    /// The integer `value`.
    public init(_ value: Int64) { text = String(value) }
    /// The integer `value`.
    public init(_ value: UInt64) { text = String(value) }

    /// The number `value`, written as ``JSON/number(_:)-(Double)`` describes; nil for infinity and NaN.
    public init?(_ value: Double) {
        guard value.isFinite else { return nil }
        if value == value.rounded(), abs(value) < 1e15 {
            text = String(Int64(value))
        } else {
            text = "\(value)"
        }
    }

    /// The text.
    public var description: String { text }

    /// The nearest `Double` (correctly rounded), or nil when the value is beyond `Double`'s range (`1E400`).
    public var double: Double? {
        guard let value = Double(text), value.isFinite else { return nil }
        return value
    }

    /// The value if it is a whole number that fits in an `Int`, read exactly (`1e2` and `100.0` are 100;
    /// `9007199254740993` stays 9007199254740993); nil for fractions and out-of-range values.
    public var int: Int? {
        if let value = Int(text) { return value }
        return decimal?.integer(limit: UInt64(Int.max)).map { negative, magnitude in
            negative ? Int(truncatingIfNeeded: 0 &- magnitude) : Int(magnitude)
        }
    }

    /// The value if it is a whole number that fits in an `Int64` (exact, as ``int``).
    public var int64: Int64? {
        if let value = Int64(text) { return value }
        return decimal?.integer(limit: UInt64(Int64.max)).map { negative, magnitude in
            negative ? Int64(truncatingIfNeeded: 0 &- magnitude) : Int64(magnitude)
        }
    }

    /// The value if it is a whole number that fits in a `UInt64` (exact, as ``int``); `-0` is 0.
    public var uint64: UInt64? {
        if let value = UInt64(text) { return value }
        guard let (negative, magnitude) = decimal?.integer(limit: UInt64.max) else { return nil }
        return negative && magnitude != 0 ? nil : magnitude
    }

    /// Whether the two numbers have the same value, compared exactly in decimal (`-0` equals `0`).
    public static func == (left: JSONNumber, right: JSONNumber) -> Bool {
        if left.text == right.text { return true }
        guard let a = left.decimal, let b = right.decimal else { return false }
        return a == b
    }

    /// The value in a canonical decimal form, or nil if the exponent does not fit in an `Int`.
    var decimal: CanonicalDecimal? { CanonicalDecimal(text) }
}

/// A number's exact value as `±0.digits × 10^exponent` with no leading or trailing zero digits (zero has none).
struct CanonicalDecimal: Equatable {
    var negative: Bool
    var digits: [UInt8]
    var exponent: Int

    /// The value of valid JSON number text; nil if its exponent overflows `Int`.
    init?(_ text: String) {
        var negative = false
        var digits: [UInt8] = []
        var pointPosition: Int?
        var exponent = 0
        var bytes = text.utf8[...]
        if bytes.first == UInt8(ascii: "-") {
            negative = true
            bytes = bytes.dropFirst()
        }
        var leadingZeros = 0
        while let byte = bytes.first, byte != UInt8(ascii: "e"), byte != UInt8(ascii: "E") {
            bytes = bytes.dropFirst()
            if byte == UInt8(ascii: ".") {
                pointPosition = digits.count + leadingZeros
            } else if digits.isEmpty && byte == UInt8(ascii: "0") {
                leadingZeros += 1
            } else {
                digits.append(byte - UInt8(ascii: "0"))
            }
        }
        // Value so far: 0.digits × 10^(integer digits − leading zeros).
        let integerDigits = pointPosition ?? (digits.count + leadingZeros)
        var scale = integerDigits - leadingZeros
        if !bytes.isEmpty {
            bytes = bytes.dropFirst()
            var exponentNegative = false
            if let sign = bytes.first, sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") {
                exponentNegative = sign == UInt8(ascii: "-")
                bytes = bytes.dropFirst()
            }
            for byte in bytes {
                let (times, overflow1) = exponent.multipliedReportingOverflow(by: 10)
                let (sum, overflow2) = times.addingReportingOverflow(Int(byte - UInt8(ascii: "0")))
                guard !overflow1, !overflow2 else { return nil }
                exponent = sum
            }
            if exponentNegative { exponent = -exponent }
            let (total, overflow) = scale.addingReportingOverflow(exponent)
            guard !overflow else { return nil }
            scale = total
        }
        while digits.last == 0 { digits.removeLast() }
        if digits.isEmpty {
            negative = false
            scale = 0
        }
        self.negative = negative
        self.digits = digits
        self.exponent = scale
    }

    /// The sign and magnitude if the value is a whole number whose magnitude is at most `limit` (or `limit + 1`
    /// when negative, for the most negative two's-complement integer).
    func integer(limit: UInt64) -> (negative: Bool, magnitude: UInt64)? {
        if digits.isEmpty { return (false, 0) }
        guard exponent >= digits.count, exponent <= 20 else { return nil }
        var magnitude: UInt64 = 0
        for position in 0..<exponent {
            let digit = position < digits.count ? UInt64(digits[position]) : 0
            let (times, overflow1) = magnitude.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times.addingReportingOverflow(digit)
            guard !overflow1, !overflow2 else { return nil }
            magnitude = sum
        }
        let bound = negative && limit < UInt64.max ? limit + 1 : limit
        guard magnitude <= bound else { return nil }
        return (negative, magnitude)
    }
}

extension JSON: Codable {
    /// Decodes any JSON value. Numbers come through `Decoder`'s number types: integers that fit in 64 bits exactly,
    /// others as `Double` (``parse(_:)-(Data)`` keeps every number's text exactly).
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .number(JSONNumber(value))
        } else if let value = try? container.decode(UInt64.self) {
            self = .number(JSONNumber(value))
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

    /// Encodes the value. Numbers go through `Encoder`'s number types: whole numbers that fit in 64 bits exactly,
    /// others as the nearest `Double` (``data`` and ``text`` write every number's text exactly).
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let value):
            if let integer = value.int64 {
                try container.encode(integer)
            } else if let integer = value.uint64 {
                try container.encode(integer)
            } else if let double = value.double {
                try container.encode(double)
            } else {
                throw EncodingError.invalidValue(
                    value.text,
                    EncodingError.Context(
                        codingPath: encoder.codingPath, debugDescription: "\(value.text) is beyond Double's range"
                    )
                )
            }
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
    public init(integerLiteral value: Int) { self = .number(JSONNumber(value)) }
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

/// Malformed JSON text.
public struct JSONParseError: Error, Sendable, CustomStringConvertible {
    /// Byte offset of the problem (0-based, in the UTF-8 text).
    public let offset: Int
    /// What is wrong, and how to write it instead where that helps.
    public let reason: String
    /// `offset N: reason`.
    public var description: String { "offset \(offset): \(reason)" }
}

/// A strict recursive-descent RFC 8259 parser over UTF-8 bytes (see ``JSON/parse(_:)-(Data)``).
struct JSONParser {
    /// How deep arrays and objects may nest.
    static let maximumDepth = 512

    let bytes: UnsafeBufferPointer<UInt8>
    var index = 0
    var depth = 0

    init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    func fail(_ reason: String, at offset: Int? = nil) -> JSONParseError {
        JSONParseError(offset: offset ?? index, reason: reason)
    }

    /// A byte for a message: the character if it is printable ASCII, else its hex value.
    static func describe(_ byte: UInt8) -> String {
        (0x21..<0x7F).contains(byte)
            ? "'\(Character(Unicode.Scalar(byte)))'" : "byte 0x" + String(byte, radix: 16, uppercase: true)
    }

    mutating func skipSpace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    mutating func parseDocument() throws -> JSON {
        if bytes.count >= 3, bytes[0] == 0xEF, bytes[1] == 0xBB, bytes[2] == 0xBF {
            throw fail("the text starts with a byte order mark (U+FEFF); JSON text must not, remove it")
        }
        skipSpace()
        guard index < bytes.count else { throw fail("no JSON value: the text is empty or only whitespace") }
        let value = try parseValue()
        skipSpace()
        guard index == bytes.count else {
            throw fail("unexpected \(Self.describe(bytes[index])) after the value; only whitespace may follow it")
        }
        return value
    }

    mutating func expect(_ literal: StaticString, _ value: JSON) throws -> JSON {
        let count = literal.utf8CodeUnitCount
        let start = literal.utf8Start
        for offset in 0..<count where index + offset >= bytes.count || bytes[index + offset] != start[offset] {
            throw fail("invalid literal: expected \(literal) (true, false and null are lower case)")
        }
        index += count
        return value
    }

    mutating func parseValue() throws -> JSON {
        skipSpace()
        guard index < bytes.count else { throw fail("unexpected end of the text: expected a value") }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try parseObject()
        case UInt8(ascii: "["): return try parseArray()
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): return try expect("true", .bool(true))
        case UInt8(ascii: "f"): return try expect("false", .bool(false))
        case UInt8(ascii: "n"): return try expect("null", .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
        case UInt8(ascii: "+"): throw fail("a number may not start with '+' (write 1, not +1)")
        case UInt8(ascii: "."): throw fail("a number needs a digit before the '.' (write 0.5, not .5)")
        case let byte: throw fail("expected a value, found \(Self.describe(byte))")
        }
    }

    mutating func nest() throws {
        depth += 1
        guard depth <= Self.maximumDepth else {
            throw fail("arrays and objects nest deeper than \(Self.maximumDepth) levels")
        }
    }

    mutating func parseObject() throws -> JSON {
        try nest()
        defer { depth -= 1 }
        index += 1
        var members: [String: JSON] = [:]
        skipSpace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
            index += 1
            return .object(members)
        }
        while true {
            skipSpace()
            guard index < bytes.count else { throw fail("unexpected end of the text: expected a key") }
            guard bytes[index] == UInt8(ascii: "\"") else {
                throw fail("expected a key in double quotes, found \(Self.describe(bytes[index]))")
            }
            let key = try parseString()
            skipSpace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else {
                throw fail("expected ':' after the key")
            }
            index += 1
            members[key] = try parseValue()
            skipSpace()
            guard index < bytes.count else { throw fail("unexpected end of the text: expected ',' or '}'") }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
            } else if bytes[index] == UInt8(ascii: "}") {
                index += 1
                return .object(members)
            } else {
                throw fail("expected ',' or '}' in the object, found \(Self.describe(bytes[index]))")
            }
        }
    }

    mutating func parseArray() throws -> JSON {
        try nest()
        defer { depth -= 1 }
        index += 1
        var items: [JSON] = []
        skipSpace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
            index += 1
            return .array(items)
        }
        while true {
            items.append(try parseValue())
            skipSpace()
            guard index < bytes.count else { throw fail("unexpected end of the text: expected ',' or ']'") }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
            } else if bytes[index] == UInt8(ascii: "]") {
                index += 1
                return .array(items)
            } else {
                throw fail("expected ',' or ']' in the array, found \(Self.describe(bytes[index]))")
            }
        }
    }

    func controlCharacter(_ byte: UInt8) -> JSONParseError {
        let hex = String(byte, radix: 16, uppercase: true)
        let escape =
            switch byte {
            case 0x0A: "\\n"
            case 0x0D: "\\r"
            case 0x09: "\\t"
            default: "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            }
        return fail("unescaped control character 0x\(hex) in a string (write \(escape))")
    }

    /// Checks the UTF-8 sequence starting at `index` (a byte ≥ 0x80) and moves past it.
    /// Rejects continuation bytes without a lead, C0, C1 and F5–FF, overlong forms, surrogates, code points above
    /// U+10FFFF and truncated sequences (Unicode 15, table 3-7).
    mutating func skipUTF8Sequence() throws {
        let lead = bytes[index]
        let length: Int
        var low: UInt8 = 0x80
        var high: UInt8 = 0xBF
        switch lead {
        case 0xC2...0xDF: length = 2
        case 0xE0:
            length = 3
            low = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED:
            length = 3
            high = 0x9F
        case 0xF0:
            length = 4
            low = 0x90
        case 0xF1...0xF3: length = 4
        case 0xF4:
            length = 4
            high = 0x8F
        default:
            throw fail("invalid UTF-8: byte 0x\(String(lead, radix: 16, uppercase: true)) cannot start a character")
        }
        for offset in 1..<length {
            let position = index + offset
            guard position < bytes.count, (low...high).contains(bytes[position]) else {
                throw fail(
                    "invalid UTF-8: the character starting with byte 0x\(String(lead, radix: 16, uppercase: true))"
                        + " is truncated, overlong, a surrogate or above U+10FFFF",
                    at: position
                )
            }
            low = 0x80
            high = 0xBF
        }
        index += length
    }

    mutating func parseString() throws -> String {
        let quote = index
        index += 1
        let start = index
        // Fast path: no escapes, so the text is the bytes themselves.
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
                index += 1
                return text
            }
            if byte == UInt8(ascii: "\\") { break }
            if byte < 0x20 { throw controlCharacter(byte) }
            if byte < 0x80 { index += 1 } else { try skipUTF8Sequence() }
        }
        var utf8 = Array(UnsafeBufferPointer(rebasing: bytes[start..<index]))
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                return String(decoding: utf8, as: UTF8.self)
            case UInt8(ascii: "\\"):
                index += 1
                guard index < bytes.count else { break }
                let escape = bytes[index]
                index += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escape)
                case UInt8(ascii: "b"): utf8.append(0x08)
                case UInt8(ascii: "f"): utf8.append(0x0C)
                case UInt8(ascii: "n"): utf8.append(0x0A)
                case UInt8(ascii: "r"): utf8.append(0x0D)
                case UInt8(ascii: "t"): utf8.append(0x09)
                case UInt8(ascii: "u"): Self.appendUTF8(of: try parseUnicodeEscape(), to: &utf8)
                default:
                    throw fail(
                        "invalid escape: '\\' followed by \(Self.describe(escape)) (JSON has \\\" \\\\ \\/ \\b \\f"
                            + " \\n \\r \\t and \\uXXXX)",
                        at: index - 2
                    )
                }
            default:
                if byte < 0x20 { throw controlCharacter(byte) }
                if byte < 0x80 {
                    utf8.append(byte)
                    index += 1
                } else {
                    let first = index
                    try skipUTF8Sequence()
                    utf8.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[first..<index]))
                }
            }
        }
        throw fail("unterminated string: no closing '\"' for the string starting here", at: quote)
    }

    /// The code point of `\uXXXX` (with `index` after the `u`), combining a surrogate pair written as two escapes.
    mutating func parseUnicodeEscape() throws -> UInt32 {
        let escapeStart = index - 2
        let code = try parseHex4()
        switch code {
        case 0xD800..<0xDC00:
            guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u")
            else { throw loneSurrogate(code, at: escapeStart) }
            index += 2
            let low = try parseHex4()
            guard (0xDC00..<0xE000).contains(low) else { throw loneSurrogate(code, at: escapeStart) }
            return 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
        case 0xDC00..<0xE000: throw loneSurrogate(code, at: escapeStart)
        default: return code
        }
    }

    func loneSurrogate(_ code: UInt32, at offset: Int) -> JSONParseError {
        let hex = String(code, radix: 16, uppercase: true)
        return fail(
            "lone surrogate \\u\(hex): a \\uD800–\\uDBFF escape must be followed by a \\uDC00–\\uDFFF one, and a"
                + " \\uDC00–\\uDFFF escape must follow one (write the character itself, or both halves of the pair)",
            at: offset
        )
    }

    static func appendUTF8(of code: UInt32, to utf8: inout [UInt8]) {
        switch code {
        case ..<0x80: utf8.append(UInt8(code))
        case ..<0x800:
            utf8.append(0xC0 | UInt8(code >> 6))
            utf8.append(0x80 | UInt8(code & 0x3F))
        case ..<0x10000:
            utf8.append(0xE0 | UInt8(code >> 12))
            utf8.append(0x80 | UInt8(code >> 6 & 0x3F))
            utf8.append(0x80 | UInt8(code & 0x3F))
        default:
            utf8.append(0xF0 | UInt8(code >> 18))
            utf8.append(0x80 | UInt8(code >> 12 & 0x3F))
            utf8.append(0x80 | UInt8(code >> 6 & 0x3F))
            utf8.append(0x80 | UInt8(code & 0x3F))
        }
    }

    mutating func parseHex4() throws -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard index < bytes.count else { throw fail("unexpected end of the text in a \\u escape") }
            let byte = bytes[index]
            let digit: UInt32
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
            default: throw fail("a \\u escape needs exactly 4 hex digits (write \\u00E9), found \(Self.describe(byte))")
            }
            value = value << 4 | digit
            index += 1
        }
        return value
    }

    func isDigit(at position: Int) -> Bool {
        position < bytes.count && bytes[position] &- UInt8(ascii: "0") < 10
    }

    mutating func skipDigits() {
        while isDigit(at: index) { index += 1 }
    }

    /// A number matching `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, kept as its text.
    mutating func parseNumber() throws -> JSONNumber {
        let start = index
        if index < bytes.count, bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard isDigit(at: index) else {
            throw fail(
                index < bytes.count ? "a '-' must be followed by a digit" : "unexpected end of the text in a number"
            )
        }
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
            if isDigit(at: index) { throw fail("a number may not have a leading zero (write 1, not 01)") }
        } else {
            skipDigits()
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            guard isDigit(at: index) else { throw fail("a number needs a digit after the '.' (write 1.0, not 1.)") }
            skipDigits()
        }
        if index < bytes.count, bytes[index] | 0x20 == UInt8(ascii: "e") {
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                index += 1
            }
            guard isDigit(at: index) else { throw fail("an exponent needs digits (write 1e5, not 1e)") }
            skipDigits()
        }
        return JSONNumber(
            unchecked: String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        )
    }
}

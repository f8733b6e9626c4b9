import Foundation
import Yams

/// A node of a YAML (or JSON) configuration file, with where it came from, for `FILE:LINE:` messages.
public struct YAMLValue {
    /// The parsed node.
    public let node: Node
    /// The file it came from.
    public let file: String
    /// The dotted key path inside the file (`constraints.max_model_bytes`).
    public let path: String

    /// Wraps `node` from `file` at key path `path`.
    public init(node: Node, file: String, path: String) {
        self.node = node
        self.file = file
        self.path = path
    }

    /// Parses a whole file.
    public static func load(_ url: URL) throws(DataError) -> YAMLValue {
        let path = url.relativePath
        guard let text = try? String(contentsOf: url, encoding: .utf8) else {
            let exists = FileManager.default.fileExists(atPath: url.path)
            throw DataError(.missingInput, exists ? "cannot read the file as UTF-8 text" : "no such file", file: path)
        }
        return try parse(text, file: path)
    }

    /// Parses YAML `text` that came from `file`.
    public static func parse(_ text: String, file: String) throws(DataError) -> YAMLValue {
        do {
            guard let node = try Yams.compose(yaml: text) else {
                throw DataError(.badData, "the file is empty; see FORMATS.md for its keys", file: file)
            }
            return YAMLValue(node: node, file: file, path: "")
        } catch let error as DataError {
            throw error
        } catch let error as YamlError {
            throw DataError(.badData, "not valid YAML: \(describe(error))", file: file, line: line(of: error))
        } catch {
            throw DataError(.badData, "not valid YAML: \(error)", file: file)
        }
    }

    /// The 1-based line of this node.
    public var line: Int? { node.mark.map { $0.line } }

    /// An error located at this node.
    public func error(_ message: String) -> DataError {
        DataError(.badData, path.isEmpty ? message : "\(path): \(message)", file: file, line: line)
    }

    /// The entries of a mapping, checking that every key is in `allowed` (and that `required` ones are present).
    public func mapping(allowed: Set<String>, required: Set<String> = []) throws(DataError) -> [String: YAMLValue] {
        guard case .mapping(let mapping) = node else {
            throw error("expected a mapping (key: value lines), found \(kindName)")
        }
        var result: [String: YAMLValue] = [:]
        var findings: [DataError] = []
        for (key, value) in mapping {
            guard let name = key.string else {
                findings.append(YAMLValue(node: key, file: file, path: path).error("keys must be strings"))
                continue
            }
            let childPath = path.isEmpty ? name : "\(path).\(name)"
            guard allowed.contains(name) else {
                findings.append(
                    DataError(
                        .badData,
                        "unknown key \"\(childPath)\"; allowed here: \(allowed.sorted().joined(separator: ", "))",
                        file: file, line: key.mark?.line))
                continue
            }
            result[name] = YAMLValue(node: value, file: file, path: childPath)
        }
        for name in required.sorted() where result[name] == nil {
            findings.append(error("missing key \"\(path.isEmpty ? name : "\(path).\(name)")\""))
        }
        if let combined = DataError.combined(findings) { throw combined }
        return result
    }

    /// The elements of a sequence.
    public func sequence() throws(DataError) -> [YAMLValue] {
        guard case .sequence(let sequence) = node else { throw error("expected a list, found \(kindName)") }
        return sequence.enumerated().map { YAMLValue(node: $1, file: file, path: "\(path)[\($0)]") }
    }

    /// A mapping whose keys are names the user chooses (providers, routes, users), each entry with its key path.
    public func namedEntries() throws(DataError) -> [String: YAMLValue] {
        guard case .mapping(let mapping) = node else {
            throw error("expected a mapping (name: value lines), found \(kindName)")
        }
        var result: [String: YAMLValue] = [:]
        for (key, value) in mapping {
            guard case .scalar(let scalar) = key else {
                throw YAMLValue(node: key, file: file, path: path).error("names must be plain text")
            }
            let name = scalar.string
            result[name] = YAMLValue(node: value, file: file, path: path.isEmpty ? name : "\(path).\(name)")
        }
        return result
    }

    /// Whether this node is a sequence.
    public var isSequence: Bool { if case .sequence = node { true } else { false } }

    /// A scalar string.
    public func string() throws(DataError) -> String {
        guard case .scalar(let scalar) = node else { throw error("expected a text value, found \(kindName)") }
        return scalar.string
    }

    /// A finite number.
    public func double() throws(DataError) -> Double {
        guard case .scalar(let scalar) = node, let value = Double(scalar.string.trimmingCharacters(in: .whitespaces)),
            value.isFinite
        else { throw error("expected a finite number, found \(describeValue)") }
        return value
    }

    /// A whole number.
    public func int() throws(DataError) -> Int {
        guard case .scalar(let scalar) = node, let value = Int(scalar.string.trimmingCharacters(in: .whitespaces))
        else { throw error("expected a whole number, found \(describeValue)") }
        return value
    }

    /// A boolean (`true`/`false`).
    public func bool() throws(DataError) -> Bool {
        guard case .scalar(let scalar) = node else { throw error("expected true or false, found \(kindName)") }
        switch scalar.string.lowercased() {
        case "true", "yes": return true
        case "false", "no": return false
        default: throw error("expected true or false, found \(describeValue)")
        }
    }

    /// A byte size in `range` (default up to ``ByteSize/maximum``): a number of bytes or `500KB`, `1.5MB`, `2MiB`.
    public func byteSize(in range: ClosedRange<Int> = 0...ByteSize.maximum) throws(DataError) -> Int {
        let text = try string()
        guard let bytes = ByteSize.value(of: text) else {
            throw error("\"\(text)\" is not a size; write bytes or 500KB, 1.5MB, 2MiB")
        }
        guard bytes >= Double(range.lowerBound), bytes <= Double(range.upperBound) else {
            throw outOfRange(
                "[\(ByteSize.format(range.lowerBound)), \(ByteSize.format(range.upperBound))]", got: text)
        }
        return Int(bytes)
    }

    /// A duration in seconds: `120`, `120s`, `2m`, `500ms`, `1h`, at most ``DurationText/maximum`` (10 years).
    public func seconds() throws(DataError) -> Double {
        try seconds(in: NumberRange(0, DurationText.maximum))
    }

    /// A duration in seconds (`120`, `120s`, `2m`, `500ms`, `1h`) that lies in `range`.
    public func seconds(in range: NumberRange) throws(DataError) -> Double {
        let text = try string()
        guard let seconds = DurationText.parse(text) else {
            throw error("\"\(text)\" is not a duration; write 120, 120s, 2m or 500ms")
        }
        guard range.contains(seconds) else { throw outOfRange(range.description(unit: "seconds"), got: text) }
        return seconds
    }

    /// A finite number in `range`; `unit` names what it counts in the message (`seconds`, `ms`, `USD`).
    ///
    /// The error reads `KEY must be in (0, 86400] seconds, got 1e19`, at this node's line.
    public func double(in range: NumberRange, unit: String = "") throws(DataError) -> Double {
        let value = try double()
        guard range.contains(value) else { throw outOfRange(range.description(unit: unit), got: describeNumber) }
        return value
    }

    /// A whole number in `range` (a number too large for a machine integer is reported as outside the range).
    public func int(in range: ClosedRange<Int>, unit: String = "") throws(DataError) -> Int {
        let allowed = "a whole number in [\(range.lowerBound), \(range.upperBound)]\(unit.isEmpty ? "" : " \(unit)")"
        guard case .scalar(let scalar) = node else { throw error("expected \(allowed), found \(kindName)") }
        let text = scalar.string.trimmingCharacters(in: .whitespaces)
        let value: Int
        if let parsed = Int(text) {
            value = parsed
        } else if let number = Double(text), number.isFinite, number == number.rounded() {
            guard let whole = Int(exactly: number) else { throw outOfRange(allowed, got: text) }
            value = whole
        } else {
            throw error("expected \(allowed), found \(describeValue)")
        }
        guard range.contains(value) else { throw outOfRange(allowed, got: text) }
        return value
    }

    /// `KEY must be in RANGE, got TEXT`, at this node's line.
    public func outOfRange(_ allowed: String, got text: String) -> DataError {
        error("\(keyName) must be \(allowed.hasPrefix("a ") ? "" : "in ")\(allowed), got \(text)")
    }

    /// The last key of ``path`` (`timeout_s` for `routes.chat.deployments[0].timeout_s`), or `value`.
    var keyName: String {
        let last = path.split(separator: ".").last.map(String.init) ?? ""
        let name = last.split(separator: "[").first.map(String.init) ?? ""
        return name.isEmpty ? "the value" : name
    }

    var describeNumber: String {
        if case .scalar(let scalar) = node { return scalar.string.trimmingCharacters(in: .whitespaces) }
        return kindName
    }

    var kindName: String {
        switch node {
        case .mapping: "a mapping"
        case .sequence: "a list"
        case .scalar: "a value"
        case .alias: "an alias"
        }
    }

    var describeValue: String {
        if case .scalar(let scalar) = node { return "\"\(scalar.string)\"" }
        return kindName
    }

    static func line(of error: YamlError) -> Int? {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _): mark.line
        case .duplicatedKeysInMapping(_, let context): context.mark.line
        default: nil
        }
    }

    static func describe(_ error: YamlError) -> String {
        switch error {
        case .scanner(_, let problem, _, _), .parser(_, let problem, _, _), .composer(_, let problem, _, _): problem
        case .duplicatedKeysInMapping(let duplicates, _):
            "key \(duplicates.sorted().map { "\"\($0)\"" }.joined(separator: ", ")) is given twice in one mapping; keep one"
        default: "\(error)".split(separator: "\n").first.map(String.init) ?? "\(error)"
        }
    }
}

/// An interval of allowed numbers, each end open or closed: `(0, 86400]`, `[0, 600000]`.
public struct NumberRange: Sendable, Equatable {
    /// The lower end.
    public var lower: Double
    /// The upper end.
    public var upper: Double
    /// Whether `lower` itself is allowed.
    public var includesLower: Bool
    /// Whether `upper` itself is allowed.
    public var includesUpper: Bool

    /// `[lower, upper]`, or with an open lower end `(lower, upper]` when `excludingLower`.
    public init(_ lower: Double, _ upper: Double, excludingLower: Bool = false, excludingUpper: Bool = false) {
        self.lower = lower
        self.upper = upper
        includesLower = !excludingLower
        includesUpper = !excludingUpper
    }

    /// `(lower, upper]`: a positive number up to `upper`.
    public static func positive(upTo upper: Double) -> NumberRange { NumberRange(0, upper, excludingLower: true) }

    /// `[0, upper]`.
    public static func nonNegative(upTo upper: Double) -> NumberRange { NumberRange(0, upper) }

    /// Whether `value` lies in the interval (NaN never does).
    public func contains(_ value: Double) -> Bool {
        (includesLower ? value >= lower : value > lower) && (includesUpper ? value <= upper : value < upper)
    }

    /// `(0, 86400] seconds`.
    public func description(unit: String = "") -> String {
        let text =
            "\(includesLower ? "[" : "(")\(Self.format(lower)), \(Self.format(upper))\(includesUpper ? "]" : ")")"
        return unit.isEmpty ? text : "\(text) \(unit)"
    }

    /// `86400`, `0.5`, `1e+15`: whole numbers below 10^12 in full, others in `%g` form.
    public static func format(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e12, let whole = Int(exactly: value) { return "\(whole)" }
        return String(format: "%g", value)
    }
}

/// Parses byte sizes: `2000000`, `500KB`, `1.5MB`, `2GB` (powers of 1000) and `512KiB`, `2MiB` (powers of 1024).
public enum ByteSize {
    /// The largest size a file may give: 1 PiB (2^50 bytes), far above any model or device and far below `Int.max`.
    public static let maximum = 1 << 50

    /// Bytes for `text`, or nil when it is not a size or larger than ``maximum``.
    public static func parse(_ text: String) -> Int? {
        guard let bytes = value(of: text), bytes <= Double(maximum) else { return nil }
        return Int(bytes)
    }

    /// Bytes for `text` as a rounded, finite, non-negative number (possibly beyond ``maximum``), or nil when it is
    /// not a size.
    public static func value(of text: String) -> Double? {
        let trimmed = text.trimmingCharacters(in: .whitespaces).uppercased().replacingOccurrences(of: " ", with: "")
        let units: [(String, Double)] = [
            ("KIB", 1024), ("MIB", 1_048_576), ("GIB", 1_073_741_824), ("KB", 1000), ("MB", 1_000_000),
            ("GB", 1_000_000_000), ("K", 1000), ("M", 1_000_000), ("B", 1),
        ]
        var number = trimmed
        var factor = 1.0
        if let unit = units.first(where: { trimmed.hasSuffix($0.0) }) {
            number = String(trimmed.dropLast(unit.0.count))
            factor = unit.1
        }
        guard let value = Double(number), value.isFinite, value >= 0 else { return nil }
        let bytes = (value * factor).rounded()
        return bytes.isFinite ? bytes : nil
    }

    /// A short human form: `812 B`, `44.1 KB`, `2.50 MB`.
    public static func format(_ bytes: Int) -> String {
        let value = Double(bytes)
        if bytes < 1000 { return "\(bytes) B" }
        if bytes < 1_000_000 { return String(format: "%.1f KB", value / 1000) }
        if bytes < 1_000_000_000 { return String(format: "%.2f MB", value / 1_000_000) }
        return String(format: "%.2f GB", value / 1_000_000_000)
    }
}

/// Parses durations: `120`, `120s`, `2m`, `500ms`, `1h`, `1.5m`.
public enum DurationText {
    /// The longest duration a file or flag may give: 10 years of 365.25 days (315,576,000 s), so that a deadline in
    /// nanoseconds or milliseconds always fits a 64-bit integer.
    public static let maximum = 315_576_000.0

    /// Seconds for `text`, or nil when it is not a duration.
    public static func parse(_ text: String) -> Double? {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        for (suffix, factor) in units where trimmed.hasSuffix(suffix) {
            guard let value = Double(trimmed.dropLast(suffix.count)), value.isFinite, value >= 0 else { return nil }
            return value * factor
        }
        guard let value = Double(trimmed), value.isFinite, value >= 0 else { return nil }
        return value
    }
}

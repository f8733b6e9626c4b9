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

    /// A byte size: a number of bytes or `500KB`, `1.5MB`, `2MiB`.
    public func byteSize() throws(DataError) -> Int {
        let text = try string()
        guard let bytes = ByteSize.parse(text) else {
            throw error("\"\(text)\" is not a size; write bytes or 500KB, 1.5MB, 2MiB")
        }
        return bytes
    }

    /// A duration in seconds: `120`, `120s`, `2m`, `500ms`, `1h`.
    public func seconds() throws(DataError) -> Double {
        let text = try string()
        guard let seconds = DurationText.parse(text) else {
            throw error("\"\(text)\" is not a duration; write 120, 120s, 2m or 500ms")
        }
        return seconds
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

/// Parses byte sizes: `2000000`, `500KB`, `1.5MB`, `2GB` (powers of 1000) and `512KiB`, `2MiB` (powers of 1024).
public enum ByteSize {
    /// Bytes for `text`, or nil when it is not a size.
    public static func parse(_ text: String) -> Int? {
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
        guard bytes < 9.0e18 else { return nil }
        return Int(bytes)
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

import Foundation

/// JSON problems said in words: a `DecodingError` becomes `missing key `labels`` or
/// `key `architecture.hidden[0]`: expected a whole number`, and a syntax error its line, instead of a type dump.
public enum DecodingProblem {
    /// A decoding error in words: the key path and what was expected.
    public static func describe(_ error: DecodingError) -> String {
        switch error {
        case .keyNotFound(let key, let context):
            let parent = path(context.codingPath)
            return "missing key `\(parent.isEmpty ? key.stringValue : "\(parent).\(key.stringValue)")`"
        case .typeMismatch(let type, let context), .valueNotFound(let type, let context):
            return "key `\(path(context.codingPath))`: expected \(typeName(type))"
        case .dataCorrupted(let context):
            if !context.codingPath.isEmpty { return "key `\(path(context.codingPath))`: invalid value" }
            if let underlying = context.underlyingError { return "not valid JSON (\(syntax(underlying)))" }
            return "not valid JSON, or a number too large for its field"
        @unknown default:
            return "cannot be decoded"
        }
    }

    /// Any error from decoding JSON in words (a `DecodingError` as ``describe(_:)``, a syntax error as Foundation's
    /// reason without its error domain).
    public static func describe(any error: any Error) -> String {
        if let error = error as? DecodingError { return describe(error) }
        if FileProblem.isFileError(error), (error as NSError).code != 3840 { return FileProblem.reason(error) }
        return "not valid JSON (\(syntax(error)))"
    }

    /// `architecture.hidden[0]` for a coding path.
    static func path(_ codingPath: [any CodingKey]) -> String {
        codingPath.map { key in key.intValue.map { "[\($0)]" } ?? ".\(key.stringValue)" }.joined()
            .trimmingCharacters(in: CharacterSet(charactersIn: "."))
    }

    static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Int.Type, is Int64.Type, is Int32.Type, is UInt64.Type: "a whole number"
        case is Bool.Type: "true or false"
        case is Double.Type, is Float.Type: "a number"
        default: "a value of type \(type)"
        }
    }

    /// Foundation's description of a JSON syntax error (`Invalid value around character 19`), without the period.
    public static func syntax(_ error: any Error) -> String {
        let text = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? "malformed"
        return text.hasSuffix(".") ? String(text.dropLast()) : text
    }

    /// The 1-based line of a JSON syntax error in `data`, from the line or the byte offset Foundation reports.
    public static func line(of error: any Error, in data: Data) -> Int? {
        if case .dataCorrupted(let context) = error as? DecodingError, let underlying = context.underlyingError {
            return line(of: underlying, in: data)
        }
        let text = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? ""
        if let match = text.firstMatch(of: /line (\d+)/), let line = Int(match.1) { return line }
        guard let match = text.firstMatch(of: /character (\d+)/), let offset = Int(match.1) else { return nil }
        return data.prefix(offset).reduce(1) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }
    }
}

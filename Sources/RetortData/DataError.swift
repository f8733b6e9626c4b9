import Foundation

/// An error in user-supplied data or configuration: where it is and how to fix it.
///
/// `description` is the one-line form the CLI prints: `FILE:LINE: message` (or `FILE: message`).
public struct DataError: Error, Sendable, CustomStringConvertible {
    /// The kind of problem; the CLI maps it to an exit code.
    public enum Code: String, Sendable {
        /// The data is malformed or inconsistent (exit 65).
        case badData = "bad-data"
        /// A file or folder does not exist or cannot be read (exit 66).
        case missingInput = "missing-input"
        /// A command-line value is malformed (exit 64).
        case usage
        /// An output cannot be created (exit 73).
        case cannotCreateOutput = "cannot-create-output"
        /// Reading or writing failed part-way (exit 74).
        case io
    }

    /// The kind of problem.
    public let code: Code
    /// What is wrong and how to fix it.
    public let message: String
    /// The file at fault, when there is one.
    public let file: String?
    /// The 1-based line in `file`, when known.
    public let line: Int?
    /// Further findings of the same validation pass (validation collects all, not only the first).
    public let more: [DataError]

    /// An error of `code` with `message`, located at `file:line` where known.
    public init(_ code: Code, _ message: String, file: String? = nil, line: Int? = nil, more: [DataError] = []) {
        self.code = code
        self.message = message
        self.file = file
        self.line = line
        self.more = more
    }

    /// The first finding in `FILE:LINE: message` form.
    public var headline: String {
        switch (file, line) {
        case (let file?, let line?): "\(file):\(line): \(message)"
        case (let file?, nil): "\(file): \(message)"
        default: message
        }
    }

    /// Every finding, one per line.
    public var description: String {
        ([headline] + more.map(\.headline)).joined(separator: "\n")
    }

    /// Combines findings into one error (the first leads), or returns nil when there are none.
    public static func combined(_ findings: [DataError], limit: Int = 20) -> DataError? {
        guard let first = findings.first else { return nil }
        var rest = Array(findings.dropFirst().prefix(limit - 1))
        if findings.count > limit {
            rest.append(DataError(first.code, "… and \(findings.count - limit) more problems", file: first.file))
        }
        return DataError(first.code, first.message, file: first.file, line: first.line, more: rest)
    }
}

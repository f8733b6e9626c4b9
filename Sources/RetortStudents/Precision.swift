/// Numeric precision of a student's stored weights.
public enum Precision: String, Sendable, Codable, CaseIterable, Comparable {
    /// 32-bit floats, as trained.
    case fp32
    /// IEEE half-precision weights (biases and scales stay fp32), rounded to nearest after training.
    case fp16
    /// Symmetric per-output-channel 8-bit integer weights with one fp32 scale per output (weight-only).
    case int8

    /// Bytes per stored weight.
    public var bytesPerWeight: Int {
        switch self {
        case .fp32: 4
        case .fp16: 2
        case .int8: 1
        }
    }

    /// Orders by decreasing bytes per weight: fp32 before int8.
    public static func < (a: Precision, b: Precision) -> Bool {
        a.bytesPerWeight > b.bytesPerWeight
    }
}

/// Errors from student training, quantization, export and loading.
public struct StudentError: Error, Sendable, CustomStringConvertible {
    /// A message that says what went wrong and what to do.
    public let message: String
    /// The file involved, if any.
    public let file: String?
    /// The 1-based line in `file`, when known.
    public let line: Int?

    /// An error with `message`, about `file` (at `line`) when given.
    public init(_ message: String, file: String? = nil, line: Int? = nil) {
        self.message = message
        self.file = file
        self.line = line
    }

    /// `FILE:LINE` or `FILE`, when there is a file.
    public var location: String? { file.map { file in line.map { "\(file):\($0)" } ?? file } }

    /// `FILE:LINE: message`, `FILE: message` or `message`.
    public var description: String { location.map { "\($0): \(message)" } ?? message }
}

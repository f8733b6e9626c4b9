/// Errors from the numeric layer: dimensions BLAS cannot take, LAPACK failures.
public struct NumericsError: Error, Sendable, CustomStringConvertible {
    /// What went wrong.
    public enum Code: String, Sendable {
        /// A dimension or stride does not fit BLAS's 32-bit integers.
        case dimensionTooLarge = "dimension-too-large"
        /// Operand shapes do not match.
        case shapeMismatch = "shape-mismatch"
        /// A LAPACK routine reported `info != 0`.
        case lapackFailure = "lapack-failure"
    }

    /// The kind of failure.
    public let code: Code
    /// A message that says what happened and how to avoid it.
    public let message: String

    /// An error with `code` and `message`.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// `code: message`.
    public var description: String { "\(code.rawValue): \(message)" }
}

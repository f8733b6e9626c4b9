import ArgumentParser
import RetortData

/// Range checks for numeric command-line options, run from a command's `validate()`: a value outside its range is a
/// usage error (exit 64) naming the option and the range, before anything runs.
enum OptionChecks {
    /// Throws unless `value` (when given) lies in `range`.
    static func number(_ value: Double?, _ name: String, in range: NumberRange, unit: String = "") throws {
        guard let value, !range.contains(value) else { return }
        throw ValidationError("\(name) must be in \(range.description(unit: unit)), got \(NumberRange.format(value))")
    }

    /// Throws unless `value` (when given) lies in `range`.
    static func integer(_ value: Int?, _ name: String, in range: ClosedRange<Int>) throws {
        guard let value, !range.contains(value) else { return }
        throw ValidationError(
            "\(name) must be a whole number in [\(range.lowerBound), \(range.upperBound)], got \(value)")
    }

    /// A comma-separated list of whole numbers (`200,1000`), each in `range`.
    static func integers(_ text: String, _ name: String, in range: ClosedRange<Int>) throws -> [Int] {
        let parts = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        var values: [Int] = []
        for part in parts {
            guard let value = Int(part), range.contains(value) else {
                throw ValidationError(
                    "\(name): \"\(part)\" is not a whole number in [\(range.lowerBound), \(range.upperBound)]; write e.g. \(range.lowerBound),\(range.lowerBound * 2)"
                )
            }
            values.append(value)
        }
        guard !values.isEmpty else { throw ValidationError("\(name): give at least one number") }
        return values
    }

    /// A duration option (`120`, `2m`) in `(0, 10 years]`.
    static func duration(_ text: String?, _ name: String) throws {
        guard let text else { return }
        guard let seconds = DurationText.parse(text) else {
            throw ValidationError("\(name) \"\(text)\" is not a duration; write 120, 120s or 2m")
        }
        let range = NumberRange.positive(upTo: DurationText.maximum)
        guard range.contains(seconds) else {
            throw ValidationError("\(name) must be in \(range.description(unit: "seconds")), got \(text)")
        }
    }

    /// A size option (`500KB`) up to ``ByteSize/maximum``.
    static func size(_ text: String?, _ name: String) throws {
        guard let text else { return }
        guard let bytes = ByteSize.value(of: text) else {
            throw ValidationError("\(name) \"\(text)\" is not a size; write bytes or 500KB, 2MB")
        }
        guard bytes >= 1, bytes <= Double(ByteSize.maximum) else {
            throw ValidationError("\(name) must be in [1 B, \(ByteSize.format(ByteSize.maximum))], got \(text)")
        }
    }

    /// `HOST:PORT` with a port in 0...65535.
    static func listenAddress(_ text: String?, _ name: String) throws {
        guard let text else { return }
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            ports.contains(port)
        else { throw ValidationError("\(name): write HOST:PORT with a port in [0, 65535], e.g. 127.0.0.1:8787") }
    }

    /// TCP ports (0: any free port).
    static let ports = 0...65_535
    /// Seconds a benchmark measures for: up to a day.
    static let benchmarkSeconds = NumberRange.positive(upTo: 86_400)
    /// A latency a loopback teacher simulates, in ms: up to 10 minutes.
    static let latencyMilliseconds = 0...600_000
}

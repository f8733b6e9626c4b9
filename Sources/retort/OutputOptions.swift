import ArgumentParser
import Foundation

/// `--json` (machine-readable output on stdout) and `--no-color`, shared by every command.
struct OutputOptions: ParsableArguments {
    @Flag(help: "Print JSON on stdout instead of tables (for scripts).")
    var json = false
    @Flag(name: .customLong("no-color"), help: "No colours, even on a terminal.")
    var noColor = false

    /// Whether to colour: a terminal, no --no-color, no NO_COLOR, and not --json.
    var colours: Bool {
        !json && !noColor && isatty(STDOUT_FILENO) == 1 && ProcessInfo.processInfo.environment["NO_COLOR"] == nil
    }

    /// Prints `value` as pretty, key-sorted JSON.
    func printJSON(_ value: some Encodable) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        say(String(decoding: try encoder.encode(value), as: UTF8.self))
    }

    /// Markdown for a terminal: the recommendation line bold green (a student) or yellow (keep the teacher), the
    /// table header dim; unchanged when not colouring.
    func styled(_ markdown: String) -> String {
        guard colours else { return markdown }
        return Self.aligned(markdown).split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            if line.hasPrefix("**Recommendation: distill") { return "\u{1B}[1;32m\(line)\u{1B}[0m" }
            if line.hasPrefix("**Recommendation: no distillation") { return "\u{1B}[1;33m\(line)\u{1B}[0m" }
            if line.hasPrefix("| candidate") || line.hasPrefix("|---") { return "\u{1B}[2m\(line)\u{1B}[0m" }
            if line.contains(" ★ |") { return "\u{1B}[1m\(line)\u{1B}[0m" }
            return String(line)
        }.joined(separator: "\n")
    }

    /// Markdown with every table's columns padded to one width (for a terminal; files keep the compact form, whose
    /// non-latency bytes do not depend on measured latencies).
    static func aligned(_ markdown: String) -> String {
        var lines = markdown.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var index = 0
        while index < lines.count {
            guard lines[index].hasPrefix("|") else {
                index += 1
                continue
            }
            var end = index
            while end < lines.count && lines[end].hasPrefix("|") { end += 1 }
            let rows = lines[index..<end].map { line in
                line.trimmingCharacters(in: .whitespaces).dropFirst().dropLast().split(
                    separator: "|", omittingEmptySubsequences: false
                ).map { $0.trimmingCharacters(in: .whitespaces) }
            }
            let columns = rows.map(\.count).max() ?? 0
            var widths = [Int](repeating: 0, count: columns)
            for row in rows where !row.allSatisfy({ $0.allSatisfy { $0 == "-" } }) {
                for (column, cell) in row.enumerated() { widths[column] = max(widths[column], cell.count) }
            }
            for (offset, row) in rows.enumerated() {
                let isRule = row.allSatisfy { $0.allSatisfy { $0 == "-" } }
                let cells = (0..<columns).map { column -> String in
                    let cell = column < row.count ? row[column] : ""
                    return isRule
                        ? String(repeating: "-", count: widths[column])
                        : cell + String(repeating: " ", count: widths[column] - cell.count)
                }
                lines[index + offset] = "| " + cells.joined(separator: " | ") + " |"
            }
            index = end
        }
        return lines.joined(separator: "\n")
    }
}

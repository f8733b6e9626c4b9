/// CSV fields as RFC 4180 writes them: every CSV file Retort writes (candidates, cascades, usage) quotes alike.
public enum CSV {
    /// `field` as one CSV cell: quoted (inner quotes doubled) when it holds a comma, a quote or a line break.
    public static func field(_ field: String) -> String {
        // Scalars, not Characters: a quote or comma followed by a combining mark is one Character but still ends a cell.
        guard field.unicodeScalars.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else {
            return field
        }
        var quoted = String.UnicodeScalarView()
        quoted.append("\"")
        for scalar in field.unicodeScalars {
            if scalar == "\"" { quoted.append("\"") }
            quoted.append(scalar)
        }
        quoted.append("\"")
        return String(quoted)
    }

    /// One CSV line (no line break) of `fields`, each quoted as ``field(_:)`` says.
    public static func line(_ fields: [String]) -> String { fields.map(field).joined(separator: ",") }
}

/// Text placed in HTML: one escaper for the report, the UI and the gateway's dashboard.
public enum HTML {
    /// `text` safe in element content and in double-quoted attribute values (`&`, `<`, `>`, `"` escaped).
    public static func escape(_ text: String) -> String {
        // Scalars, not Characters, so that a `<` followed by a combining mark is escaped too.
        var escaped = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": escaped.append(contentsOf: "&amp;".unicodeScalars)
            case "<": escaped.append(contentsOf: "&lt;".unicodeScalars)
            case ">": escaped.append(contentsOf: "&gt;".unicodeScalars)
            case "\"": escaped.append(contentsOf: "&quot;".unicodeScalars)
            default: escaped.append(scalar)
            }
        }
        return String(escaped)
    }
}

import Crypto
import Foundation
import RetortNumerics

/// Token bounds of a request before it is sent (FORMATS.md §5 "Reservation").
package enum RequestBounds {
    /// Prompt tokens bounded by the UTF-8 byte length of the messages; output by `max_tokens` (default 4096).
    package static func tokens(_ chat: JSON) -> (prompt: Int, output: Int) {
        var prompt = 0
        for message in chat["messages"]?.array ?? [] {
            switch message["content"] {
            case .some(.string(let text)): prompt += text.utf8.count
            case .some(let other): prompt += other.text.utf8.count
            case .none: break
            }
        }
        let output = chat["max_tokens"]?.int ?? chat["max_completion_tokens"]?.int ?? 4096
        return (prompt, min(max(0, output), 1 << 40))
    }
}

/// The row input a `capture_input` template picks from a chat request (FORMATS.md §8): `{{last_user}}`,
/// `{{first_user}}`, `{{system}}`; other text is kept as written.
package enum CaptureInput {
    /// The input `template` picks from `chat`.
    package static func text(_ template: String, chat: JSON) -> String {
        let messages = chat["messages"]?.array ?? []
        func text(_ message: JSON?) -> String { (try? Wire.text(of: message?["content"])) ?? "" }
        let users = messages.filter { $0["role"]?.string == "user" }
        let system = messages.filter { ["system", "developer"].contains($0["role"]?.string ?? "") }.map { text($0) }
        return template.replacingOccurrences(of: "{{last_user}}", with: text(users.last))
            .replacingOccurrences(of: "{{first_user}}", with: text(users.first))
            .replacingOccurrences(of: "{{system}}", with: system.joined(separator: "\n"))
    }
}

/// SHA-256 of `text`'s UTF-8 bytes, lowercase hex (key hashes, cache keys, batch digests).
package func sha256Hex(_ text: String) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var hex: [UInt8] = []
    hex.reserveCapacity(64)
    for byte in SHA256.hash(data: Data(text.utf8)) {
        hex.append(digits[Int(byte >> 4)])
        hex.append(digits[Int(byte & 0x0F)])
    }
    return String(decoding: hex, as: UTF8.self)
}

/// Latency figures of the ledger (usage reports, capture exports).
package enum Latency {
    /// Linear-interpolated quantile of sorted values (0 when empty), to three decimals.
    package static func quantile(_ sorted: [Double], _ q: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        return (Quantile.interpolated(sorted, q) * 1000).rounded() / 1000
    }
}

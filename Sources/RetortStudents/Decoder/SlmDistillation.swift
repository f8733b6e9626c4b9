import Foundation
import RetortData

/// Token-level distillation targets for an `slm` student from a teacher's `tokens` (FORMATS.md §9): where a teacher
/// token lines up with a token of the student's target, the teacher's top alternatives become a distribution over the
/// student's vocabulary, which training mixes with the one-hot target (``LoRATrainer``).
///
/// The two models tokenize differently, so a position gets soft targets only where the match is exact: the teacher's
/// tokens spell its answer's canonical JSON once whitespace outside strings is dropped (otherwise the row is trained
/// on its sequence alone); the teacher token starts at the same byte of that text as the student's target token and
/// has the same text, with no whitespace dropped from it; and each alternative counted is a single token of the
/// student's vocabulary. The alternatives' probabilities are summed per student token and renormalised over those
/// that map; positions without such a match (and the closing `<|im_end|>`) keep the hard target alone.
public enum SlmDistillation {
    /// A distribution over student token ids (probabilities summing to 1); empty: the hard target alone.
    public typealias Soft = [(token: Int32, probability: Float)]

    /// Soft targets for each position of `target` (the student's tokens of `SlmFormat.target(answer)`), or nil when
    /// `tokens` do not spell `answer`'s canonical JSON.
    public static func softTargets(
        tokens: [TeacherToken], answer: StructuredAnswer, target: [Int32], tokenizer: BPETokenizer
    ) -> [Soft]? {
        // The teacher's text with whitespace outside strings dropped, and where each token starts in it (bytes).
        var stripped: [UInt8] = []
        var starts: [Int] = []
        var pieces: [[UInt8]] = []
        var (inString, escaped) = (false, false)
        for token in tokens {
            starts.append(stripped.count)
            var piece: [UInt8] = []
            for byte in token.token.utf8 {
                if inString {
                    piece.append(byte)
                    if escaped {
                        escaped = false
                    } else if byte == UInt8(ascii: "\\") {
                        escaped = true
                    } else if byte == UInt8(ascii: "\"") {
                        inString = false
                    }
                } else if ![0x20, 0x09, 0x0A, 0x0D].contains(byte) {
                    piece.append(byte)
                    if byte == UInt8(ascii: "\"") { inString = true }
                }
            }
            stripped += piece
            pieces.append(piece)
        }
        guard stripped.elementsEqual(answer.canonicalJSON.utf8) else { return nil }
        var byStart: [Int: Int] = [:]
        for index in tokens.indices where !pieces[index].isEmpty {
            byStart[starts[index]] = byStart[starts[index]] ?? index
        }

        var soft: [Soft] = []
        var offset = 0
        for id in target {
            let text = Array(tokenizer.decode([id]).utf8)
            defer { offset += text.count }
            guard let index = byStart[offset], pieces[index] == text, Array(tokens[index].token.utf8) == text else {
                soft.append([])
                continue
            }
            var mass: [Int32: Double] = [:]
            var seen = Set<String>()
            for alternative in tokens[index].alternatives + [
                .init(token: tokens[index].token, logprob: tokens[index].logprob)
            ]
            where seen.insert(alternative.token).inserted {
                let ids = tokenizer.encode(alternative.token, parseSpecial: false)
                guard ids.count == 1 else { continue }
                mass[ids[0], default: 0] += exp(alternative.logprob)
            }
            let total = mass.values.reduce(0, +)
            guard mass[id] != nil, total > 0 else {
                soft.append([])
                continue
            }
            soft.append(mass.sorted { $0.key < $1.key }.map { ($0.key, Float($0.value / total)) })
        }
        return soft
    }
}

import Foundation
import RetortData

/// How a structured task's rows become text for a decoder language-model student (`slm`): the prompt built from the
/// input with the chat template of SmolLM2-Instruct (ChatML), and the target the student learns and decoding produces,
/// the teacher's answer as canonical JSON (keys sorted, no whitespace) followed by the end-of-turn token.
///
/// Training (sequence-level distillation) and constrained decoding both go through this one definition, so what the
/// student is taught is exactly what the decoder emits.
public enum SlmFormat {
    /// The token that opens a ChatML turn.
    public static let turnStart = "<|im_start|>"
    /// The token that ends a ChatML turn: the last token of every target.
    public static let turnEnd = "<|im_end|>"

    /// The prompt text for one input: a user turn holding the input, then the opening of the assistant turn.
    public static func prompt(_ input: String) -> String {
        "\(turnStart)user\n\(input)\(turnEnd)\n\(turnStart)assistant\n"
    }

    /// The target text for one answer: its canonical JSON, then the end-of-turn token.
    public static func target(_ answer: StructuredAnswer) -> String {
        answer.canonicalJSON + turnEnd
    }

    /// The prompt's token ids (special tokens matched whole).
    public static func promptTokens(_ input: String, tokenizer: BPETokenizer) -> [Int32] {
        tokenizer.encode(prompt(input))
    }

    /// The target's token ids (the JSON text tokenized as a whole, then the end-of-turn token).
    public static func targetTokens(_ answer: StructuredAnswer, tokenizer: BPETokenizer) -> [Int32] {
        tokenizer.encode(target(answer))
    }
}

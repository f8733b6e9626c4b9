import Foundation
import FuzzSupport
import RetortStudents

/// libFuzzer entry: vocab.txt before the first NUL byte (after the three special tokens every BERT vocabulary has),
/// the text to encode after it.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let (vocab, text) = FuzzInput(bytes, size).split
    let lowercase = (vocab.first ?? 0) & 1 == 0
    guard
        let tokenizer = try? WordPieceTokenizer(
            vocabText: "[PAD]\n[UNK]\n[CLS]\n[SEP]\n" + String(decoding: vocab, as: UTF8.self),
            config: Data(#"{"do_lower_case": \#(lowercase)}"#.utf8))
    else { return 0 }
    let input = String(decoding: text, as: UTF8.self)
    // One truncation length per input, chosen by the vocabulary's first byte (one encode per execution).
    let maxLength = [2, 3, 8, 128][Int((vocab.first ?? 0) >> 1) % 4]
    let ids = tokenizer.encode(input, maxLength: maxLength)
    if ids.count > maxLength { fatalError("encode gave \(ids.count) ids for maxLength \(maxLength)") }
    return 0
}

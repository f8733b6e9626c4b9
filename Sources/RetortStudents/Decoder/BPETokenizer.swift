import Foundation

/// Byte-level BPE (GPT-2 style, `tokenizer.ggml.model = "gpt2"`) from a GGUF file's metadata: the vocabulary
/// (`tokenizer.ggml.tokens`), the merges in rank order (`tokenizer.ggml.merges`, `"a b"` each), the token types (control
/// tokens such as `<|im_start|>` are matched whole in the text before anything else) and the bos/eos ids.
///
/// Encoding: special tokens are cut out first; the rest is pre-tokenized (for the `smollm`, `starcoder` and similar
/// pre-tokenizers every digit on its own, then GPT-2's pattern `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+|
/// ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`, implemented here as a scanner over Unicode scalars); each piece's UTF-8 bytes become
/// GPT-2's printable stand-in characters, and adjacent pairs are merged lowest rank first until no merge applies.
public struct BPETokenizer: Sendable {
    /// Token strings by id (byte-level: `Ġ` stands for a space).
    public let tokens: [String]
    /// Beginning-of-sequence id.
    public let bos: Int32
    /// End-of-sequence id (generation stops there).
    public let eos: Int32
    /// Whether digits are split one by one before the GPT-2 pattern (`tokenizer.ggml.pre` of the smollm family).
    public let splitsDigits: Bool
    /// Control and user-defined tokens matched whole in the text, longest first.
    public let specialTokens: [(text: String, id: Int32)]
    private let specialBytes: [(bytes: [UInt8], id: Int32)]
    private let specialFirstBytes: [Bool]
    private let ids: [String: Int32]
    /// `(left << 32 | right)` → (rank, merged id).
    private let merges: [UInt64: (rank: Int32, id: Int32)]
    private let byteSymbol: [Int32]
    private let symbolByte: [Unicode.Scalar: UInt8]

    /// The tokenizer a GGUF file describes; only `gpt2` (byte-level BPE) tokenizers are accepted.
    public init(gguf: GGUFFile) throws(StudentError) {
        let model = try gguf.string("tokenizer.ggml.model")
        guard model == "gpt2" else {
            throw StudentError(
                "tokenizer.ggml.model is \"\(model)\"; Retort reads byte-level BPE (\"gpt2\") tokenizers only",
                file: gguf.file)
        }
        let pre = gguf.metadata["tokenizer.ggml.pre"]?.string ?? "default"
        let known = ["default", "gpt2", "smollm", "starcoder", "refact", "codeshell", "exaone", "minerva", "command-r"]
        guard known.contains(pre) else {
            throw StudentError(
                "tokenizer.ggml.pre \"\(pre)\" is not supported (\(known.joined(separator: ", ")))", file: gguf.file)
        }
        guard let tokenValues = gguf.metadata["tokenizer.ggml.tokens"]?.array,
            case let tokens = tokenValues.compactMap(\.string), tokens.count == tokenValues.count, !tokens.isEmpty,
            tokens.count < Int(Int32.max)
        else { throw StudentError("tokenizer.ggml.tokens is missing or not an array of strings", file: gguf.file) }
        var ids: [String: Int32] = [:]
        ids.reserveCapacity(tokens.count)
        for (id, token) in tokens.enumerated() where ids[token] == nil { ids[token] = Int32(id) }
        let types = gguf.metadata["tokenizer.ggml.token_type"]?.array?.map { $0.integer ?? 1 } ?? []
        var special: [(String, Int32)] = []
        for (id, type) in types.enumerated() where (type == 3 || type == 4) && id < tokens.count && !tokens[id].isEmpty
        {
            special.append((tokens[id], Int32(id)))
        }
        special.sort { $0.0.utf8.count > $1.0.utf8.count }
        var table: [UInt64: (Int32, Int32)] = [:]
        let mergeValues = gguf.metadata["tokenizer.ggml.merges"]?.array ?? []
        table.reserveCapacity(mergeValues.count)
        for (rank, value) in mergeValues.enumerated() {
            guard let text = value.string, let space = text.firstIndex(of: " ") else {
                throw StudentError("tokenizer.ggml.merges[\(rank)] is not \"left right\"", file: gguf.file)
            }
            let (left, right) = (String(text[..<space]), String(text[text.index(after: space)...]))
            guard let l = ids[left], let r = ids[right], let merged = ids[left + right] else {
                throw StudentError(
                    "tokenizer.ggml.merges[\(rank)] \"\(text)\" uses a token the vocabulary lacks", file: gguf.file)
            }
            let key = UInt64(UInt32(l)) << 32 | UInt64(UInt32(r))
            if table[key] == nil { table[key] = (Int32(rank), merged) }
        }
        func id(_ key: String, _ fallback: Int32) throws(StudentError) -> Int32 {
            guard let value = gguf.metadata[key] else { return fallback }
            guard let id = value.integer, (0..<tokens.count).contains(id) else {
                throw StudentError("\(key) is \(value), not a token id below \(tokens.count)", file: gguf.file)
            }
            return Int32(id)
        }
        // Bytes the vocabulary has no symbol for (SmolLM2 lacks a few control bytes) become the unknown token.
        let unknown = try id("tokenizer.ggml.unknown_token_id", 0)
        var byteSymbol = [Int32](repeating: unknown, count: 256)
        var symbolByte: [Unicode.Scalar: UInt8] = [:]
        for (byte, scalar) in Self.byteScalars.enumerated() {
            symbolByte[scalar] = UInt8(byte)
            if let id = ids[String(Character(scalar))] { byteSymbol[byte] = id }
        }
        guard byteSymbol.filter({ $0 != unknown }).count >= 128 else {
            throw StudentError(
                "the vocabulary lacks most of the 256 byte symbols; not a byte-level BPE vocabulary", file: gguf.file)
        }
        self.tokens = tokens
        self.ids = ids
        self.merges = table
        self.specialTokens = special
        self.specialBytes = special.map { (Array($0.0.utf8), $0.1) }
        var first = [Bool](repeating: false, count: 256)
        for (text, _) in special { first[Int(text.utf8.first ?? 0)] = true }
        self.specialFirstBytes = first
        self.byteSymbol = byteSymbol
        self.symbolByte = symbolByte
        self.splitsDigits = !["default", "gpt2"].contains(pre)
        self.bos = try id("tokenizer.ggml.bos_token_id", 0)
        self.eos = try id("tokenizer.ggml.eos_token_id", 0)
    }

    /// GPT-2's byte → printable character table: printable Latin-1 bytes stand for themselves, the other 68 bytes map
    /// to U+0100 upwards in byte order.
    public static let byteScalars: [Unicode.Scalar] = {
        var next: UInt32 = 256
        return (0..<256).map { byte -> Unicode.Scalar in
            if (33...126).contains(byte) || (161...172).contains(byte) || (174...255).contains(byte) {
                return Unicode.Scalar(UInt8(byte))
            }
            defer { next += 1 }
            return Unicode.Scalar(next) ?? "?"
        }
    }()

    /// Vocabulary size.
    public var count: Int { tokens.count }

    /// The id of a token string, if the vocabulary has it.
    public func id(of token: String) -> Int32? { ids[token] }

    /// Token ids of `text`; special tokens' text (`<|im_start|>`) becomes their id when `parseSpecial`.
    public func encode(_ text: String, addBOS: Bool = false, parseSpecial: Bool = true) -> [Int32] {
        var out: [Int32] = addBOS ? [bos] : []
        func plain(_ stretch: Substring) {
            for piece in pretokenize(stretch) { bytePairs(Array(piece.utf8), into: &out) }
        }
        guard parseSpecial, !specialTokens.isEmpty else {
            plain(Substring(text))
            return out
        }
        // One pass over the bytes: at each byte that can start a special token, the longest one matching there.
        // (UTF-8 is self-synchronizing, so a match starts on a scalar boundary.)
        let bytes = Array(text.utf8)
        let utf8 = text.utf8
        var (start, index, offset) = (text.startIndex, utf8.startIndex, 0)
        while offset < bytes.count {
            if specialFirstBytes[Int(bytes[offset])],
                let (length, id) = specialBytes.first(where: { special, _ in
                    special.count <= bytes.count - offset
                        && bytes[offset..<(offset + special.count)].elementsEqual(special)
                }).map({ ($0.bytes.count, $0.id) })
            {
                plain(text[start..<index])
                out.append(id)
                index = utf8.index(index, offsetBy: length)
                offset += length
                start = index
            } else {
                index = utf8.index(after: index)
                offset += 1
            }
        }
        plain(text[start...])
        return out
    }

    /// The text of `ids` (byte-level symbols back to bytes, then UTF-8 with replacement characters for broken
    /// sequences); special tokens are written as their text unless `skipSpecial`.
    public func decode(_ ids: [Int32], skipSpecial: Bool = false) -> String {
        var bytes: [UInt8] = []
        let special = Set(specialTokens.map(\.id))
        for id in ids where id >= 0 && Int(id) < tokens.count {
            if special.contains(id) {
                if !skipSpecial { bytes += Array(tokens[Int(id)].utf8) }
                continue
            }
            for scalar in tokens[Int(id)].unicodeScalars {
                if let byte = symbolByte[scalar] { bytes.append(byte) } else { bytes += Array(String(scalar).utf8) }
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Merges one pre-token's bytes, lowest-ranked adjacent pair first, appending the resulting ids.
    func bytePairs(_ bytes: [UInt8], into out: inout [Int32]) {
        var symbols = bytes.map { byteSymbol[Int($0)] }
        while symbols.count > 1 {
            var best: (rank: Int32, at: Int, id: Int32)?
            for i in 0..<(symbols.count - 1) {
                let key = UInt64(UInt32(symbols[i])) << 32 | UInt64(UInt32(symbols[i + 1]))
                if let merge = merges[key], merge.rank < (best?.rank ?? .max) { best = (merge.rank, i, merge.id) }
            }
            guard let best else { break }
            symbols[best.at] = best.id
            symbols.remove(at: best.at + 1)
        }
        out += symbols
    }

    /// The pre-tokenizer: digits one by one (when ``splitsDigits``), then GPT-2's pattern within each stretch.
    public func pretokenize(_ text: Substring) -> [Substring] {
        var pieces: [Substring] = []
        guard splitsDigits else {
            Self.gpt2Split(text, into: &pieces)
            return pieces
        }
        var start = text.startIndex
        var i = text.unicodeScalars.startIndex
        let scalars = text.unicodeScalars
        while i < scalars.endIndex {
            let next = scalars.index(after: i)
            if Self.isNumber(scalars[i]) {
                if start < i { Self.gpt2Split(text[start..<i], into: &pieces) }
                pieces.append(text[i..<next])
                start = next
            }
            i = next
        }
        if start < text.endIndex { Self.gpt2Split(text[start...], into: &pieces) }
        return pieces
    }

    static func isLetter(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: true
        default: false
        }
    }

    static func isNumber(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: true
        default: false
        }
    }

    /// `\s` as the regex engines of Hugging Face and llama.cpp see it: Unicode White_Space.
    static func isSpace(_ s: Unicode.Scalar) -> Bool { s.properties.isWhitespace }

    static func isOther(_ s: Unicode.Scalar) -> Bool { !isSpace(s) && !isLetter(s) && !isNumber(s) }

    /// GPT-2's pattern as a scanner (leftmost alternative wins, as in the regex).
    static func gpt2Split(_ text: Substring, into pieces: inout [Substring]) {
        let s = Array(text.unicodeScalars)
        var indices: [String.Index] = []
        indices.reserveCapacity(s.count + 1)
        var index = text.unicodeScalars.startIndex
        while index < text.unicodeScalars.endIndex {
            indices.append(index)
            index = text.unicodeScalars.index(after: index)
        }
        indices.append(text.unicodeScalars.endIndex)
        var i = 0
        func run(from start: Int, _ test: (Unicode.Scalar) -> Bool) -> Int {
            var j = start
            while j < s.count, test(s[j]) { j += 1 }
            return j
        }
        while i < s.count {
            var end = i
            if s[i] == "'", i + 1 < s.count {
                let one = s[i + 1]
                if ["s", "t", "m", "d"].contains(one) {
                    end = i + 2
                } else if i + 2 < s.count,
                    ["re", "ve", "ll"].contains(String(String.UnicodeScalarView([one, s[i + 2]])))
                {
                    end = i + 3
                }
            }
            if end == i {
                let body = s[i] == " " && i + 1 < s.count && !isSpace(s[i + 1]) ? i + 1 : i
                if isLetter(s[body]) {
                    end = run(from: body, isLetter)
                } else if isNumber(s[body]) {
                    end = run(from: body, isNumber)
                } else if isOther(s[body]) {
                    end = run(from: body, isOther)
                } else {
                    // Whitespace: all of it at the end of the text; otherwise all but the last (which then starts the
                    // next piece, as ` ?X` when it is a space) when the run is longer than one; else the one.
                    let stop = run(from: i, isSpace)
                    end = stop == s.count || stop - i == 1 ? stop : stop - 1
                }
            }
            pieces.append(text[indices[i]..<indices[end]])
            i = end
        }
    }
}

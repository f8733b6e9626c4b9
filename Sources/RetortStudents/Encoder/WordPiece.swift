import Foundation

/// BERT's tokenizer: the basic pass (clean control characters, space out CJK ideographs, lower-case and strip accents
/// when asked, split on whitespace and punctuation) then greedy longest-match-first WordPiece against a vocabulary,
/// continuation pieces prefixed `##`, `[UNK]` for a word that cannot be covered or is longer than 100 characters.
public struct WordPieceTokenizer: Sendable {
    /// Token → id (line number in vocab.txt).
    public let vocabulary: [String: Int32]
    /// Whether to lower-case (and, with it, strip accents unless `stripAccents` says otherwise).
    public let lowercase: Bool
    /// Whether to strip accents (NFD, drop combining marks); defaults to `lowercase`, as BERT does.
    public let stripAccents: Bool
    /// Ids of `[CLS]`, `[SEP]` and `[UNK]`.
    public let classifierToken: Int32, separatorToken: Int32, unknownToken: Int32
    /// Words longer than this many characters become `[UNK]`.
    public let maxCharactersPerWord = 100
    /// The most Unicode scalars a vocabulary entry has in canonical decomposition: no longer piece can match one
    /// (String keys compare by canonical equivalence, and a string has at most as many scalars as its NFD form), so
    /// the longest-match loop starts there instead of at the word's end: O(word × longest entry), not O(word²).
    let longestEntry: Int

    /// A tokenizer over `vocabulary` (token → id).
    public init(vocabulary: [String: Int32], lowercase: Bool, stripAccents: Bool? = nil) throws(StudentError) {
        guard let cls = vocabulary["[CLS]"], let sep = vocabulary["[SEP]"], let unk = vocabulary["[UNK]"] else {
            throw StudentError("the vocabulary lacks [CLS], [SEP] or [UNK]; is this a BERT vocab.txt?")
        }
        self.vocabulary = vocabulary
        self.lowercase = lowercase
        self.stripAccents = stripAccents ?? lowercase
        (classifierToken, separatorToken, unknownToken) = (cls, sep, unk)
        longestEntry = vocabulary.keys.reduce(0) {
            max($0, $1.decomposedStringWithCanonicalMapping.unicodeScalars.count)
        }
    }

    /// Reads vocab.txt (one token per line, id = line number) and the lower-casing flags of tokenizer_config.json when
    /// it sits beside it (BERT's defaults otherwise: lower-case, strip accents).
    public init(folder: URL) throws(StudentError) {
        let vocabURL = folder.appendingPathComponent("vocab.txt")
        guard let text = try? String(contentsOf: vocabURL, encoding: .utf8) else {
            throw StudentError("cannot read vocab.txt; the encoder folder needs one", file: vocabURL.path)
        }
        let config = try? Data(contentsOf: folder.appendingPathComponent("tokenizer_config.json"))
        try self.init(vocabText: text, config: config)
    }

    /// A tokenizer from the text of vocab.txt and the bytes of tokenizer_config.json (nil: BERT's defaults), as
    /// ``init(folder:)`` reads them; the fuzzer's in-memory entry.
    public init(vocabText text: String, config: Data?) throws(StudentError) {
        var vocabulary: [String: Int32] = [:]
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let token = line.hasSuffix("\r") ? String(line.dropLast()) : String(line)
            if !token.isEmpty && vocabulary[token] == nil { vocabulary[token] = Int32(index) }
        }
        var lowercase = true
        var strip: Bool?
        if let data = config,
            let config = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        {
            lowercase = config["do_lower_case"] as? Bool ?? true
            strip = config["strip_accents"] as? Bool
        }
        try self.init(vocabulary: vocabulary, lowercase: lowercase, stripAccents: strip)
    }

    /// `[CLS] pieces… [SEP]`, at most `maxLength` ids (the pieces are truncated to `maxLength − 2`).
    public func encode(_ text: String, maxLength: Int) -> [Int32] {
        var pieces = wordPieces(basicTokens(text))
        if pieces.count > maxLength - 2 { pieces.removeLast(pieces.count - max(0, maxLength - 2)) }
        return [classifierToken] + pieces + [separatorToken]
    }

    /// The basic pass: words and punctuation marks.
    public func basicTokens(_ text: String) -> [String] {
        var cleaned = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            if scalar.value == 0 || scalar.value == 0xFFFD || Self.isControl(scalar) { continue }
            if Self.isWhitespace(scalar) {
                cleaned.append(" ")
            } else if Self.isCJK(scalar) {
                cleaned.append(" ")
                cleaned.append(scalar)
                cleaned.append(" ")
            } else {
                cleaned.append(scalar)
            }
        }
        var tokens: [String] = []
        for word in String(cleaned).split(separator: " ", omittingEmptySubsequences: true) {
            var word = String(word)
            if lowercase { word = word.lowercased() }
            if stripAccents {
                word = String(
                    String.UnicodeScalarView(
                        word.decomposedStringWithCanonicalMapping.unicodeScalars.filter {
                            $0.properties.generalCategory != .nonspacingMark
                        }))
            }
            var current = String.UnicodeScalarView()
            for scalar in word.unicodeScalars {
                if Self.isPunctuation(scalar) {
                    if !current.isEmpty { tokens.append(String(current)) }
                    current = String.UnicodeScalarView()
                    tokens.append(String(scalar))
                } else {
                    current.append(scalar)
                }
            }
            if !current.isEmpty { tokens.append(String(current)) }
        }
        return tokens
    }

    /// Greedy longest-match-first WordPiece over each word.
    public func wordPieces(_ words: [String]) -> [Int32] {
        var ids: [Int32] = []
        for word in words {
            let scalars = Array(word.unicodeScalars)
            if scalars.count > maxCharactersPerWord {
                ids.append(unknownToken)
                continue
            }
            var start = 0
            var pieces: [Int32] = []
            var covered = true
            while start < scalars.count {
                var end = min(scalars.count, start + longestEntry)
                var found: Int32?
                while start < end {
                    var piece = String(String.UnicodeScalarView(scalars[start..<end]))
                    if start > 0 { piece = "##" + piece }
                    if let id = vocabulary[piece] {
                        found = id
                        break
                    }
                    end -= 1
                }
                guard let id = found else {
                    covered = false
                    break
                }
                pieces.append(id)
                start = end
            }
            if covered { ids.append(contentsOf: pieces) } else { ids.append(unknownToken) }
        }
        return ids
    }

    static func isWhitespace(_ scalar: Unicode.Scalar) -> Bool {
        scalar == " " || scalar == "\t" || scalar == "\n" || scalar == "\r"
            || scalar.properties.generalCategory == .spaceSeparator
    }

    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        if scalar == "\t" || scalar == "\n" || scalar == "\r" { return false }
        switch scalar.properties.generalCategory {
        case .control, .format, .unassigned, .privateUse, .surrogate: return true
        default: return false
        }
    }

    /// ASCII non-alphanumerics count as punctuation (BERT's rule, so `$` and `^` split too), then Unicode `P*`.
    static func isPunctuation(_ scalar: Unicode.Scalar) -> Bool {
        let v = scalar.value
        if (33...47).contains(v) || (58...64).contains(v) || (91...96).contains(v) || (123...126).contains(v) {
            return true
        }
        switch scalar.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation, .initialPunctuation,
            .finalPunctuation, .otherPunctuation:
            return true
        default: return false
        }
    }

    static func isCJK(_ scalar: Unicode.Scalar) -> Bool {
        let v = scalar.value
        return (0x4E00...0x9FFF).contains(v) || (0x3400...0x4DBF).contains(v) || (0x20000...0x2A6DF).contains(v)
            || (0x2A700...0x2B73F).contains(v) || (0x2B740...0x2B81F).contains(v) || (0x2B820...0x2CEAF).contains(v)
            || (0xF900...0xFAFF).contains(v) || (0x2F800...0x2FA1F).contains(v)
    }
}

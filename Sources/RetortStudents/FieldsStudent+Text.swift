import RetortNumerics

/// One token of an input: a run of letters and digits (with `.` or `,` inside a number and `'` inside a word), or a
/// single other non-space character (`-`, `%`, `°`); its place in the text, so a copied span is the input's own
/// substring.
struct FieldToken: Sendable, Equatable {
    /// The token as written.
    let text: Substring
    /// Lowercased.
    let lower: String
    /// Its characters in the input.
    let range: Range<String.Index>

    /// The token's number when it is written in digits (`40`, `29.5`, `1,000`).
    var digitValue: Double? {
        guard let first = text.first, first.isNumber else { return nil }
        return Double(text.filter { $0 != "," })
    }

    /// Whether it is an English number word (`five`, `twenty`, `hundred`).
    var isNumberWord: Bool { NumberWords.values[lower] != nil || NumberWords.scales[lower] != nil }
}

/// Splitting inputs into tokens and reading numbers from them, in digits or in words.
enum FieldText {
    /// The tokens of `text`.
    static func tokens(_ text: String) -> [FieldToken] {
        var tokens: [FieldToken] = []
        var index = text.startIndex
        func isWordCharacter(_ character: Character) -> Bool { character.isLetter || character.isNumber }
        while index < text.endIndex {
            let character = text[index]
            if character.isWhitespace {
                index = text.index(after: index)
                continue
            }
            let start = index
            index = text.index(after: index)
            if isWordCharacter(character) {
                while index < text.endIndex {
                    let next = text[index]
                    if isWordCharacter(next) {
                        index = text.index(after: index)
                        continue
                    }
                    // `29.5`, `1,000` and `i'd` stay one token: a joiner between two word characters of the right kind.
                    let after = text.index(after: index)
                    guard after < text.endIndex else { break }
                    let previous = text[text.index(before: index)]
                    let following = text[after]
                    let joinsNumber = (next == "." || next == ",") && previous.isNumber && following.isNumber
                    let joinsWord = (next == "'" || next == "’") && previous.isLetter && following.isLetter
                    guard joinsNumber || joinsWord else { break }
                    index = after
                }
            }
            let range = start..<index
            tokens.append(FieldToken(text: text[range], lower: text[range].lowercased(), range: range))
        }
        return tokens
    }

    /// The number the tokens spell: the first token written in digits, else the number words from the first one on
    /// (`sixty - seven` = 67, `seventy - one point five` = 71.5, `two hundred and five` = 205); nil when neither.
    static func number(in tokens: ArraySlice<FieldToken>) -> Double? {
        if let digits = tokens.lazy.compactMap(\.digitValue).first { return digits }
        guard let start = tokens.firstIndex(where: \.isNumberWord) else { return nil }
        var total = 0.0
        var current = 0.0
        var fraction = ""
        var afterPoint = false
        var words = 0
        for token in tokens[start...] {
            if token.lower == "-" || (token.lower == "and" && !afterPoint) { continue }
            if token.lower == "point" && !afterPoint && words > 0 {
                afterPoint = true
                continue
            }
            if afterPoint {
                guard let digit = NumberWords.values[token.lower], digit < 10 else { break }
                fraction += String(Int(digit))
                continue
            }
            if let value = NumberWords.values[token.lower] {
                current += value
            } else if let scale = NumberWords.scales[token.lower] {
                if scale == 100 {
                    current = max(current, 1) * 100
                } else {
                    total += max(current, 1) * scale
                    current = 0
                }
            } else {
                break
            }
            words += 1
        }
        guard words > 0 else { return nil }
        let whole = total + current
        guard !fraction.isEmpty, let decimals = Double("0." + fraction) else { return whole }
        return whole + decimals
    }

    /// The span `range` grown over neighbouring number words, hyphens between them and `point`: a number is read
    /// whole (`forty` inside `forty-one` becomes `forty-one`).
    static func numberPhrase(around range: ClosedRange<Int>, in tokens: [FieldToken]) -> ClosedRange<Int> {
        func joins(_ index: Int) -> Bool {
            tokens.indices.contains(index) && (tokens[index].lower == "-" || tokens[index].lower == "point")
        }
        func word(_ index: Int) -> Bool { tokens.indices.contains(index) && tokens[index].isNumberWord }
        guard (range.lowerBound...range.upperBound).contains(where: word) else { return range }
        var lower = range.lowerBound
        var upper = range.upperBound
        while true {
            if word(lower - 1) {
                lower -= 1
            } else if joins(lower - 1) && word(lower - 2) {
                lower -= 2
            } else {
                break
            }
        }
        while true {
            if word(upper + 1) {
                upper += 1
            } else if joins(upper + 1) && word(upper + 2) {
                upper += 2
            } else {
                break
            }
        }
        return lower...upper
    }

    /// The first span of `tokens` whose lowercased tokens are `value`'s, or nil.
    static func locate(text value: String, in tokens: [FieldToken]) -> ClosedRange<Int>? {
        let wanted = Self.tokens(value).map(\.lower)
        guard !wanted.isEmpty, wanted.count <= tokens.count else { return nil }
        for start in 0...(tokens.count - wanted.count)
        where (0..<wanted.count).allSatisfy({ tokens[start + $0].lower == wanted[$0] }) {
            return start...(start + wanted.count - 1)
        }
        return nil
    }

    /// The first span of `tokens` that reads as `number`: a token in digits, else a whole number phrase in words.
    static func locate(number: Double, in tokens: [FieldToken]) -> ClosedRange<Int>? {
        if let index = tokens.firstIndex(where: { $0.digitValue == number }) { return index...index }
        var index = 0
        while index < tokens.count {
            if tokens[index].isNumberWord {
                let phrase = numberPhrase(around: index...index, in: tokens)
                if Self.number(in: tokens[phrase]) == number { return phrase }
                index = phrase.upperBound + 1
            } else {
                index += 1
            }
        }
        return nil
    }
}

/// English number words.
enum NumberWords {
    /// Units, teens and tens.
    static let values: [String: Double] = {
        let units = [
            "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
            "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
        ]
        let tens = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
        var values: [String: Double] = [:]
        for (index, word) in units.enumerated() { values[word] = Double(index) }
        for (index, word) in tens.enumerated() { values[word] = Double(20 + 10 * index) }
        return values
    }()
    /// Multipliers.
    static let scales: [String: Double] = ["hundred": 100, "thousand": 1000, "million": 1_000_000]
}

/// Hashed per-token window features for the span tagger: the token, its neighbours at ±1 and ±2, the bigrams around
/// it, shapes, 3-character prefix and suffix, and the sentence's words (what the request is about), each hashed
/// (FNV-1a over UTF-8 with a 64-bit finalizer, the same on every machine) into `2^bucketsLog2` buckets; each token's
/// row is L2-normalised.
struct TokenFeaturizer: Sendable, Equatable {
    /// log2 of the bucket count.
    let bucketsLog2: Int

    /// The features of every token of every text, texts in order (rows = total tokens).
    func features(for tokenized: [[FieldToken]]) -> SparseMatrix {
        var offsets = [0]
        var columns: [Int32] = []
        var values: [Float] = []
        var scratch: [UInt32] = []
        let mask = UInt64((1 << bucketsLog2) - 1)
        for tokens in tokenized {
            var sentence: [UInt32] = []
            for token in tokens where token.lower.first.map({ $0.isLetter || $0.isNumber }) ?? false {
                sentence.append(Self.bucket("sw", token.lower, mask: mask))
            }
            let first = tokens.first.map { Self.bucket("first", $0.lower, mask: mask) }
            for position in tokens.indices {
                scratch.removeAll(keepingCapacity: true)
                func word(_ offset: Int) -> String {
                    let index = position + offset
                    return tokens.indices.contains(index) ? tokens[index].lower : (offset < 0 ? "<s>" : "</s>")
                }
                func shape(_ offset: Int) -> String {
                    let index = position + offset
                    return tokens.indices.contains(index) ? Self.shape(tokens[index]) : "_"
                }
                let current = word(0)
                scratch.append(Self.bucket("bias", "", mask: mask))
                scratch.append(Self.bucket("w", current, mask: mask))
                scratch.append(Self.bucket("p", word(-1), mask: mask))
                scratch.append(Self.bucket("n", word(1), mask: mask))
                scratch.append(Self.bucket("pp", word(-2), mask: mask))
                scratch.append(Self.bucket("nn", word(2), mask: mask))
                scratch.append(Self.bucket("pb", word(-1) + " " + current, mask: mask))
                scratch.append(Self.bucket("nb", current + " " + word(1), mask: mask))
                scratch.append(Self.bucket("s", shape(0), mask: mask))
                scratch.append(Self.bucket("ps", shape(-1), mask: mask))
                scratch.append(Self.bucket("ns", shape(1), mask: mask))
                scratch.append(Self.bucket("pre", String(current.prefix(3)), mask: mask))
                scratch.append(Self.bucket("suf", String(current.suffix(3)), mask: mask))
                scratch.append(Self.bucket("pos", String(min(position, 3)), mask: mask))
                // The nearest words before and after that are not part of a number phrase, by their first three
                // letters: the unit after `59-hour` or `forty-one minutes`, the `for` / `by` before it.
                scratch.append(Self.bucket("pu", Self.contextWord(tokens, from: position, step: -1), mask: mask))
                scratch.append(Self.bucket("nu", Self.contextWord(tokens, from: position, step: 1), mask: mask))
                if let first { scratch.append(first) }
                scratch.append(contentsOf: sentence)
                Self.appendRow(scratch, columns: &columns, values: &values)
                offsets.append(values.count)
            }
        }
        return SparseMatrix(
            rows: offsets.count - 1, columns: 1 << bucketsLog2, rowOffsets: offsets, columnIndices: columns,
            values: values)
    }

    /// Sorted buckets with their counts, L2-normalised, appended as one CSR row.
    static func appendRow(_ buckets: [UInt32], columns: inout [Int32], values: inout [Float]) {
        let sorted = buckets.sorted()
        let start = values.count
        var index = 0
        while index < sorted.count {
            let bucket = sorted[index]
            var count: Float = 0
            while index < sorted.count && sorted[index] == bucket {
                count += 1
                index += 1
            }
            columns.append(Int32(bitPattern: bucket))
            values.append(count)
        }
        let norm = values[start...].reduce(0) { $0 + $1 * $1 }.squareRoot()
        if norm > 0 { for k in start..<values.count { values[k] /= norm } }
    }

    /// The first three letters of the first word from `position` in direction `step` that is a word (letters or
    /// digits) and not a number word, a hyphen, `point` or `and`; `<s>` / `</s>` at the ends.
    static func contextWord(_ tokens: [FieldToken], from position: Int, step: Int) -> String {
        var index = position + step
        while tokens.indices.contains(index) {
            let token = tokens[index]
            let skipped =
                token.isNumberWord || token.digitValue != nil || token.lower == "point" || token.lower == "and"
                || !(token.lower.first.map { $0.isLetter || $0.isNumber } ?? false)
            if !skipped { return String(token.lower.prefix(3)) }
            index += step
        }
        return step < 0 ? "<s>" : "</s>"
    }

    /// A token's shape: `d` digits, `n` a number word, `C` capitalised, `l` lowercase, else the token itself.
    static func shape(_ token: FieldToken) -> String {
        if token.digitValue != nil { return "d" }
        if token.isNumberWord { return "n" }
        guard let first = token.text.first else { return "_" }
        if first.isUppercase { return "C" }
        if first.isLetter { return "l" }
        return String(token.text)
    }

    /// FNV-1a of `tag`, a separator and `text`, finalized and masked to a bucket.
    static func bucket(_ tag: String, _ text: String, mask: UInt64) -> UInt32 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in tag.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01B3
        }
        hash ^= 0x1F
        hash = hash &* 0x100_0000_01B3
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01B3
        }
        hash ^= hash >> 33
        hash = hash &* 0xFF51_AFD7_ED55_8CCD
        hash ^= hash >> 33
        hash = hash &* 0xC4CE_B9FE_1A85_EC53
        hash ^= hash >> 33
        return UInt32(hash & mask)
    }
}

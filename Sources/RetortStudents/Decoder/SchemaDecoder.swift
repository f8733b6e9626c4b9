import Foundation
import RetortData

/// Greedy decoding of a ``LlamaDecoder`` constrained to the canonical JSON of answers valid for a schema (the `slm`
/// student's output, ``SlmFormat/target(_:)``): every output parses, is valid under the schema, and ends the object
/// with `<|im_end|>`.
///
/// Each step allows the tokens whose bytes keep ``SchemaAutomaton`` alive (a BPE token may cross a boundary, as `":"`
/// or `"},` do: its whole text is checked) and takes the highest logit among them. Text the schema fixes (`{"`, a key
/// after its first letters, `":"`, the common start of the enum values left) is appended without a model choice,
/// tokenized the way ``BPETokenizer/encode(_:addBOS:parseSpecial:)`` would split the finished target (a pre-token is
/// appended once nothing that may follow can extend it), and a whole forced run goes through the model in one prefill.
/// A token that is the only one allowed is forced too. When ``maxTokens`` run out, the shortest valid completion closes
/// the object.
///
/// Confidence is the product of the chosen tokens' probabilities renormalised over the allowed tokens (forced tokens
/// and the closing text count 1): `exp` of the sequence log-probability under the constrained distribution.
///
/// - Complexity: masks are memoized per automaton state within a call (a batch shares them); inside a free string
///   the plain tokens (no `"`, `\`, control byte or broken UTF-8) are a prefix of a by-length list, and only the
///   few others are walked through the automaton.
public struct SchemaDecoder: Sendable {
    /// One decoded answer.
    public struct Output: Sendable {
        /// The answer (valid under the schema).
        public var answer: StructuredAnswer
        /// The emitted canonical JSON, without the end token.
        public var text: String
        /// `exp(logProbability)`, in (0, 1].
        public var confidence: Double
        /// The sum over model choices of `log p(token | allowed)`; forced tokens add 0.
        public var logProbability: Double
        /// Model choices (argmax over two or more allowed tokens).
        public var steps: Int
        /// Tokens appended without a model choice (forced runs, single allowed tokens and the end token).
        public var forcedTokens: Int
    }

    /// The schema the answers follow.
    public let schema: StructuredSchema
    /// Most tokens appended after the prompt (forced ones included) before the object is closed by force.
    public let maxTokens: Int
    /// Longest string value in bytes (escapes included).
    public let maxStringBytes: Int
    let automaton: SchemaAutomaton
    let tokenizer: BPETokenizer
    /// `<|im_end|>`.
    let endToken: Int32
    /// Every token's bytes, flat: token `t` is `tokenBytes[tokenStarts[t]..<tokenStarts[t + 1]]`.
    let tokenBytes: [UInt8]
    let tokenStarts: [Int32]
    /// Ordinary (non-special, non-empty) tokens by first byte.
    let tokensByFirstByte: [[Int32]]
    /// The ordinary tokens that are not plain string text, by first byte.
    let irregularByFirstByte: [[Int32]]
    /// Plain string text tokens (bytes ≥ 0x20, no `"` or `\`, whole UTF-8 characters) by byte count, then id.
    let plainByLength: [Int32]
    /// `plainUpTo[n]`: how many plain tokens have at most `n` bytes (`n` up to ``maxStringBytes``).
    let plainUpTo: [Int]

    /// A decoder for `schema`'s answers with `tokenizer`'s vocabulary.
    ///
    /// - Parameters:
    ///   - maxTokens: most tokens after the prompt; at least 0 (0 writes the shortest valid object).
    ///   - maxStringBytes: longest free string value in bytes, 0 to 4096.
    /// - Throws: ``StudentError`` when the vocabulary has no `<|im_end|>` or a limit is out of range.
    public init(
        schema: StructuredSchema, tokenizer: BPETokenizer, maxTokens: Int = 64, maxStringBytes: Int = 64
    ) throws(StudentError) {
        guard maxTokens >= 0 else { throw StudentError("maxTokens is \(maxTokens); pass 0 or more") }
        guard (0...4096).contains(maxStringBytes) else {
            throw StudentError("maxStringBytes is \(maxStringBytes); pass 0 to 4096")
        }
        guard schema.properties.count < Int(Int16.max) else {
            throw StudentError("the schema has \(schema.properties.count) properties; constrained decoding takes fewer")
        }
        guard let end = tokenizer.id(of: SlmFormat.turnEnd) else {
            throw StudentError(
                "the tokenizer has no \"\(SlmFormat.turnEnd)\" token, which ends every slm target; use the tokenizer "
                    + "of a ChatML instruct model such as SmolLM2-Instruct")
        }
        self.schema = schema
        self.maxTokens = maxTokens
        self.maxStringBytes = maxStringBytes
        self.tokenizer = tokenizer
        endToken = end
        automaton = SchemaAutomaton(schema: schema, maxStringBytes: maxStringBytes)

        var symbolByte = [Int16](repeating: -1, count: 1024)
        for (byte, scalar) in BPETokenizer.byteScalars.enumerated() where scalar.value < 1024 {
            symbolByte[Int(scalar.value)] = Int16(byte)
        }
        let special = Set(tokenizer.specialTokens.map(\.id)).union([end])
        var bytes: [UInt8] = []
        var starts: [Int32] = [0]
        var byFirst = [[Int32]](repeating: [], count: 256)
        var irregular = [[Int32]](repeating: [], count: 256)
        var plain: [(length: Int, id: Int32)] = []
        for (index, token) in tokenizer.tokens.enumerated() {
            let id = Int32(index)
            let from = bytes.count
            if !special.contains(id) {
                for scalar in token.unicodeScalars {
                    let value = Int(scalar.value)
                    if value < 1024, symbolByte[value] >= 0 {
                        bytes.append(UInt8(symbolByte[value]))
                    } else {
                        bytes += Array(String(scalar).utf8)
                    }
                }
            }
            starts.append(Int32(bytes.count))
            guard bytes.count > from else { continue }
            let text = bytes[from...]
            byFirst[Int(text[from])].append(id)
            let isPlain =
                !text.contains { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }
                && String(decoding: text, as: UTF8.self).utf8.elementsEqual(text)
            if isPlain { plain.append((text.count, id)) } else { irregular[Int(text[from])].append(id) }
        }
        plain.sort { ($0.length, $0.id) < ($1.length, $1.id) }
        tokenBytes = bytes
        tokenStarts = starts
        tokensByFirstByte = byFirst
        irregularByFirstByte = irregular
        plainByLength = plain.map(\.id)
        var upTo = [Int](repeating: 0, count: maxStringBytes + 1)
        var next = 0
        for n in 0...maxStringBytes {
            while next < plain.count && plain[next].length <= n { next += 1 }
            upTo[n] = next
        }
        plainUpTo = upTo
    }

    /// Decodes one answer after `prompt` (the ids of ``SlmFormat/prompt(_:)``), one decode step per model choice.
    ///
    /// - Throws: ``StudentError`` when the prompt is empty, does not fit the context or holds ids outside the
    ///   decoder's vocabulary, or the tokenizer's vocabulary is larger than the decoder's.
    public func decode(_ decoder: LlamaDecoder, prompt: [Int32]) throws(StudentError) -> Output {
        var statistics = Statistics()
        return try decode(decoder, prompt: prompt, statistics: &statistics)
    }

    /// Decodes the answers after each of `prompts`, `batchSize` sequences in lockstep: one pass per step runs every
    /// unfinished sequence's new tokens together (``LlamaDecoder/prefill(batch:caches:)``). The outputs equal those
    /// of ``decode(_:prompt:)`` one prompt at a time (up to float rounding in the logits), in the order of `prompts`.
    ///
    /// - Throws: ``StudentError`` as ``decode(_:prompt:)`` does, naming the prompt's index, or when `batchSize` < 1.
    public func decode(
        _ decoder: LlamaDecoder, prompts: [[Int32]], batchSize: Int = 16
    ) throws(StudentError) -> [Output] {
        var statistics = Statistics()
        return try decode(decoder, prompts: prompts, batchSize: batchSize, statistics: &statistics)
    }

    /// Where a decoding call spent its time, for benchmarks.
    struct Statistics {
        /// Seconds in masking: allowed tokens, forced runs, the choice among the allowed logits.
        var maskingSeconds = 0.0
        /// Seconds in the decoder's forward passes.
        var forwardSeconds = 0.0
        /// Forward passes (a batched pass counts once).
        var passes = 0
        /// Model choices.
        var choices = 0
    }

    func decode(
        _ decoder: LlamaDecoder, prompt: [Int32], statistics: inout Statistics
    ) throws(StudentError) -> Output {
        try check(decoder, prompts: [prompt])
        var masks = Masks()
        var run = Run(pending: prompt, budget: budget(decoder, prompt))
        var cache = LlamaDecoder.Cache(layers: decoder.config.layers)
        let clock = ContinuousClock()
        while true {
            let start = clock.now
            let needsLogits = try advance(&run, masks: &masks)
            statistics.maskingSeconds += (clock.now - start) / .seconds(1)
            guard needsLogits else { break }
            let forward = clock.now
            let logits = try decoder.prefill(run.pending, cache: &cache)
            statistics.forwardSeconds += (clock.now - forward) / .seconds(1)
            statistics.passes += 1
            let choice = clock.now
            try choose(&run, logits: logits)
            statistics.maskingSeconds += (clock.now - choice) / .seconds(1)
            statistics.choices += 1
        }
        return try output(run)
    }

    func decode(
        _ decoder: LlamaDecoder, prompts: [[Int32]], batchSize: Int, statistics: inout Statistics
    ) throws(StudentError) -> [Output] {
        guard batchSize >= 1 else { throw StudentError("batchSize is \(batchSize); pass 1 or more") }
        try check(decoder, prompts: prompts)
        var masks = Masks()
        var outputs: [Output] = []
        outputs.reserveCapacity(prompts.count)
        let clock = ContinuousClock()
        for first in stride(from: 0, to: prompts.count, by: batchSize) {
            let chunk = prompts[first..<min(first + batchSize, prompts.count)]
            var runs = chunk.map { Run(pending: $0, budget: budget(decoder, $0)) }
            var caches = chunk.map { _ in LlamaDecoder.Cache(layers: decoder.config.layers) }
            while true {
                let start = clock.now
                var batch = [[Int32]](repeating: [], count: runs.count)
                for i in runs.indices where !runs[i].finished {
                    if try advance(&runs[i], masks: &masks) {
                        batch[i] = runs[i].pending
                    } else {
                        caches[i] = LlamaDecoder.Cache(layers: 0)
                    }
                }
                statistics.maskingSeconds += (clock.now - start) / .seconds(1)
                guard batch.contains(where: { !$0.isEmpty }) else { break }
                let forward = clock.now
                let logits = try decoder.prefill(batch: batch, caches: &caches)
                statistics.forwardSeconds += (clock.now - forward) / .seconds(1)
                statistics.passes += 1
                let choice = clock.now
                for i in runs.indices where !batch[i].isEmpty {
                    try choose(&runs[i], logits: logits[i])
                    statistics.choices += 1
                }
                statistics.maskingSeconds += (clock.now - choice) / .seconds(1)
            }
            for run in runs { outputs.append(try output(run)) }
        }
        return outputs
    }

    /// Prompts must be non-empty, leave room in the context and hold the decoder's ids; the vocabularies must fit.
    private func check(_ decoder: LlamaDecoder, prompts: [[Int32]]) throws(StudentError) {
        let (vocabulary, context) = (decoder.config.vocabularySize, decoder.config.contextLength)
        guard tokenizer.count <= vocabulary else {
            throw StudentError(
                "the tokenizer has \(tokenizer.count) tokens but the decoder's vocabulary \(vocabulary); use the "
                    + "tokenizer of the decoder's GGUF file")
        }
        for (index, prompt) in prompts.enumerated() {
            let name = prompts.count == 1 ? "the prompt" : "prompt \(index)"
            guard !prompt.isEmpty else { throw StudentError("\(name) is empty; pass SlmFormat.promptTokens(...)") }
            guard prompt.count < context else {
                throw StudentError(
                    "\(name) has \(prompt.count) tokens, leaving no room in the context of \(context); shorten the "
                        + "input")
            }
            if let bad = prompt.first(where: { $0 < 0 || Int($0) >= vocabulary }) {
                throw StudentError("\(name) holds token id \(bad), outside the decoder's vocabulary of \(vocabulary)")
            }
        }
    }

    private func budget(_ decoder: LlamaDecoder, _ prompt: [Int32]) -> Int {
        max(0, min(maxTokens, decoder.config.contextLength - prompt.count))
    }

    // MARK: - One sequence

    /// The allowed tokens of a state: the first `plain` of ``plainByLength`` and `extra`.
    struct Allowed: Sendable {
        var plain = 0
        var extra: [Int32] = []
        var count: Int { plain + extra.count }
    }

    /// Memoized masks and forced bytes per automaton state.
    struct Masks {
        var allowed: [SchemaAutomaton.State: Allowed] = [:]
        var forced: [SchemaAutomaton.State: [UInt8]] = [:]
    }

    /// One sequence being decoded.
    struct Run {
        var state = SchemaAutomaton.State.start
        /// The bytes emitted so far.
        var text: [UInt8] = []
        /// Tokens appended but not yet run through the model (first the prompt).
        var pending: [Int32]
        var allowed = Allowed()
        var logProbability = 0.0
        var steps = 0
        var forced = 0
        /// Tokens appended (forced or chosen).
        var used = 0
        let budget: Int
        var finished = false

        init(pending: [Int32], budget: Int) {
            self.pending = pending
            self.budget = budget
        }
    }

    func bytes(of token: Int32) -> ArraySlice<UInt8> {
        tokenBytes[Int(tokenStarts[Int(token)])..<Int(tokenStarts[Int(token) + 1])]
    }

    /// Appends forced tokens until the sequence needs a model choice (true, its allowed tokens set) or is done.
    private func advance(_ run: inout Run, masks: inout Masks) throws(StudentError) -> Bool {
        while !run.finished {
            if automaton.isFinal(run.state) {
                run.forced += 1  // the end token
                run.finished = true
                break
            }
            if run.used >= run.budget {
                close(&run)
                break
            }
            let forcedRun = forcedTokens(run, masks: &masks)
            if !forcedRun.isEmpty {
                for token in forcedRun.prefix(run.budget - run.used) {
                    try append(token, to: &run)
                    run.forced += 1
                }
                continue
            }
            let allowed = allowedTokens(run.state, masks: &masks)
            if allowed.count == 0 {
                close(&run)  // the vocabulary cannot spell what must come next
                break
            }
            if allowed.count == 1 {
                try append(allowed.plain == 1 ? plainByLength[0] : allowed.extra[0], to: &run)
                run.forced += 1
                continue
            }
            run.allowed = allowed
            return true
        }
        return false
    }

    /// Closes the object by the shortest completion (text only; nothing more is run through the model).
    private func close(_ run: inout Run) {
        let closing = automaton.shortestCompletion(run.state)
        run.text += closing
        run.state = automaton.walk(run.state, closing)
        run.forced += 1  // the end token
        run.finished = true
    }

    private func append(_ token: Int32, to run: inout Run) throws(StudentError) {
        let text = bytes(of: token)
        let next = automaton.walk(run.state, text)
        guard next.phase != .dead else {
            throw StudentError(
                "internal error: token \(token) does not continue \(String(decoding: run.text, as: UTF8.self)); "
                    + "please report it")
        }
        run.state = next
        run.text += text
        run.pending.append(token)
        run.used += 1
    }

    /// Argmax of `logits` over the allowed tokens; adds its log-probability renormalised over them.
    private func choose(_ run: inout Run, logits: [Float]) throws(StudentError) {
        let allowed = run.allowed
        var best = allowed.plain > 0 ? plainByLength[0] : allowed.extra[0]
        var top = -Float.infinity
        logits.withUnsafeBufferPointer { values in
            plainByLength.withUnsafeBufferPointer { plain in
                for i in 0..<allowed.plain where values[Int(plain[i])] > top {
                    (best, top) = (plain[i], values[Int(plain[i])])
                }
            }
            for id in allowed.extra where values[Int(id)] > top { (best, top) = (id, values[Int(id)]) }
        }
        var total = 0.0
        if top.isFinite {
            logits.withUnsafeBufferPointer { values in
                plainByLength.withUnsafeBufferPointer { plain in
                    for i in 0..<allowed.plain { total += Double(expf(values[Int(plain[i])] - top)) }
                }
                for id in allowed.extra { total += Double(expf(values[Int(id)] - top)) }
            }
        }
        // A sum that is not finite (NaN logits) counts the choice as uniform among the allowed.
        run.logProbability -=
            total.isFinite && total >= 1 ? Foundation.log(total) : Foundation.log(Double(allowed.count))
        run.pending = []
        try append(best, to: &run)
        run.steps += 1
    }

    private func output(_ run: Run) throws(StudentError) -> Output {
        let text = String(decoding: run.text, as: UTF8.self)
        guard let answer = StructuredAnswer.parse(text: text), schema.isValid(answer) else {
            throw StudentError(
                "internal error: constrained decoding wrote \(text), not a valid answer; please report it")
        }
        return Output(
            answer: answer, text: text, confidence: Foundation.exp(run.logProbability),
            logProbability: run.logProbability, steps: run.steps, forcedTokens: run.forced)
    }

    // MARK: - Masks

    /// The tokens whose bytes keep the automaton alive after `state` (the end token apart).
    func allowedTokens(_ state: SchemaAutomaton.State, masks: inout Masks) -> Allowed {
        if let known = masks.allowed[state] { return known }
        var allowed = Allowed()
        let inText = state.phase == .string && state.aux == 0
        if inText { allowed.plain = plainUpTo[max(0, maxStringBytes - Int(state.length))] }
        let buckets = inText ? irregularByFirstByte : tokensByFirstByte
        tokenBytes.withUnsafeBufferPointer { bytes in
            for first in 0..<256 where automaton.step(state, UInt8(first)).phase != .dead {
                for token in buckets[first] {
                    let range = Int(tokenStarts[Int(token)])..<Int(tokenStarts[Int(token) + 1])
                    if automaton.walk(state, bytes[range]).phase != .dead { allowed.extra.append(token) }
                }
            }
        }
        masks.allowed[state] = allowed
        return allowed
    }

    /// Representatives of the characters a non-ASCII lead byte may start, one per pre-tokenizer class: a letter, a
    /// number, a symbol and a space.
    private static let nonASCII: [String] = ["é", "²", "€", "\u{00A0}"]

    /// The tokens of the text `run`'s state forces next, as the tokenizer would split the finished target: the
    /// pre-tokens of the text so far plus the forced bytes that end within the forced bytes and that nothing allowed
    /// after them could extend (the part of such a pre-token already emitted is left out).
    func forcedTokens(_ run: Run, masks: inout Masks) -> [Int32] {
        let forced: [UInt8]
        if let known = masks.forced[run.state] {
            forced = known
        } else {
            forced = automaton.forcedBytes(run.state)
            masks.forced[run.state] = forced
        }
        guard let first = forced.first, first & 0xC0 != 0x80 else { return [] }
        // Whole characters only.
        var whole = forced.count
        while whole > 0 && !String(decoding: forced[..<whole], as: UTF8.self).utf8.elementsEqual(forced[..<whole]) {
            whole -= 1
        }
        guard whole > 0 else { return [] }
        let end = automaton.walk(run.state, forced)
        let reachesEnd = whole == forced.count && automaton.isFinal(end)
        let all = run.text + forced[..<whole]
        let text = String(decoding: all, as: UTF8.self)
        let pieces = tokenizer.pretokenize(Substring(text))
        var tokens: [Int32] = []
        var (offset, covered) = (0, run.text.count)
        for (index, piece) in pieces.enumerated() {
            let (start, stop) = (offset, offset + piece.utf8.count)
            offset = stop
            guard stop > run.text.count else { continue }
            if index == pieces.count - 1 && !reachesEnd {
                let next: [String]
                if whole < forced.count {
                    next = Self.nonASCII
                } else {
                    let bytes = automaton.allowedBytes(end)
                    next =
                        bytes.filter { $0 < 0x80 }.map { String(UnicodeScalar($0)) }
                        + (bytes.contains { $0 >= 0x80 } ? Self.nonASCII : [])
                }
                guard isComplete(piece, before: next) else { break }
            }
            tokenizer.bytePairs(Array(all[max(start, run.text.count)..<stop]), into: &tokens)
            covered = stop
        }
        // A byte the vocabulary lacks becomes the unknown token: then the model spells the text itself.
        let spelled = tokens.flatMap { bytes(of: $0) }
        return spelled.elementsEqual(all[run.text.count..<covered]) ? tokens : []
    }

    /// Whether the pre-token `piece` stays whole whatever of `next` follows it (`'` may start a contraction two
    /// characters on, so a piece ending in it never is).
    private func isComplete(_ piece: Substring, before next: [String]) -> Bool {
        guard !next.isEmpty, piece.last != "'" else { return false }
        return next.allSatisfy { character in
            let extended = String(piece) + character
            return tokenizer.pretokenize(Substring(extended)).first.map { $0.utf8.count == piece.utf8.count } ?? false
        }
    }
}

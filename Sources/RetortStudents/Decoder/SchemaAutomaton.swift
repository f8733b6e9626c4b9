import Foundation
import RetortData

/// A byte-level automaton over the canonical JSON text (``StructuredAnswer/canonicalJSON``) of the answers a schema
/// admits: what ``SchemaDecoder`` masks a decoder's tokens with.
///
/// The language: `{`, then members in the schema's sorted key order, each `"key":value`, separated by `,`, then `}`.
/// An optional key may be skipped, a required key may not; `}` comes only after the last required key (so `{}` only
/// when nothing is required). No whitespace anywhere outside strings. Values:
/// - an `enum` (or a boolean): one of the allowed values exactly as ``StructuredValue/description`` prints it (a trie);
/// - a string: `"`, at most `maxStringBytes` bytes of well-formed UTF-8, `"`. Escapes are the ones canonical JSON
///   writes: `\"`, `\\`, `\n`, `\r`, `\t`, and `\u00XX` (lowercase hex) for the other control characters; raw control
///   characters, other escapes (`\/`, `\u00e9`) and broken UTF-8 are rejected. Escapes count their bytes;
/// - an integer: `-?(0|[1-9][0-9]{0,14})` (no `-0`): 15 digits keep `|x| < 2^53`, where `description` prints integers;
/// - a number: an integer as above, or a plain decimal with a fraction whose last digit is not 0, at most 14
///   significant digits and `|x| ≥ 0.0001`: the range where `description` prints the shortest round-trip decimal
///   without an exponent, so every accepted text is the value's canonical form (up to 15 digits round-trip a `Double`;
///   14 because Foundation's JSON parser on Linux misrounds about 2% of negative 15-digit decimals);
/// - no type: a string, a number or a boolean.
///
/// Every live state can still reach the end (`}`): a transition that would strand the text (a 16th digit, an escape
/// that no longer fits the length) is refused. The state is a small value (no text): `Hashable`, so masks memoize.
struct SchemaAutomaton: Sendable, CustomStringConvertible {
    /// Most significant digits of a number with a fraction.
    static let fractionDigits = 14

    enum Phase: UInt8, Sendable {
        /// Expects `{`.
        case open
        /// After `{`: a key or (nothing required) `}`.
        case firstMember
        /// After `,`: a key.
        case member
        /// Inside `"key":` (`node` in the key trie; `key` the last key written, −1 for none).
        case key
        /// Inside an enum or boolean value (`node` in the value tries).
        case trie
        /// Expects the `"` opening a string value.
        case stringOpen
        /// Inside a string (`length` bytes so far; `aux` continuation bytes still due, the next in `low...high`).
        case string
        /// After `\` in a string.
        case escape
        /// After `\u` (`aux` hex digits seen; `low` the third digit).
        case unicodeEscape
        /// A value of no type: a string, a number or a boolean.
        case anyStart
        /// A number's first character.
        case numberStart
        /// After `-`.
        case minus
        /// After `0` (a whole value) or `-0` (`aux` = 1: a fraction must follow).
        case zero
        /// After 1 to 15 integer digits (`length`).
        case integerDigits
        /// After `.` (`length` significant digits so far, `high` = 1 when the integer part is 0).
        case dot
        /// In the fraction (`length` significant digits, `aux` = 1 when the last digit is not 0, `low` leading zeros of
        /// a `0.` fraction, `high` = 1 when the integer part is 0).
        case fraction
        /// After a value: `,` or `}`.
        case afterValue
        /// After `}`: only the end token.
        case final
        /// No text continues here.
        case dead
    }

    /// One point of the text; see ``Phase`` for what the fields mean in each phase.
    struct State: Hashable, Sendable {
        var phase: Phase
        /// The key being written or last written (−1 before the first).
        var key: Int16 = -1
        var node: Int32 = 0
        var length: Int16 = 0
        var aux: UInt8 = 0
        var low: UInt8 = 0
        var high: UInt8 = 0

        static let start = State(phase: .open)
        static let dead = State(phase: .dead)
    }

    /// What a key's value may be.
    enum Kind: Sendable, Equatable {
        /// One of a trie's words (an enum's values, or `false`/`true`), rooted at the node.
        case words(root: Int32)
        case string
        case integer
        case number
        /// A string, a number, or a boolean from the `false`/`true` trie at `booleans`.
        case any(booleans: Int32)
    }

    /// The sorted keys.
    let keys: [String]
    let kinds: [Kind]
    /// Per key `k`, at `k + 1` (so −1 fits): the smallest required key index above `k`, or `keys.count`.
    let nextRequired: [Int]
    let maxStringBytes: Int

    /// Key trie over `"key":` (the root is node 0): children per byte, the key a leaf ends, the keys below a node.
    private let keyChildren: [Int32]
    private let keyLeaf: [Int16]
    private let keysBelow: [[Int16]]
    /// Value tries: children per byte and whether a node ends a word.
    private let wordChildren: [Int32]
    private let wordEnds: [Bool]

    /// The automaton of `schema`'s answers with strings of at most `maxStringBytes` bytes (escapes included).
    init(schema: StructuredSchema, maxStringBytes: Int) {
        keys = schema.keys
        self.maxStringBytes = maxStringBytes
        var next = [Int](repeating: keys.count, count: keys.count + 1)
        for k in stride(from: keys.count - 2, through: -1, by: -1) {
            next[k + 1] = schema.required.contains(keys[k + 1]) ? k + 1 : next[k + 2]
        }
        nextRequired = next

        var keyTrie = Trie()
        _ = keyTrie.addRoot()
        for (index, key) in keys.enumerated() {
            keyTrie.insert(Array((StructuredValue.string(key).description + ":").utf8), word: Int16(index))
        }
        keyChildren = keyTrie.children
        keyLeaf = keyTrie.word
        keysBelow = keyTrie.below

        var words = Trie()
        var kinds: [Kind] = []
        var booleanRoot: Int32?
        func booleans() -> Int32 {
            if let booleanRoot { return booleanRoot }
            let root = words.addRoot()
            for text in ["false", "true"] { words.insert(Array(text.utf8), word: 0, root: root) }
            booleanRoot = root
            return root
        }
        for key in keys {
            let property = schema.properties[key] ?? StructuredSchema.Property(type: nil)
            if let allowed = property.allowed {
                let root = words.addRoot()
                for value in allowed { words.insert(Array(value.description.utf8), word: 0, root: root) }
                kinds.append(.words(root: root))
                continue
            }
            switch property.type {
            case .string: kinds.append(.string)
            case .integer: kinds.append(.integer)
            case .number: kinds.append(.number)
            case .boolean: kinds.append(.words(root: booleans()))
            case nil: kinds.append(.any(booleans: booleans()))
            }
        }
        self.kinds = kinds
        wordChildren = words.children
        wordEnds = words.word.map { $0 >= 0 }
    }

    /// A byte trie in flat tables (256 children per node, −1 for none).
    private struct Trie {
        var children: [Int32] = []
        var word: [Int16] = []
        var below: [[Int16]] = []
        /// A new trie in the same tables; returns its root.
        mutating func addRoot() -> Int32 {
            children += [Int32](repeating: -1, count: 256)
            word.append(-1)
            below.append([])
            return Int32(word.count - 1)
        }

        mutating func insert(_ bytes: [UInt8], word index: Int16, root: Int32 = 0) {
            var node = root
            below[Int(node)].append(index)
            for byte in bytes {
                let slot = Int(node) * 256 + Int(byte)
                if children[slot] < 0 { children[slot] = addRoot() }
                node = children[slot]
                below[Int(node)].append(index)
            }
            word[Int(node)] = index
        }
    }

    /// The keys, for messages (the tables are large).
    var description: String { "SchemaAutomaton(keys: \(keys), maxStringBytes: \(maxStringBytes))" }

    /// The key after which keys `k` may follow: any key index in `(last, limit]`.
    private func limit(after last: Int) -> Int { min(nextRequired[last + 1], keys.count - 1) }

    /// The state of the value of key `k` before its first byte.
    private func valueStart(_ k: Int) -> State {
        switch kinds[k] {
        case .words(let root): State(phase: .trie, key: Int16(k), node: root)
        case .string: State(phase: .stringOpen, key: Int16(k))
        case .integer, .number: State(phase: .numberStart, key: Int16(k))
        case .any: State(phase: .anyStart, key: Int16(k))
        }
    }

    private func integerOnly(_ key: Int16) -> Bool { kinds[Int(key)] == .integer }

    /// Whether `state` has written the whole object (only the end token may follow).
    func isFinal(_ state: State) -> Bool { state.phase == .final }

    /// The state after `byte`, or a `.dead` state.
    func step(_ s: State, _ byte: UInt8) -> State {
        switch s.phase {
        case .open:
            return byte == UInt8(ascii: "{") ? State(phase: .firstMember) : .dead
        case .firstMember, .member:
            if byte == UInt8(ascii: "}") && s.phase == .firstMember && nextRequired[0] == keys.count {
                return State(phase: .final)
            }
            return keyStep(State(phase: .key, key: s.key, node: 0), byte)
        case .key:
            return keyStep(s, byte)
        case .trie:
            let child = wordChildren[Int(s.node) * 256 + Int(byte)]
            if child >= 0 {
                var next = s
                next.node = child
                return next
            }
            return wordEnds[Int(s.node)] ? afterValue(s.key, byte) : .dead
        case .stringOpen:
            return byte == UInt8(ascii: "\"") ? State(phase: .string, key: s.key) : .dead
        case .string:
            return stringStep(s, byte)
        case .escape:
            var next = s
            next.length += 1
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                next.phase = .string
            case UInt8(ascii: "u") where Int(s.length) + 5 <= maxStringBytes:
                next.phase = .unicodeEscape
                next.aux = 0
            default:
                return .dead
            }
            return next
        case .unicodeEscape:
            var next = s
            next.length += 1
            next.aux += 1
            switch s.aux {
            case 0, 1:
                return byte == UInt8(ascii: "0") ? next : .dead
            case 2:
                guard byte == UInt8(ascii: "0") || byte == UInt8(ascii: "1") else { return .dead }
                next.low = byte
                return next
            default:
                // \u0009, \u000a and \u000d print as \t, \n and \r.
                let hex = Array("0123456789abcdef".utf8)
                let excluded: [UInt8] = s.low == UInt8(ascii: "0") ? Array("9ad".utf8) : []
                guard hex.contains(byte), !excluded.contains(byte) else { return .dead }
                (next.phase, next.aux, next.low) = (.string, 0, 0)
                return next
            }
        case .anyStart:
            if byte == UInt8(ascii: "\"") { return State(phase: .string, key: s.key) }
            if byte == UInt8(ascii: "t") || byte == UInt8(ascii: "f"), case .any(let root) = kinds[Int(s.key)] {
                return step(State(phase: .trie, key: s.key, node: root), byte)
            }
            return step(State(phase: .numberStart, key: s.key), byte)
        case .numberStart, .minus, .zero, .integerDigits, .dot, .fraction:
            return numberStep(s, byte)
        case .afterValue:
            return afterValue(s.key, byte)
        case .final, .dead:
            return .dead
        }
    }

    private func keyStep(_ s: State, _ byte: UInt8) -> State {
        let child = keyChildren[Int(s.node) * 256 + Int(byte)]
        guard child >= 0 else { return .dead }
        let (last, high) = (Int(s.key), limit(after: Int(s.key)))
        guard keysBelow[Int(child)].contains(where: { Int($0) > last && Int($0) <= high }) else { return .dead }
        let leaf = keyLeaf[Int(child)]
        if leaf >= 0 { return valueStart(Int(leaf)) }
        var next = s
        next.node = child
        return next
    }

    private func afterValue(_ key: Int16, _ byte: UInt8) -> State {
        if byte == UInt8(ascii: ","), Int(key) + 1 < keys.count { return State(phase: .member, key: key) }
        if byte == UInt8(ascii: "}"), nextRequired[Int(key) + 1] == keys.count { return State(phase: .final) }
        return .dead
    }

    private func stringStep(_ s: State, _ byte: UInt8) -> State {
        var next = s
        if s.aux > 0 {
            guard byte >= s.low && byte <= s.high else { return .dead }
            next.aux -= 1
            (next.low, next.high) = (0x80, 0xBF)
            next.length += 1
            return next
        }
        let room = maxStringBytes - Int(s.length)
        switch byte {
        case UInt8(ascii: "\""):
            return State(phase: .afterValue, key: s.key)
        case UInt8(ascii: "\\"):
            guard room >= 2 else { return .dead }
            next.phase = .escape
        case 0..<0x20:
            return .dead
        case 0x20..<0x80:
            guard room >= 1 else { return .dead }
        default:
            // Well-formed UTF-8 (Unicode 15, table 3-7): the lead byte fixes the length and the first continuation's
            // range.
            let (count, low, high): (UInt8, UInt8, UInt8)
            switch byte {
            case 0xC2...0xDF: (count, low, high) = (1, 0x80, 0xBF)
            case 0xE0: (count, low, high) = (2, 0xA0, 0xBF)
            case 0xE1...0xEC, 0xEE...0xEF: (count, low, high) = (2, 0x80, 0xBF)
            case 0xED: (count, low, high) = (2, 0x80, 0x9F)
            case 0xF0: (count, low, high) = (3, 0x90, 0xBF)
            case 0xF1...0xF3: (count, low, high) = (3, 0x80, 0xBF)
            case 0xF4: (count, low, high) = (3, 0x80, 0x8F)
            default: return .dead
            }
            guard room >= Int(count) + 1 else { return .dead }
            (next.aux, next.low, next.high) = (count, low, high)
        }
        next.length += 1
        return next
    }

    private func numberStep(_ s: State, _ byte: UInt8) -> State {
        let digit = byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
        let value = Int16(byte) - Int16(UInt8(ascii: "0"))
        let fractions = !integerOnly(s.key)
        var next = s
        switch s.phase {
        case .numberStart, .minus:
            if byte == UInt8(ascii: "-") && s.phase == .numberStart { return State(phase: .minus, key: s.key) }
            if byte == UInt8(ascii: "0") {
                if s.phase == .minus && !fractions { return .dead }
                return State(phase: .zero, key: s.key, aux: s.phase == .minus ? 1 : 0)
            }
            return digit ? State(phase: .integerDigits, key: s.key, length: 1) : .dead
        case .zero:
            if byte == UInt8(ascii: "."), fractions { return State(phase: .dot, key: s.key, high: 1) }
            return s.aux == 0 ? afterValue(s.key, byte) : .dead
        case .integerDigits:
            if digit { return s.length < 15 ? State(phase: .integerDigits, key: s.key, length: s.length + 1) : .dead }
            if byte == UInt8(ascii: "."), fractions, s.length < Self.fractionDigits {
                return State(phase: .dot, key: s.key, length: s.length)
            }
            return afterValue(s.key, byte)
        case .dot, .fraction:
            guard digit else { return s.phase == .fraction && s.aux == 1 ? afterValue(s.key, byte) : .dead }
            next.phase = .fraction
            next.aux = value == 0 ? 0 : 1
            if s.high == 1 && s.length == 0 && value == 0 {
                // Leading zeros of 0.000x: three at most (|x| ≥ 0.0001).
                guard s.low < 3 else { return .dead }
                next.low += 1
                return next
            }
            guard s.length < Self.fractionDigits else { return .dead }
            // A 0 must leave room for a later non-zero digit: a fraction never ends in 0.
            guard value != 0 || s.length + 1 < Self.fractionDigits else { return .dead }
            next.length += 1
            return next
        default:
            return .dead
        }
    }

    /// The state after `bytes`, `.dead` as soon as one is refused.
    func walk(_ state: State, _ bytes: some Sequence<UInt8>) -> State {
        var s = state
        for byte in bytes {
            s = step(s, byte)
            if s.phase == .dead { return s }
        }
        return s
    }

    /// Whether `text` (no end token) is a complete answer.
    func accepts(_ text: String) -> Bool { isFinal(walk(.start, text.utf8)) }

    /// Whether `text` can still become a complete answer.
    func acceptsPrefix(_ text: String) -> Bool { walk(.start, text.utf8).phase != .dead }

    /// The bytes that may follow `state`.
    func allowedBytes(_ state: State) -> [UInt8] {
        (0...255).compactMap { step(state, UInt8($0)).phase == .dead ? nil : UInt8($0) }
    }

    /// The bytes every continuation of `state` starts with (stops where a choice opens or at the end).
    func forcedBytes(_ state: State) -> [UInt8] {
        var (s, out) = (state, [UInt8]())
        while true {
            var only: UInt8?
            var count = 0
            for byte in 0...255 where step(s, UInt8(byte)).phase != .dead {
                count += 1
                only = UInt8(byte)
                if count > 1 { break }
            }
            guard count == 1, let only else { return out }
            out.append(only)
            s = step(s, only)
        }
    }

    /// The shortest bytes that take `state` to the end (`}`): a breadth-first search over states, trying in strings
    /// only the bytes that can shorten the way (`"`, the continuation due, the digits of an escape).
    func shortestCompletion(_ state: State) -> [UInt8] {
        if isFinal(state) || state.phase == .dead { return [] }
        var parent: [State: (State, UInt8)] = [state: (state, 0)]
        var frontier = [state]
        while !frontier.isEmpty {
            var next: [State] = []
            for s in frontier {
                let candidates: [UInt8]
                switch s.phase {
                case .string: candidates = s.aux > 0 ? [s.low] : [UInt8(ascii: "\"")]
                case .escape, .unicodeEscape: candidates = Array("\"01b".utf8)
                default: candidates = (0...255).map { UInt8($0) }
                }
                for byte in candidates {
                    let t = step(s, byte)
                    guard t.phase != .dead, parent[t] == nil else { continue }
                    parent[t] = (s, byte)
                    if isFinal(t) {
                        var (bytes, at) = ([UInt8](), t)
                        while at != state, let (from, byte) = parent[at] {
                            bytes.append(byte)
                            at = from
                        }
                        return bytes.reversed()
                    }
                    next.append(t)
                }
            }
            frontier = next
        }
        return []
    }
}

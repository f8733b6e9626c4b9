import Foundation
import RetortNumerics
import RetortStudents
import RetortTestSupport
import Testing

/// The repository root (this file is Tests/RetortStudentsTests/EncoderTests.swift).
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()
/// Where `make models` puts the default encoder.
let miniLMFolder = repositoryRoot.appendingPathComponent(".build-models/all-MiniLM-L6-v2")
let miniLMPresent = FileManager.default.fileExists(
    atPath: miniLMFolder.appendingPathComponent("model.safetensors").path)

@Suite struct EncoderTests {
    @Test("WordPiece: lower-casing, accent stripping, punctuation and CJK splitting, ## pieces, [UNK], truncation")
    func wordPiece() throws {
        let ids = Dictionary(uniqueKeysWithValues: tinyVocabulary.enumerated().map { ($1, Int32($0)) })
        let tokenizer = try WordPieceTokenizer(vocabulary: ids, lowercase: true)
        #expect(
            tokenizer.basicTokens("Turn ON the Café!東京\tlights,") == [
                "turn", "on", "the", "cafe", "!", "東", "京", "lights", ",",
            ])
        #expect(tokenizer.encode("unmute the lights?", maxLength: 16) == [2, 10, 11, 6, 7, 8, 14, 3])
        #expect(tokenizer.encode("turn zzz", maxLength: 16) == [2, 4, 1, 3])
        #expect(tokenizer.encode("turn on the kitchen lights", maxLength: 4) == [2, 4, 5, 3])
        #expect(throws: StudentError.self) { try WordPieceTokenizer(vocabulary: ["a": 0], lowercase: true) }
    }

    @Test("WordPiece: the longest-match loop bounded by the longest vocabulary entry gives the unbounded loop's pieces")
    func wordPieceBoundMatchesUnbounded() throws {
        // Pieces of several lengths, one key written precomposed ("é"s) that a decomposed word ("e\u{301}"s) matches by
        // canonical equivalence with more scalars than the key has.
        let entries = [
            "[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "b", "ab", "abc", "##a", "##b", "##c", "##bc",
            String(repeating: "\u{E9}", count: 6),
        ]
        let ids = Dictionary(uniqueKeysWithValues: entries.enumerated().map { ($1, Int32($0)) })
        let tokenizer = try WordPieceTokenizer(vocabulary: ids, lowercase: false, stripAccents: false)
        func unbounded(_ word: String) -> [Int32] {
            let scalars = Array(word.unicodeScalars)
            if scalars.count > tokenizer.maxCharactersPerWord { return [tokenizer.unknownToken] }
            var pieces: [Int32] = []
            var start = 0
            while start < scalars.count {
                var end = scalars.count
                func piece(_ end: Int) -> Int32? {
                    ids[(start > 0 ? "##" : "") + String(String.UnicodeScalarView(scalars[start..<end]))]
                }
                while end > start, piece(end) == nil { end -= 1 }
                guard let id = piece(end), end > start else { return [tokenizer.unknownToken] }
                pieces.append(id)
                start = end
            }
            return pieces
        }
        // Six precomposed "é" (6 scalars; 12 decomposed, more than any entry's raw length) match twelve decomposed ones.
        #expect(tokenizer.wordPieces([String(repeating: "e\u{301}", count: 6)]) == [12])
        var generator = SeededGenerator(seed: 7)
        let alphabet: [Character] = ["a", "b", "c", "a", "b", "c", "d"]
        for _ in 0..<2000 {
            let length = Int.random(in: 1...110, using: &generator)
            let word = String((0..<length).map { _ in alphabet.randomElement(using: &generator) ?? "a" })
            #expect(tokenizer.wordPieces([word]) == unbounded(word), "word \(word)")
        }
    }

    @Test("a tiny encoder: batching does not change vectors, truncation keeps a prefix, fp16/int8 stay close")
    func tinyEncoder() throws {
        let folder = try tinyBertFolder(vocabulary: tinyVocabulary)
        let encoder = try BertEncoder(folder: folder)
        let tokenizer = try WordPieceTokenizer(folder: folder)
        let sequences = ["turn on the lights", "unmute", "the kitchen light !", "東京"].map {
            tokenizer.encode($0, maxLength: 16)
        }
        let together = try encoder.embed(sequences, depths: [1, 2])
        let oneByOne = try encoder.embed(sequences, depths: [1, 2], batchSize: 1)
        for depth in [1, 2] {
            for (a, b) in zip(together[depth]!.storage, oneByOne[depth]!.storage) {
                #expect(approximatelyEqual(a, b, within: 1e-5))
            }
        }
        let shallow = try encoder.truncated(toLayers: 1).embed(sequences, depths: [1])
        #expect(shallow[1]!.storage == together[1]!.storage)
        #expect(encoder.truncated(toLayers: 1).parameterCount < encoder.parameterCount)
        #expect(encoder.flops(tokens: 6) == 2 * 6 * (8 * 64 + 4 * 8 * 16 + 4 * 6 * 8))
        for precision in [Precision.fp16, .int8] {
            let converted = try encoder.converted(to: precision).embed(sequences, depths: [2])[2]!
            let gap = zip(converted.storage, together[2]!.storage).map { abs($0 - $1) }.max() ?? 0
            #expect(gap < (precision == .fp16 ? 0.01 : 0.2), "\(precision): largest difference \(gap)")
            #expect(converted.storage != together[2]!.storage)
        }
    }

    @Test("export: sizes known before building the tensors equal the export, and a written encoder reads back exactly")
    func exportRoundTrip() throws {
        let folder = try tinyBertFolder(vocabulary: tinyVocabulary)
        let tokenizer = try WordPieceTokenizer(folder: folder)
        let sequences = ["turn on the lights", "unmute the kitchen"].map { tokenizer.encode($0, maxLength: 8) }
        for precision in Precision.allCases {
            let encoder = try BertEncoder(folder: folder).truncated(toLayers: 1).converted(to: precision)
            let actual = encoder.exportTensors(positions: 8).values.reduce(0) { $0 + $1.bytes.count }
            #expect(encoder.exportBytes(positions: 8, at: precision) == actual)
            let written = SyntheticTasks.temporaryFolder().appendingPathComponent("encoder")
            let front = TextEncoder(encoder: encoder, tokenizer: tokenizer, maxLength: 8)
            try front.write(to: written)
            let vocabBytes = try Data(contentsOf: written.appendingPathComponent("vocab.txt")).count
            #expect(front.storedBytes == actual + vocabBytes)
            let loaded = try TextEncoder.load(from: written, maxLength: 8)
            #expect(loaded.encoder.precision == precision && loaded.encoder.layers.count == 1)
            #expect(loaded.encoder.config.maxPositions == 8)
            let (a, b) = (
                try encoder.embed(sequences, depths: [1])[1]!, try loaded.encoder.embed(sequences, depths: [1])[1]!
            )
            #expect(zip(a.storage, b.storage).allSatisfy { approximatelyEqual($0, $1, within: 1e-5) }, "\(precision)")
        }
    }

    @Test("a folder without weights or with a wrong shape fails with a message naming the file")
    func badFolders() throws {
        let folder = try tinyBertFolder(vocabulary: tinyVocabulary)
        try FileManager.default.removeItem(at: folder.appendingPathComponent("model.safetensors"))
        #expect { try BertEncoder(folder: folder) } throws: { error in
            (error as? StudentError)?.description.contains("model.safetensors") == true
        }
        let other = try tinyBertFolder(vocabulary: tinyVocabulary)
        try Data(
            #"{"hidden_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 16, "max_position_embeddings": 16, "vocab_size": 99}"#
                .utf8
        )
        .write(to: other.appendingPathComponent("config.json"))
        #expect { try BertEncoder(folder: other) } throws: { error in
            (error as? StudentError)?.message.contains("word_embeddings") == true
        }
    }

    @Test(
        "all-MiniLM-L6-v2: token ids and pooled vectors match the NumPy reference to 1e-4",
        .enabled(if: miniLMPresent, "run `make models` to fetch the encoder"))
    func miniLMMatchesReference() throws {
        let reference = try JSONSerialization.jsonObject(
            with: Data(contentsOf: repositoryRoot.appendingPathComponent("Tests/Fixtures/minilm-reference.json")))
        let sentences = try #require((reference as? [String: Any])?["sentences"] as? [[String: Any]])
        let tokenizer = try WordPieceTokenizer(folder: miniLMFolder)
        let encoder = try BertEncoder(folder: miniLMFolder)
        #expect(encoder.normalizes)
        let texts = sentences.compactMap { $0["text"] as? String }
        let sequences = texts.map { tokenizer.encode($0, maxLength: 128) }
        for (sequence, row) in zip(sequences, sentences) {
            #expect(sequence.map(Int.init) == row["ids"] as? [Int])
        }
        let pooled = try encoder.embed(sequences, depths: [0, 1, 2, 6])
        for (index, row) in sentences.enumerated() {
            let expected = try #require(row["pooled"] as? [String: [Double]])
            for (depth, values) in expected {
                let ours = try #require(pooled[Int(depth)!])
                let gap = values.enumerated().map { abs(Double(ours[index, $0.offset]) - $0.element) }.max() ?? 1
                #expect(gap < 1e-4, "sentence \(index), depth \(depth): largest difference \(gap)")
            }
        }
    }
}

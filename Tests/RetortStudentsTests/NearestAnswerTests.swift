import RetortData
import RetortNumerics
import RetortStudents
import RetortTestSupport
import Testing

@Suite struct NearestAnswerTests {
    let featurizer = HashedTextFeaturizer(bucketsLog2: 12, maxWordNgram: 2, minCharNgram: 3, maxCharNgram: 5)

    func answer(_ intent: String, _ area: String? = nil) -> StructuredAnswer {
        StructuredAnswer(["intent": .string(intent), "area": area.map { .string($0) }])
    }

    @Test("retrieves the teacher's answer of the closest train input, skipping invalid answers")
    func retrieval() throws {
        let texts = [
            "turn on the kitchen light", "what time is it", "turn off the bedroom fan", "garbled teacher row",
        ]
        let answers: [StructuredAnswer?] = [
            answer("HassTurnOn", "kitchen"), answer("HassGetCurrentTime"), answer("HassTurnOff", "bedroom"), nil,
        ]
        let model = try NearestAnswer(texts: texts, answers: answers, featurizer: featurizer)
        #expect(model.answers.count == 3, "the row with an invalid teacher answer is not indexed")
        let found = model.answers(for: ["please turn on the kitchen lights", "what is the time"])
        #expect(found[0] == answer("HassTurnOn", "kitchen"))
        #expect(found[1] == answer("HassGetCurrentTime"))
        let unindexed = model.nearest(["garbled teacher row"])[0]
        #expect(unindexed.similarity < 0.9, "the invalid row's own text is not in the index")
        let exact = model.nearest(["turn off the bedroom fan"])[0]
        #expect(exact.row == 2 && approximatelyEqual(Double(exact.similarity), 1, within: 1e-5))
        #expect(model.sizeBytes > 0)
    }

    @Test("the inverted index finds the same neighbour as a brute-force cosine over the same features")
    func bruteForce() throws {
        var generator = SeededGenerator(seed: 31)
        let words = [
            "light", "fan", "kitchen", "bedroom", "on", "off", "set", "timer", "music", "play", "stop", "door",
        ]
        func sentence() -> String {
            (0..<(3 + generator.index(below: 4))).map { _ in words[generator.index(below: words.count)] }
                .joined(separator: " ")
        }
        let train = (0..<200).map { _ in sentence() }
        let answers: [StructuredAnswer?] = train.indices.map { $0 % 7 == 0 ? nil : answer("I\($0)") }
        let model = try NearestAnswer(texts: train, answers: answers, featurizer: featurizer)
        let kept = train.indices.filter { answers[$0] != nil }.map { train[$0] }
        let trainFeatures = featurizer.features(for: kept).densified()
        let queries = (0..<50).map { _ in sentence() }
        let queryFeatures = featurizer.features(for: queries).densified()
        let found = model.nearest(queries)
        for query in queries.indices {
            var scores: [Float] = []
            for row in kept.indices {
                var dot: Float = 0
                for column in 0..<featurizer.bucketCount {
                    dot += queryFeatures[query, column] * trainFeatures[row, column]
                }
                scores.append(dot)
            }
            let best = try #require(scores.max())
            #expect(approximatelyEqual(Double(found[query].similarity), Double(best), within: 1e-4))
            #expect(scores[found[query].row] >= best - 1e-4, "query \(query): a row as similar as the best")
        }
    }

    @Test("no valid teacher answer, or mismatched arrays, is an error that says what to check")
    func errors() {
        #expect(throws: StudentError.self) {
            try NearestAnswer(texts: ["a", "b"], answers: [nil, nil], featurizer: featurizer)
        }
        #expect(throws: StudentError.self) {
            try NearestAnswer(texts: ["a"], answers: [answer("x"), answer("y")], featurizer: featurizer)
        }
    }
}

import Foundation
import RetortData
import RetortNumerics
import RetortTestSupport
import Testing

@testable import RetortStudents

/// Token-level distillation for `slm` students: the teacher's `tokens` read from rows, lined up with the student's
/// target tokens, and trained on with the soft-target loss.
@Suite struct SlmDistillationTests {
    static let answer = StructuredAnswer(["intent": .string("HassTurnOn"), "name": .string("lamp")])

    /// The student's target tokens for `answer`, and teacher tokens spelling the same text token for token, with
    /// the whitespace a teacher writes between members and `alternatives` at the position of `"On"`.
    static func aligned(
        _ tokenizer: BPETokenizer, alternatives: [TeacherToken.Alternative]
    ) -> (target: [Int32], tokens: [TeacherToken], on: Int) {
        let target = SlmFormat.targetTokens(answer, tokenizer: tokenizer)
        var tokens: [TeacherToken] = []
        var on = -1
        for (position, id) in target.dropLast().enumerated() {
            let text = tokenizer.decode([id])
            if text == "On" { on = position }
            tokens.append(TeacherToken(token: text, logprob: -0.1, alternatives: text == "On" ? alternatives : []))
            if text == "\"," { tokens.append(TeacherToken(token: " ", logprob: -0.01)) }
        }
        return (target, tokens, on)
    }

    @Test("rows keep the teacher's tokens and their top_logprobs; a bad alternative is a located error")
    func rowsKeepTokens() throws {
        let line = #"""
            {"id": "a", "input": "turn on the lamp", "teacher": {"text": "{\"intent\": \"HassTurnOn\"}", "tokens": [{"token": "{\"", "logprob": -0.01, "top_logprobs": [{"token": "{\"", "logprob": -0.01, "bytes": [123, 34]}, {"token": "{", "logprob": -4.6}]}, {"token": "intent\": \"HassTurnOn\"}", "logprob": 0}]}}
            """#
        let rows = try RowReader.parseStructured(Data(line.utf8), path: "train.jsonl", schema: nil)
        let tokens = try #require(rows[0].teacherTokens)
        #expect(tokens.count == 2 && tokens[0].token == "{\"" && tokens[0].logprob == -0.01)
        #expect(tokens[0].alternatives == [.init(token: "{\"", logprob: -0.01), .init(token: "{", logprob: -4.6)])
        #expect(tokens[1].alternatives.isEmpty)
        let bad = line.replacingOccurrences(of: #"{"token": "{", "logprob": -4.6}"#, with: #"{"token": "{"}"#)
        #expect {
            try RowReader.parseStructured(Data(bad.utf8), path: "train.jsonl", schema: nil)
        } throws: { error in
            "\(error)".contains("train.jsonl:1:") && "\(error)".contains("top_logprobs[1]")
        }
    }

    @Test("soft targets where teacher and student tokens line up; none when the teacher's tokens spell other text")
    func alignment() throws {
        let tokenizer = try schemaTokenizer()
        let alternatives: [TeacherToken.Alternative] = [
            .init(token: "On", logprob: log(0.6)), .init(token: "Off", logprob: log(0.3)),
            .init(token: "On and on", logprob: log(0.1)),
        ]
        let (target, tokens, on) = Self.aligned(tokenizer, alternatives: alternatives)
        #expect(on >= 0)
        let soft = try #require(
            SlmDistillation.softTargets(tokens: tokens, answer: Self.answer, target: target, tokenizer: tokenizer))
        #expect(soft.count == target.count)
        // "On" and "Off" are single student tokens; "On and on" is not, so its mass is dropped and the rest
        // renormalised: 0.6 / 0.9 and 0.3 / 0.9.
        let onId = try #require(tokenizer.id(of: "On"))
        let offId = try #require(tokenizer.id(of: "Off"))
        let atOn = Dictionary(uniqueKeysWithValues: soft[on].map { ($0.token, $0.probability) })
        #expect(atOn.count == 2)
        #expect(abs((atOn[onId] ?? 0) - 2.0 / 3) < 1e-6 && abs((atOn[offId] ?? 0) - 1.0 / 3) < 1e-6)
        // Positions without alternatives: the chosen token alone (probability 1); the closing <|im_end|>: none.
        #expect(soft[0].count == 1 && soft[0][0].token == target[0] && soft[0][0].probability == 1)
        #expect(soft.last?.isEmpty == true)

        // Another answer, or the teacher's text in another key order: no soft targets for the row.
        let other = StructuredAnswer(["intent": .string("HassTurnOff"), "name": .string("lamp")])
        #expect(SlmDistillation.softTargets(tokens: tokens, answer: other, target: target, tokenizer: tokenizer) == nil)
        // A teacher token that spans two student tokens gives no target at either; the rest still line up.
        var merged = tokens
        merged[0] = TeacherToken(token: tokens[0].token + tokens[1].token, logprob: -0.1)
        merged.remove(at: 1)
        let partial = try #require(
            SlmDistillation.softTargets(tokens: merged, answer: Self.answer, target: target, tokenizer: tokenizer))
        #expect(partial[0].isEmpty && partial[1].isEmpty && !partial[on].isEmpty)
    }

    @Test("the soft-target loss: its gradient matches central differences, and at weight 0 it is the hard loss")
    func softGradient() throws {
        let decoder = try LlamaDecoder(gguf: GGUFFile.read(tinyLlama().encoded()))
        let prompt: [Int32] = [3, 17, 17, 0, 8]
        let target: [Int32] = [5, 30, 2, 39]
        let soft: [SlmDistillation.Soft] = [[(5, 0.7), (6, 0.2), (11, 0.1)], [], [(2, 0.5), (30, 0.5)], []]
        let config = LoRAConfig(rank: 3, alpha: 6, depth: 1, targets: LoRATarget.allCases)
        let adapters = try randomizedAdapters(decoder, config: config)
        let cached = try decoder.residual(prompt + target.dropLast(), lowerBlocks: adapters.firstLayer)
        func loss(_ a: LoRAAdapters, weight: Float, soft: [SlmDistillation.Soft]?) throws -> Double {
            var unused = LoRAGradients(zeroFor: a)
            return try decoder.adaptedLoss(
                cached: cached, targets: target, soft: soft, softWeight: weight, adapters: a, gradientScale: nil,
                gradients: &unused)
        }
        #expect(try loss(adapters, weight: 0, soft: soft) == loss(adapters, weight: 0.4, soft: nil))
        #expect(try abs(loss(adapters, weight: 0.4, soft: soft) - loss(adapters, weight: 0, soft: soft)) > 1e-3)
        var gradients = LoRAGradients(zeroFor: adapters)
        _ = try decoder.adaptedLoss(
            cached: cached, targets: target, soft: soft, softWeight: 0.4, adapters: adapters, gradientScale: 1,
            gradients: &gradients)
        var generator = SeededGenerator(seed: 9)
        for p in adapters.pairs.indices {
            for _ in 0..<3 {
                let i = Int.random(in: 0..<adapters.pairs[p].b.storage.count, using: &generator)
                let epsilon: Float = 5e-3
                var plus = adapters
                var minus = adapters
                plus.pairs[p].b.storage[i] += epsilon
                minus.pairs[p].b.storage[i] -= epsilon
                let numeric = Float(
                    (try loss(plus, weight: 0.4, soft: soft) - loss(minus, weight: 0.4, soft: soft))
                        / Double(2 * epsilon))
                let analytic = gradients.b[p].storage[i]
                let error = abs(numeric - analytic) / max(abs(numeric), abs(analytic), 0.05)
                #expect(error < 2e-2, "block \(adapters.pairs[p].layer) \(adapters.pairs[p].target) b[\(i)]")
            }
        }
    }

    @Test("training on a teacher that puts a third of its mass on Off moves the student's Off probability towards it")
    func trainingFollowsTheTeacher() throws {
        let model = try tinySlmFile(seed: 8)
        let tokenizer = try schemaTokenizer()
        let alternatives: [TeacherToken.Alternative] = [
            .init(token: "On", logprob: log(0.6)), .init(token: "Off", logprob: log(0.4)),
        ]
        let (target, tokens, on) = Self.aligned(tokenizer, alternatives: alternatives)
        let texts = ["turn on the lamp", "lamp on please"]
        let config = LoRAConfig(rank: 4, alpha: 8, depth: 2, epochs: 40, learningRate: 0.01, batchSize: 2, seed: 3)
        let schema = StructuredSchema(
            properties: ["intent": .init(type: .string), "name": .init(type: .string)], required: ["intent"])
        func offProbability(_ teacherTokens: [[TeacherToken]?]?) throws -> (Float, Int) {
            let student = try SlmStudent.train(
                texts: texts, answers: [Self.answer, Self.answer], tokens: teacherTokens, schema: schema,
                config: config, modelFile: model, softWeight: 0.5)
            let prompt = SlmFormat.promptTokens(texts[0], tokenizer: tokenizer)
            let logits = try student.merged.logits(tokens: prompt + target.prefix(on))
            let row = logits.row(logits.rows - 1)
            let total = row.map { expf($0 - (row.max() ?? 0)) }.reduce(0, +)
            let offId = try #require(tokenizer.id(of: "Off"))
            return (expf(row[Int(offId)] - (row.max() ?? 0)) / total, student.training?.softPositions ?? -1)
        }
        let (hard, noSoft) = try offProbability(nil)
        let (distilled, softPositions) = try offProbability([tokens, tokens])
        print("slm distillation: Off probability \(hard) hard, \(distilled) with the teacher's tokens")
        #expect(noSoft == 0 && softPositions == 2 * (target.count - 1))
        // Trained on the one-hot target alone, Off falls towards 0; with the teacher's distribution mixed in at
        // 0.5, the target for Off is 0.5 × 0.4 = 0.2.
        #expect(hard < 0.05, "\(hard)")
        #expect(distilled > 0.1 && distilled < 0.35, "\(distilled)")
    }
}

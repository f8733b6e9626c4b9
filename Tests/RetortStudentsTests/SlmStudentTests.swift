import Foundation
import RetortData
import RetortNumerics
import RetortTestSupport
import Testing

@testable import RetortStudents

@Suite struct SlmStudentTests {
    static let schema = StructuredSchema(
        properties: [
            "intent": .init(type: .string, allowed: [.string("HassTurnOn"), .string("HassTurnOff")]),
            "name": .init(type: .string),
        ], required: ["intent"])

    static let rows: [(String, StructuredAnswer?)] = [
        ("turn on the lamp", StructuredAnswer(["intent": .string("HassTurnOn"), "name": .string("lamp")])),
        ("turn off the fan", StructuredAnswer(["intent": .string("HassTurnOff"), "name": .string("fan")])),
        ("switch on", StructuredAnswer(["intent": .string("HassTurnOn")])),
        ("lights off", StructuredAnswer(["intent": .string("HassTurnOff")])),
        ("a row whose teacher answer was invalid", nil),
    ]

    @Test("trains on the valid teacher answers, answers valid objects, and round-trips through its model folder")
    func trainPredictExportLoad() throws {
        let model = try tinySlmFile()
        let config = LoRAConfig(rank: 4, alpha: 8, depth: 2, epochs: 60, learningRate: 0.01, batchSize: 4, seed: 3)
        let student = try SlmStudent.train(
            texts: Self.rows.map(\.0), answers: Self.rows.map(\.1), schema: Self.schema, config: config,
            modelFile: model, precision: .fp16)
        let report = try #require(student.training)
        #expect(report.examples == 4, "the invalid answer is not trained on")
        #expect(report.epochLosses.last! < report.epochLosses.first! / 2, "\(report.epochLosses)")
        let texts = Self.rows.map(\.0)
        let answers = try student.predict(texts)
        #expect(answers.count == texts.count)
        for (answer, confidence) in answers {
            #expect(Self.schema.isValid(answer), "\(answer)")
            #expect(confidence > 0 && confidence <= 1)
        }
        let learned = zip(answers.prefix(4), Self.rows.prefix(4)).filter { $0.0.answer == $0.1.1 }.count
        #expect(learned >= 3, "a memorised target comes back: \(answers.map(\.answer))")
        let one = try student.predict([texts[0]])
        #expect(one[0].answer == answers[0].answer, "one input alone answers as in a batch")
        #expect(student.precision == .fp16)
        let gguf = try #require(try FileManager.default.attributesOfItem(atPath: model.path)[.size] as? Int)
        #expect(student.sizeBytes == gguf + student.adapters.parameterCount * 2)
        #expect(student.params > student.adapters.parameterCount)
        #expect(student.flopsPerExample(sample: texts) > 0)

        let folder = model.deletingLastPathComponent().appendingPathComponent("exported")
        try student.write(to: folder, candidate: "slm-r4-d1-fp16")
        for file in ["model.json", "model.gguf", "adapters.safetensors"] {
            #expect(FileManager.default.fileExists(atPath: folder.appendingPathComponent(file).path), "\(file)")
        }
        let loaded = try SlmStudent.load(from: folder)
        #expect(loaded.candidate == "slm-r4-d1-fp16" && loaded.precision == .fp16 && loaded.config == student.config)
        let again = try loaded.predict(texts)
        #expect(again.map(\.answer) == answers.map(\.answer))
        for (a, b) in zip(again, answers) { #expect(abs(a.confidence - b.confidence) < 1e-6) }
    }

    @Test("a model folder with a missing or foreign part is a StudentError naming the file")
    func badFolders() throws {
        let model = try tinySlmFile(seed: 6)
        let student = try SlmStudent.train(
            texts: Self.rows.map(\.0), answers: Self.rows.map(\.1), schema: Self.schema,
            config: LoRAConfig(rank: 2, depth: 1, epochs: 1, seed: 1), modelFile: model)
        let folder = model.deletingLastPathComponent().appendingPathComponent("bad")
        try student.write(to: folder, candidate: nil)
        try FileManager.default.removeItem(at: folder.appendingPathComponent("adapters.safetensors"))
        #expect {
            try SlmStudent.load(from: folder)
        } throws: { error in
            "\(error)".contains("adapters.safetensors") && "\(error)".contains("export the student again")
        }
        try Data(#"{"format": "retort-fields", "family": "fields", "version": 1}"#.utf8).write(
            to: folder.appendingPathComponent("model.json"))
        #expect {
            try SlmStudent.load(from: folder)
        } throws: { error in
            "\(error)".contains("model.json") && "\(error)".contains("not an slm student")
        }
        #expect(throws: StudentError.self) {
            try SlmStudent.train(
                texts: ["x"], answers: [nil], schema: Self.schema, config: LoRAConfig(rank: 2, depth: 1),
                modelFile: model)
        }
    }
}

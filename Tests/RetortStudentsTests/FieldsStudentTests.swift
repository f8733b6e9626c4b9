import Foundation
import RetortData
import RetortNumerics
import Testing

@testable import RetortStudents

/// A synthetic home-automation task made from templates: enum intents and areas, a copied string key (`item`), an
/// integer key (`brightness`, in digits or in words), a fixed `domain`, and a few invalid teacher answers.
struct SyntheticHomeTask {
    static let areas = ["kitchen", "bedroom", "living room", "garage", "office", "hallway", "guest room", "attic"]
    static let adjectives = ["fresh", "green", "oat", "paper", "red", "frozen", "whole", "brown", "sweet", "dark"]
    static let nouns = ["apples", "milk", "towels", "onions", "peas", "bread", "rice", "beans", "grapes", "tea"]
    static let schema = StructuredSchema(
        properties: [
            "intent": .init(
                type: .string,
                allowed: ["HassTurnOn", "HassTurnOff", "HassLightSet", "HassListAddItem", "HassGetWeather"].map {
                    .string($0)
                }),
            "area": .init(type: .string, allowed: areas.map { .string($0.capitalized) }),
            "brightness": .init(type: .integer),
            "item": .init(type: .string),
            "domain": .init(type: .string, allowed: [.string("light")]),
        ], required: ["intent"])

    var texts: [String] = []
    var answers: [StructuredAnswer?] = []
    /// Rows whose brightness is written in words.
    var wordRows: [Int] = []

    /// `count` rows from `seed`; items use the adjectives at `adjectiveRange` (disjoint ranges give unseen items);
    /// every `invalidEvery`-th row's teacher answer is invalid (nil).
    init(count: Int, seed: UInt64, adjectiveRange: Range<Int>, invalidEvery: Int = 0) {
        var generator = SeededGenerator(seed: seed)
        for row in 0..<count {
            let area = Self.areas[generator.index(below: Self.areas.count)]
            let areaValue = StructuredValue.string(area.capitalized)
            let n = 1 + generator.index(below: 99)
            let item =
                Self.adjectives[adjectiveRange.lowerBound + generator.index(below: adjectiveRange.count)] + " "
                + Self.nouns[generator.index(below: Self.nouns.count)]
            let text: String
            let answer: StructuredAnswer
            switch generator.index(below: 9) {
            case 0, 1:
                text = ["turn on the \(area) light", "please switch on the \(area) lights"][generator.index(below: 2)]
                answer = StructuredAnswer([
                    "intent": .string("HassTurnOn"), "area": areaValue, "domain": .string("light"),
                ])
            case 2:
                text =
                    ["turn off the \(area) light", "switch off the lights in the \(area)"][generator.index(below: 2)]
                answer = StructuredAnswer([
                    "intent": .string("HassTurnOff"), "area": areaValue, "domain": .string("light"),
                ])
            case 3, 4:
                text =
                    ["set the \(area) light to \(n) percent", "dim the \(area) lights to \(n)%"][
                        generator.index(below: 2)]
                answer = StructuredAnswer([
                    "intent": .string("HassLightSet"), "area": areaValue, "brightness": .number(Double(n)),
                ])
            case 5:
                text = "set the \(area) light to \(Self.words(n)) percent"
                wordRows.append(row)
                answer = StructuredAnswer([
                    "intent": .string("HassLightSet"), "area": areaValue, "brightness": .number(Double(n)),
                ])
            case 6, 7:
                text = ["add \(item) to my list", "please put \(item) on the shopping list"][generator.index(below: 2)]
                answer = StructuredAnswer(["intent": .string("HassListAddItem"), "item": .string(item)])
            default:
                text = ["what is the weather", "how is the weather today", "weather please"][generator.index(below: 3)]
                answer = StructuredAnswer(["intent": .string("HassGetWeather")])
            }
            texts.append(text)
            answers.append(invalidEvery > 0 && row % invalidEvery == invalidEvery - 1 ? nil : answer)
        }
    }

    /// `n` in English words: "seven", "twenty-five", "forty two".
    static func words(_ n: Int) -> String {
        let units = [
            "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
            "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
        ]
        let tens = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
        if n < 20 { return units[n] }
        if n % 10 == 0 { return tens[n / 10] }
        return tens[n / 10] + (n % 2 == 0 ? "-" : " ") + units[n % 10]
    }
}

@Suite struct FieldsStudentTests {
    static let config = FieldsConfig(bucketsLog2: 12, tokenBucketsLog2: 12, epochs: 30)
    static let train = SyntheticHomeTask(count: 700, seed: 11, adjectiveRange: 0..<7, invalidEvery: 25)
    static let validation = SyntheticHomeTask(count: 150, seed: 12, adjectiveRange: 0..<7)
    /// Held out: items made with adjectives the train split never saw.
    static let test = SyntheticHomeTask(count: 300, seed: 13, adjectiveRange: 7..<10)

    static func student(config: FieldsConfig = config, answers: [StructuredAnswer?] = train.answers) throws
        -> FieldsStudent
    {
        try FieldsStudent.train(
            texts: train.texts, answers: answers, schema: SyntheticHomeTask.schema, validationTexts: validation.texts,
            validationAnswers: validation.answers, config: config, seed: 5)
    }

    /// The student most tests read, trained once.
    static let shared = Result { try student() }
    /// The same with `enumSpans` off (areas by a classifier), trained once.
    static let closedAreas = Result {
        try student(config: FieldsConfig(bucketsLog2: 12, tokenBucketsLog2: 12, epochs: 30, enumSpans: false))
    }

    static func exactMatch(_ student: FieldsStudent, on task: SyntheticHomeTask) throws -> Double {
        let predicted = try student.predict(task.texts)
        let same = zip(predicted, task.answers).filter { $0.0.answer == $0.1 }.count
        return Double(same) / Double(task.texts.count)
    }

    @Test("numbers are read from digits and words; number phrases grow whole; spans are located case-insensitively")
    func numbers() throws {
        func number(_ text: String) -> Double? {
            let tokens = FieldText.tokens(text)
            return FieldText.number(in: tokens[...])
        }
        #expect(number("40") == 40)
        #expect(number("29.5 degrees") == 29.5)
        #expect(number("twenty five") == 25)
        #expect(number("sixty-seven") == 67)
        #expect(number("seventy-one point five") == 71.5)
        #expect(number("two hundred and five") == 205)
        #expect(number("lots") == nil)
        let tokens = FieldText.tokens("add forty-one hours to the Pasta Timer")
        #expect(tokens.map(\.lower) == ["add", "forty", "-", "one", "hours", "to", "the", "pasta", "timer"])
        #expect(FieldText.numberPhrase(around: 1...1, in: tokens) == 1...3)
        #expect(FieldText.locate(number: 41, in: tokens) == 1...3)
        #expect(FieldText.locate(text: "pasta timer", in: tokens) == 7...8)
        #expect(FieldsBuilder.locate(.string("forty"), type: .integer, in: tokens) == 1...3)
        #expect(FieldsBuilder.locate(.string("forty"), type: .string, in: tokens) == 1...1)
        #expect(FieldsBuilder.locate(.number(7), type: .integer, in: tokens) == nil)
    }

    @Test("roles follow the schema and the teacher's answers: enums and fixed values closed, copied values spans")
    func roles() throws {
        let student = try Self.shared.get()
        #expect(student.roles["intent"] == .closed)
        #expect(student.roles["domain"] == .closed)
        #expect(student.roles["item"] == .span)
        #expect(student.roles["brightness"] == .span)
        #expect(student.roles["area"] == .span, "the teacher copies the area: a span snapped to the enum")
        let classifier = try Self.closedAreas.get()
        #expect(classifier.roles["area"] == .closed)
        #expect(classifier.roles["item"] == .span)
        var open = SyntheticHomeTask.schema
        open.properties["intent"] = .init(type: .string)
        let valid = Self.train.answers.indices.filter { Self.train.answers[$0] != nil }
        let openRoles = FieldsBuilder(
            schema: open, config: Self.config, texts: valid.map { Self.train.texts[$0] },
            answers: valid.compactMap { Self.train.answers[$0] }, seed: 1
        ).roles()
        #expect(openRoles["intent"] == .closed, "an open string never found in the input is still a classifier")
        #expect(openRoles["item"] == .span && openRoles["brightness"] == .span)
        #expect(student.params > 0 && student.sizeBytes == student.params * 4)
        #expect(student.flopsPerExample > 0)
        #expect(student.quantized(to: .int8).sizeBytes < student.sizeBytes / 2)
    }

    @Test("the trained student matches the teacher on held-out rows with unseen items; shuffled answers do not")
    func learnsAndControl() throws {
        let student = try Self.shared.get()
        let exact = try Self.exactMatch(student, on: Self.test)
        #expect(exact >= 0.95, "exact match vs the teacher on held-out rows: \(exact)")
        var generator = SeededGenerator(seed: 3)
        var shuffled = Self.train.answers
        shuffled.shuffle(using: &generator)
        let control = try Self.student(answers: shuffled)
        let controlExact = try Self.exactMatch(control, on: Self.test)
        #expect(controlExact < 0.4, "shuffled teacher answers must not be learnable: \(controlExact)")
        let closedOnly = try Self.exactMatch(try Self.closedAreas.get(), on: Self.test)
        #expect(closedOnly >= 0.9, "with areas by a classifier: \(closedOnly)")
        print(
            "fields synthetic exact match vs teacher: \(exact), areas by classifier \(closedOnly), shuffled \(controlExact)"
        )
    }

    @Test("numbers written in words come out as the integers the teacher gives")
    func numberWords() throws {
        let student = try Self.shared.get()
        let rows = Self.test.wordRows
        #expect(rows.count >= 20)
        let predicted = try student.predict(rows.map { Self.test.texts[$0] })
        let right = zip(rows, predicted).filter { Self.test.answers[$0.0]?["brightness"] == $0.1.answer["brightness"] }
        #expect(Double(right.count) >= 0.9 * Double(rows.count), "\(right.count) of \(rows.count)")
        let direct = try student.predict(["set the office light to twenty five percent"])[0].answer
        #expect(direct["brightness"] == .number(25))
    }

    @Test("every prediction is valid under the schema, with confidences in (0, 1]")
    func validByConstruction() throws {
        let student = try Self.shared.get()
        let odd = ["", "!!!", "set the light to lots percent", "add to my list", String(repeating: "x ", count: 300)]
        for (answer, confidence) in try student.predict(Self.test.texts + odd) {
            #expect(SyntheticHomeTask.schema.isValid(answer), "\(answer)")
            #expect(confidence > 0 && confidence <= 1)
        }
    }

    @Test("invalid teacher answers are never trained on: the same student as without those rows")
    func invalidRowsSkipped() throws {
        let with = try Self.shared.get()
        let kept = Self.train.answers.indices.filter { Self.train.answers[$0] != nil }
        #expect(kept.count < Self.train.answers.count)
        let without = try FieldsStudent.train(
            texts: kept.map { Self.train.texts[$0] }, answers: kept.map { Self.train.answers[$0] },
            schema: SyntheticHomeTask.schema, validationTexts: Self.validation.texts,
            validationAnswers: Self.validation.answers, config: Self.config, seed: 5)
        #expect(with.tensors() == without.tensors())
        #expect(throws: StudentError.self) {
            try FieldsStudent.train(texts: ["a"], answers: [nil], schema: SyntheticHomeTask.schema)
        }
    }

    @Test("export then load gives exactly the same predictions at fp32 and int8")
    func exportLoad() throws {
        let student = try Self.shared.get()
        let texts = Array(Self.test.texts.prefix(100))
        for precision in [Precision.fp32, .fp16, .int8] {
            let model = student.quantized(to: precision)
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("fields-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: folder) }
            try model.write(to: folder)
            let loaded = try FieldsStudent.load(from: folder)
            #expect(loaded.precision == precision)
            #expect(loaded.roles == model.roles && loaded.schema == model.schema)
            let a = try model.predict(texts)
            let b = try loaded.predict(texts)
            #expect(a.map(\.answer) == b.map(\.answer))
            #expect(a.map(\.confidence) == b.map(\.confidence))
            let bytes = try Data(contentsOf: folder.appendingPathComponent("model.safetensors")).count
            #expect(bytes > model.sizeBytes && bytes < model.sizeBytes + 8192)
        }
    }

    @Test("a bad bundle is a one-line error naming the file and what is wrong")
    func badBundles() throws {
        let student = try Self.shared.get()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("fields-bad-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        try student.write(to: folder)
        let manifestURL = folder.appendingPathComponent("model.json")
        let weightsURL = folder.appendingPathComponent("model.safetensors")
        let manifest = try Data(contentsOf: manifestURL)
        let weights = try Data(contentsOf: weightsURL)
        func failure() -> StudentError? {
            do {
                _ = try FieldsStudent.load(from: folder)
                return nil
            } catch { return error }
        }
        func edited(_ change: (inout [String: Any]) -> Void) throws -> Data {
            var object = try #require(try JSONSerialization.jsonObject(with: manifest) as? [String: Any])
            change(&object)
            return try JSONSerialization.data(withJSONObject: object)
        }

        try edited { $0["version"] = 2 }.write(to: manifestURL)
        var error = try #require(failure())
        #expect(error.file?.hasSuffix("model.json") == true && error.message.contains("unknown version 2"))

        try edited { $0["roles"] = ["intent": "closed"] }.write(to: manifestURL)
        error = try #require(failure())
        #expect(error.message.contains("roles"))

        try Data("{not json".utf8).write(to: manifestURL)
        error = try #require(failure())
        #expect(error.file?.hasSuffix("model.json") == true && error.message.contains("not valid JSON"))

        try manifest.write(to: manifestURL)
        var (tensors, _) = try Safetensors.decode(weights, file: "model.safetensors")
        let name = try #require(tensors.keys.first { $0.hasPrefix("tagger.") && $0.hasSuffix(".weight") })
        tensors[name] = Tensor([Float](repeating: 0, count: 6), shape: [2, 3])
        try Safetensors.encode(tensors).write(to: weightsURL)
        error = try #require(failure())
        #expect(error.file?.hasSuffix("model.safetensors") == true && error.message.contains("tagger"))
        #expect(error.message.contains("shape"))

        try FileManager.default.removeItem(at: weightsURL)
        error = try #require(failure())
        #expect(error.file?.hasSuffix("model.safetensors") == true && error.message.contains("no model.safetensors"))
        try FileManager.default.removeItem(at: manifestURL)
        error = try #require(failure())
        #expect(error.file?.hasSuffix("model.json") == true && !error.description.contains("\n"))
    }

    @Test("nearest: export then load retrieves the same answers; a bad index is an error naming the file")
    func nearestBundle() throws {
        let featurizer = HashedTextFeaturizer(bucketsLog2: 12)
        let model = try NearestAnswer(texts: Self.train.texts, answers: Self.train.answers, featurizer: featurizer)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("nearest-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        try model.write(to: folder)
        let loaded = try NearestAnswer.load(from: folder)
        let texts = Array(Self.test.texts.prefix(100))
        #expect(loaded.answers(for: texts) == model.answers(for: texts))
        #expect(loaded.nearest(texts).map(\.similarity) == model.nearest(texts).map(\.similarity))
        #expect(loaded.sizeBytes == model.sizeBytes)

        let weightsURL = folder.appendingPathComponent("model.safetensors")
        var (tensors, _) = try Safetensors.decode(try Data(contentsOf: weightsURL), file: "model.safetensors")
        let offsets = try #require(tensors["offsets"]?.int32s())
        tensors["offsets"] = Tensor(offsets.reversed(), shape: [offsets.count])
        try Safetensors.encode(tensors).write(to: weightsURL)
        #expect {
            try NearestAnswer.load(from: folder)
        } throws: { error in
            (error as? StudentError).map { $0.file?.hasSuffix("model.safetensors") == true } ?? false
        }
        let manifestURL = folder.appendingPathComponent("model.json")
        var object = try #require(
            try JSONSerialization.jsonObject(with: try Data(contentsOf: manifestURL)) as? [String: Any])
        object["version"] = 7
        try JSONSerialization.data(withJSONObject: object).write(to: manifestURL)
        #expect {
            try NearestAnswer.load(from: folder)
        } throws: { error in
            (error as? StudentError).map { $0.message.contains("version 7") && $0.message.contains("reads") } ?? false
        }
    }
}

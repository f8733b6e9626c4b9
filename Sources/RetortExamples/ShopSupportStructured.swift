import Foundation
import RetortData
import RetortNumerics
import RetortStudents

/// The bundled example's structured twin (FORMATS.md §9): the same shop-support messages (the same templates), each
/// answered with a JSON object — the intent and the slot values the message names (`{"intent": "order_status",
/// "order_number": "#48213", "product": "rain jacket"}`). The teacher is a large `fields` student that Retort trains
/// on the gold objects; its answers on every row are what a search distills from.
public enum ShopSupportStructuredExample {
    /// What was built, for the demo's progress lines.
    public struct Summary: Sendable {
        /// Teacher test exact match against gold.
        public var teacherTestExactMatch: Double
        /// Teacher parameter count.
        public var teacherParams: Int
        /// Measured teacher p50 latency, ms.
        public var teacherLatencyMs: Double
        /// Seconds spent training the teacher.
        public var teacherTrainSeconds: Double
        /// Keys of the answers (the intent first).
        public var keys: [String]
    }

    /// The teacher's size.
    public static let teacherConfig = FieldsConfig(bucketsLog2: 16, tokenBucketsLog2: 16, hidden: 128, epochs: 20)

    /// Generates messages with gold objects for each split (texts disjoint across splits). Messages get openers and
    /// closers as in the label example, but no dropped words or typos: a copied value must stay as the message wrote
    /// it.
    public static func examples(
        grammar: TemplateGrammar, sizes: ShopSupportExample.Sizes, seed: UInt64
    ) -> [[(text: String, gold: StructuredAnswer)]] {
        ShopSupportExample.messages(grammar: grammar, sizes: sizes, seed: seed, noise: false).map { rows in
            rows.map { row in
                var fields: [String: StructuredValue?] = ["intent": .string(row.intent)]
                for capture in row.captures where fields[capture.slot] == nil {
                    fields[capture.slot] = .string(capture.value)
                }
                return (row.text, StructuredAnswer(fields))
            }
        }
    }

    /// The answers' schema: the intent (an enum of the grammar's intents, required) and one optional string per slot.
    public static func schema(_ grammar: TemplateGrammar) -> StructuredSchema {
        var properties: [String: StructuredSchema.Property] = [
            "intent": StructuredSchema.Property(type: .string, allowed: grammar.intents.map { .string($0.name) })
        ]
        for slot in grammar.slots.keys { properties[slot] = StructuredSchema.Property(type: .string) }
        return StructuredSchema(properties: properties, required: ["intent"])
    }

    /// Generates the rows, trains the teacher on the train split's gold objects, and writes `folder` (train,
    /// validation and test JSONL with the teacher's answers as JSON text, task.json with the schema).
    public static func build(
        templates: URL, folder: URL, sizes: ShopSupportExample.Sizes = ShopSupportExample.Sizes(),
        seed: UInt64 = 2026, costPer1kRequestsUSD: Double = 1.5, progress: (String) -> Void = { _ in }
    ) throws -> Summary {
        let grammar = try TemplateGrammar.load(templates)
        let splits = examples(grammar: grammar, sizes: sizes, seed: seed)
        let schema = schema(grammar)
        progress(
            "[teacher] training a fields student (hidden \(teacherConfig.hidden), 2^\(teacherConfig.bucketsLog2) "
                + "hashed n-grams) on the gold objects")
        let start = DispatchTime.now().uptimeNanoseconds
        let teacher = try FieldsStudent.train(
            texts: splits[0].map(\.text), answers: splits[0].map(\.gold), schema: schema,
            validationTexts: splits[1].map(\.text), validationAnswers: splits[1].map(\.gold), config: teacherConfig,
            seed: seed)
        let trainSeconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let latency = try measureLatency(teacher, texts: splits[1].map(\.text))
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        var testHits = 0
        for (index, name) in ["train", "validation", "test"].enumerated() {
            let answers = try teacher.predict(splits[index].map(\.text))
            var lines: [String] = []
            for (row, ((text, gold), answer)) in zip(splits[index], answers).enumerated() {
                if index == 2 && answer.answer == gold { testHits += 1 }
                let object: [String: Any] = [
                    "id": "\(name.prefix(2))-\(String(format: "%05d", row))", "input": text,
                    "teacher": ["text": answer.answer.canonicalJSON], "gold": gold.jsonObject,
                ]
                lines.append(try ShopSupportExample.jsonLine(object))
            }
            try Data((lines.joined(separator: "\n") + "\n").utf8).write(
                to: folder.appendingPathComponent("\(name).jsonl"), options: .atomic)
        }
        var properties: [String: Any] = [:]
        for (key, property) in schema.properties {
            var entry: [String: Any] = ["type": property.type?.rawValue ?? "string"]
            if let allowed = property.allowed { entry["enum"] = allowed.map(\.jsonValue) }
            properties[key] = entry
        }
        let taskJSON: [String: Any] = [
            "name": "shop-support-structured",
            "kind": "structured",
            "schema": ["type": "object", "properties": properties, "required": ["intent"]],
            "teacher": [
                "name":
                    "fields student (hidden \(teacherConfig.hidden), 2^\(teacherConfig.bucketsLog2) hashed n-grams), "
                    + "trained by Retort on gold objects",
                "params": teacher.params,
                "latency_ms_p50": (latency * 10_000).rounded() / 10_000,
                "cost_per_1k_requests_usd": costPer1kRequestsUSD,
            ],
            "source":
                "Generated by `retort demo --structured` from examples/shop-support/templates.yaml (templates written "
                + "for Retort), seed \(seed): gold = the intent and the value of every slot the message names.",
        ]
        try JSONSerialization.data(withJSONObject: taskJSON, options: [.prettyPrinted, .sortedKeys]).write(
            to: folder.appendingPathComponent("task.json"), options: .atomic)
        return Summary(
            teacherTestExactMatch: Double(testHits) / Double(max(splits[2].count, 1)), teacherParams: teacher.params,
            teacherLatencyMs: latency, teacherTrainSeconds: trainSeconds,
            keys: ["intent"] + grammar.slots.keys.sorted())
    }

    /// Median single-input latency (end to end from the text) over 300 warm calls, ms.
    static func measureLatency(_ teacher: FieldsStudent, texts: [String]) throws -> Double {
        var samples: [Double] = []
        var sink = 0.0
        for index in 0..<330 {
            let start = DispatchTime.now().uptimeNanoseconds
            sink += try teacher.predict([texts[index % texts.count]])[0].confidence
            let end = DispatchTime.now().uptimeNanoseconds
            if index >= 30 { samples.append(Double(end - start) / 1e6) }
        }
        samples.sort()
        return sink.isNaN ? samples[0] : samples[samples.count / 2]
    }
}

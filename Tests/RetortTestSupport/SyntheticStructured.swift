import Foundation
import RetortData
import RetortNumerics

/// A seeded structured task (FORMATS.md §9) for tests: home-automation commands answered with
/// `{"intent", "area"?, "brightness"?, "item"?}`. The teacher is gold except for a share of wrong intents and a share
/// of answers that are not JSON (invalid teacher answers).
public enum SyntheticStructured {
    /// Areas (a closed set).
    public static let areas = ["kitchen", "bedroom", "office", "garage", "hallway"]
    /// Items (copied from the input).
    public static let items = ["milk", "bread", "eggs", "coffee", "apples", "rice", "soap", "tea"]

    /// `count` rows: ids `PREFIX-N`, input, teacher `{"text": ...}`, gold. With `novelItems`, list items are made-up
    /// words (rarely seen twice), so an answer must copy them from the input rather than recall them.
    public static func rows(
        count: Int, seed: UInt64, idPrefix: String = "s", wrongShare: Double = 0.05, invalidShare: Double = 0.02,
        novelItems: Bool = false
    ) -> [[String: Any]] {
        var generator = SeededGenerator(seed: seed)
        func pick<T>(_ values: [T]) -> T { values[Int(generator.next() % UInt64(values.count))] }
        func word() -> String {
            let letters = Array("bcdfgklmnprstvz")
            let vowels = Array("aeiou")
            return String((0..<3).flatMap { _ in [pick(letters), pick(vowels)] })
        }
        func chance(_ share: Double) -> Bool { Double(generator.next() % 10_000) / 10_000 < share }
        var rows: [[String: Any]] = []
        for index in 0..<count {
            var gold: [String: Any]
            let input: String
            switch generator.next() % 4 {
            case 0:
                let area = pick(areas)
                input = "\(pick(["turn on", "switch on", "please turn on"])) the \(area) light"
                gold = ["intent": "TurnOn", "area": area]
            case 1:
                let area = pick(areas)
                input = "\(pick(["turn off", "switch off", "kill"])) the \(area) lights"
                gold = ["intent": "TurnOff", "area": area]
            case 2:
                let area = pick(areas)
                let level = Int(generator.next() % 10 + 1) * 10
                input = "set the \(area) light to \(level) percent"
                gold = ["intent": "SetBrightness", "area": area, "brightness": level]
            default:
                let item = novelItems ? word() : pick(items)
                input = "\(pick(["add", "put"])) \(item) \(pick(["to my list", "on the shopping list"]))"
                gold = ["intent": "AddItem", "item": item]
            }
            var teacher = gold
            if chance(wrongShare) { teacher["intent"] = pick(["TurnOn", "TurnOff", "SetBrightness", "AddItem"]) }
            let text =
                chance(invalidShare)
                ? "Sure! The intent is \(teacher["intent"] ?? "")"
                : String(
                    decoding: (try? JSONSerialization.data(withJSONObject: teacher, options: [.sortedKeys])) ?? Data(),
                    as: UTF8.self)
            rows.append([
                "id": "\(idPrefix)-\(index)", "input": input,
                "teacher": ["text": text, "usage": ["input_tokens": 120, "output_tokens": 14], "latency_ms": 700.0],
                "gold": gold,
            ])
        }
        return rows
    }

    /// Writes a structured task folder (train 600, validation 300, test 300 rows by default) with `"kind":
    /// "structured"` and, when `schema` is true, task.json's schema; returns it.
    public static func writeTask(
        name: String = "structured-synthetic", seed: UInt64 = 7, sizes: (Int, Int, Int) = (600, 300, 300),
        schema: Bool = true, novelItems: Bool = false
    ) throws -> URL {
        let folder = SyntheticTasks.temporaryFolder().appendingPathComponent(name)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try SyntheticTasks.writeJSONL(
            rows(count: sizes.0, seed: seed, idPrefix: "tr", novelItems: novelItems),
            to: folder.appendingPathComponent("train.jsonl"))
        try SyntheticTasks.writeJSONL(
            rows(count: sizes.1, seed: seed &+ 1, idPrefix: "va", novelItems: novelItems),
            to: folder.appendingPathComponent("validation.jsonl"))
        try SyntheticTasks.writeJSONL(
            rows(count: sizes.2, seed: seed &+ 2, idPrefix: "te", novelItems: novelItems),
            to: folder.appendingPathComponent("test.jsonl"))
        var task: [String: Any] = [
            "name": name, "kind": "structured",
            "teacher": ["name": "synthetic LLM", "latency_ms_p50": 700.0, "cost_per_1k_requests_usd": 3.0],
        ]
        if schema {
            task["schema"] = [
                "type": "object",
                "properties": [
                    "intent": ["type": "string", "enum": ["AddItem", "SetBrightness", "TurnOff", "TurnOn"]],
                    "area": ["type": "string", "enum": areas],
                    "brightness": ["type": "integer"],
                    "item": ["type": "string"],
                ],
                "required": ["intent"],
            ]
        }
        try JSONSerialization.data(withJSONObject: task, options: [.sortedKeys]).write(
            to: folder.appendingPathComponent("task.json"))
        return folder
    }
}

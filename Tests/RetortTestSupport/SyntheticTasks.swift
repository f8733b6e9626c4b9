import Foundation
import Numerics
import RetortData
import RetortNumerics

/// Seeded synthetic tasks for tests: rows in FORMATS.md §1 form, written as task folders.
public enum SyntheticTasks {
    /// A numeric task: `classes` Gaussian blobs in `dimension` dimensions, separated by `separation`; the teacher is
    /// the Bayes-optimal softmax over the blob means (soft labels), gold is the blob that generated the row.
    ///
    /// With `learnable: false` the inputs are pure noise and the teacher's answer (= gold) is random: no student can
    /// learn it, while the teacher is perfect.
    ///
    /// With `teacherWrongEvery: k > 0` the teacher answers the next class after gold, with certainty, on every k-th row.
    public static func numericRows(
        count: Int, classes: Int = 3, dimension: Int = 4, separation: Float = 3, learnable: Bool = true,
        seed: UInt64, idPrefix: String = "r", teacherWrongEvery: Int = 0
    ) -> [[String: Any]] {
        var generator = SeededGenerator(seed: seed)
        var means: [[Float]] = []
        var meanGenerator = SeededGenerator(seed: 99)
        for _ in 0..<classes { means.append((0..<dimension).map { _ in meanGenerator.nextGaussian() * separation }) }
        var rows: [[String: Any]] = []
        for index in 0..<count {
            let label = Int(generator.next() % UInt64(classes))
            let input: [Float] =
                learnable
                ? means[label].map { $0 + generator.nextGaussian() }
                : (0..<dimension).map { _ in generator.nextGaussian() }
            var logits = means.map { mean in
                -zip(mean, input).reduce(Float(0)) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } / 2
            }
            if !learnable { logits = (0..<classes).map { $0 == label ? 10 : 0 } }
            let maximum = logits.max() ?? 0
            let exps = logits.map { Float.exp($0 - maximum) }
            let total = exps.reduce(0, +)
            var probs: [String: Double] = [:]
            for (k, e) in exps.enumerated() where e / total >= 0.001 {
                probs["c\(k)"] = (Double(e / total) * 10_000).rounded() / 10_000
            }
            var teacherLabel = "c\(exps.indices.max { exps[$0] < exps[$1] } ?? 0)"
            if teacherWrongEvery > 0 && index % teacherWrongEvery == 0 {
                teacherLabel = "c\((label + 1) % classes)"
                probs = [teacherLabel: 1.0]
            }
            rows.append([
                "id": "\(idPrefix)-\(index)", "input": input.map { Double($0) },
                "teacher": ["label": teacherLabel, "probs": probs], "gold": "c\(label)",
            ])
        }
        return rows
    }

    /// A text task: each class has its own keywords mixed with shared filler words; the teacher is gold.
    public static func textRows(count: Int, classes: Int = 4, seed: UInt64, idPrefix: String = "t") -> [[String: Any]] {
        var generator = SeededGenerator(seed: seed)
        let filler = ["please", "the", "my", "order", "help", "thanks", "today", "now", "again", "about"]
        let keywords = (0..<classes).map { k in (0..<4).map { "word\(k)x\($0)" } }
        var rows: [[String: Any]] = []
        for index in 0..<count {
            let label = Int(generator.next() % UInt64(classes))
            var words: [String] = []
            for _ in 0..<6 { words.append(filler[Int(generator.next() % UInt64(filler.count))]) }
            for _ in 0..<2 { words.append(keywords[label][Int(generator.next() % 4)]) }
            words.shuffle(using: &generator)
            rows.append([
                "id": "\(idPrefix)-\(index)", "input": words.joined(separator: " "), "teacher": "k\(label)",
                "gold": "k\(label)",
            ])
        }
        return rows
    }

    /// Writes `rows` as JSONL.
    public static func writeJSONL(_ rows: [[String: Any]], to url: URL) throws {
        let lines = try rows.map { row in
            String(decoding: try JSONSerialization.data(withJSONObject: row, options: [.sortedKeys]), as: UTF8.self)
        }
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: url)
    }

    /// Writes a task folder (train/validation/test.jsonl + task.json) under a new temporary folder; returns it.
    public static func writeTask(
        name: String, kind: TaskKind, train: [[String: Any]], validation: [[String: Any]], test: [[String: Any]],
        teacherLatencyMs: Double = 50, costPer1k: Double = 2
    ) throws -> URL {
        let folder = temporaryFolder().appendingPathComponent(name)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try writeJSONL(train, to: folder.appendingPathComponent("train.jsonl"))
        try writeJSONL(validation, to: folder.appendingPathComponent("validation.jsonl"))
        try writeJSONL(test, to: folder.appendingPathComponent("test.jsonl"))
        let task: [String: Any] = [
            "name": name, "kind": kind.rawValue,
            "teacher": [
                "name": "synthetic teacher", "latency_ms_p50": teacherLatencyMs, "cost_per_1k_requests_usd": costPer1k,
            ],
        ]
        try JSONSerialization.data(withJSONObject: task).write(to: folder.appendingPathComponent("task.json"))
        return folder
    }

    /// A fresh temporary folder.
    public static func temporaryFolder() -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("retort-tests-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

/// Approximate comparison for tests (relative, with an absolute floor).
public func approximatelyEqual(_ a: Float, _ b: Float, relative: Float = 1e-4, absolute: Float = 1e-6) -> Bool {
    a.isApproximatelyEqual(to: b, absoluteTolerance: absolute, relativeTolerance: relative)
}

/// Whether `a` and `b` differ by at most `tolerance` (an absolute bound, for figures with a known scale: costs,
/// probabilities, metric values).
public func approximatelyEqual<T: Real>(_ a: T, _ b: T, within tolerance: T) -> Bool {
    a.isApproximatelyEqual(to: b, absoluteTolerance: tolerance, relativeTolerance: 0)
}

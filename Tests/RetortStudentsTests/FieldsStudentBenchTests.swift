import Foundation
import RetortData
import RetortNumerics
import RetortStudents
import Testing

/// The `fields` student on the real ha-extract-en task (not in CI: needs ../shared/bench and
/// RETORT_FIELDS_BENCH=1). Prints validation exact match and field F1 against gold and the teacher, train seconds,
/// size and the median single-input predict latency for a few sizes.
@Suite struct FieldsStudentBenchTests {
    static let folder = URL(
        fileURLWithPath: ProcessInfo.processInfo.environment["RETORT_FIELDS_BENCH_TASK"]
            ?? "/work/shared/bench/ha-extract-en")
    static let enabled =
        ProcessInfo.processInfo.environment["RETORT_FIELDS_BENCH"] == "1"
        && FileManager.default.fileExists(atPath: folder.appendingPathComponent("task.json").path)

    /// Exact match and micro field F1 of `predicted` against `reference` (nil reference: a miss).
    static func scores(_ predicted: [StructuredAnswer], _ reference: [StructuredAnswer?]) -> (exact: Double, f1: Double)
    {
        var exact = 0
        var (hits, predictedPairs, referencePairs) = (0, 0, 0)
        for (answer, wanted) in zip(predicted, reference) {
            let wantedPairs = wanted?.pairs ?? []
            if let wanted, answer == wanted { exact += 1 }
            hits += answer.pairs.intersection(wantedPairs).count
            predictedPairs += answer.pairs.count
            referencePairs += wantedPairs.count
        }
        let precision = Double(hits) / Double(max(predictedPairs, 1))
        let recall = Double(hits) / Double(max(referencePairs, 1))
        let f1 = precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0
        return (Double(exact) / Double(max(predicted.count, 1)), f1)
    }

    @Test(
        "ha-extract-en: validation scores, train time, size and latency per size",
        .enabled(if: enabled, "set RETORT_FIELDS_BENCH=1 with ../shared/bench/ha-extract-en present"))
    func bench() throws {
        let task = try StructuredTaskData.load(folder: Self.folder)
        let configs: [(String, FieldsConfig)] = [
            ("small", FieldsConfig(bucketsLog2: 12, tokenBucketsLog2: 13)),
            ("default", FieldsConfig()),
            ("mlp64", FieldsConfig(bucketsLog2: 16, tokenBucketsLog2: 16, hidden: 64)),
        ]
        let only = ProcessInfo.processInfo.environment["RETORT_FIELDS_BENCH_ONLY"]
        for (name, config) in configs where only == nil || only == name {
            let clock = ContinuousClock()
            let start = clock.now
            let student = try FieldsStudent.train(
                texts: task.train.texts, answers: task.train.teacher, schema: task.schema,
                validationTexts: task.validation.texts, validationAnswers: task.validation.teacher, config: config,
                seed: 7)
            let trainSeconds = (clock.now - start) / .seconds(1)
            let texts = task.validation.texts
            let predicted = try student.predict(texts).map(\.answer)
            let gold = Self.scores(predicted, task.validation.gold)
            let teacher = Self.scores(predicted, task.validation.teacher)
            let teacherVsGold = Self.scores(
                task.validation.teacher.map { $0 ?? StructuredAnswer([:]) }, task.validation.gold)
            let valid = predicted.filter(task.schema.isValid).count
            var latencies: [Double] = []
            for index in 0..<500 {
                let text = texts[index % texts.count]
                let begin = clock.now
                _ = try student.predict([text])
                latencies.append((clock.now - begin) / .microseconds(1))
            }
            latencies.sort()
            let int8 = try student.quantized(to: .int8).predict(texts).map(\.answer)
            let int8Gold = Self.scores(int8, task.validation.gold)
            print(
                """
                fields[\(name)] roles \(student.roles.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value.rawValue)" }.joined(separator: " "))
                fields[\(name)] exact_match \(gold.exact) field_f1 \(gold.f1) | vs teacher \(teacher.exact) / \(teacher.f1) \
                | teacher vs gold \(teacherVsGold.exact) / \(teacherVsGold.f1) | valid \(valid)/\(predicted.count)
                fields[\(name)] int8 exact_match \(int8Gold.exact) field_f1 \(int8Gold.f1) size_bytes int8 \(student.quantized(to: .int8).sizeBytes)
                fields[\(name)] train_seconds \(trainSeconds) params \(student.params) size_bytes \(student.sizeBytes) \
                flops \(student.flopsPerExample) latency_us_median \(latencies[latencies.count / 2]) p90 \(latencies[latencies.count * 9 / 10])
                """)
            if ProcessInfo.processInfo.environment["RETORT_FIELDS_BENCH_MISSES"] == "1" {
                var misses: [String: Int] = [:]
                for (row, answer) in predicted.enumerated() {
                    guard let wanted = task.validation.gold[row] else { continue }
                    for key in Set(answer.fields.keys).union(wanted.fields.keys) where answer[key] != wanted[key] {
                        misses[key, default: 0] += 1
                        if misses[key, default: 0] <= 4 {
                            print(
                                "  miss \(key): \(texts[row]) | student \(answer[key].map(\.description) ?? "-") "
                                    + "gold \(wanted[key].map(\.description) ?? "-") teacher "
                                    + "\(task.validation.teacher[row]?[key].map(\.description) ?? "-")")
                        }
                    }
                }
                print("fields[\(name)] misses per key vs gold: \(misses.sorted { $0.value > $1.value })")
                var fixable: [String: Int] = [:]
                var disagree: [String: Int] = [:]
                for (row, answer) in predicted.enumerated() {
                    guard let wanted = task.validation.gold[row], let teacher = task.validation.teacher[row] else {
                        continue
                    }
                    for key in task.schema.keys {
                        if answer[key] != teacher[key] { disagree[key, default: 0] += 1 }
                        if answer[key] != wanted[key] && teacher[key] == wanted[key] { fixable[key, default: 0] += 1 }
                    }
                }
                print("fields[\(name)] wrong where the teacher is right: \(fixable.sorted { $0.value > $1.value })")
                print("fields[\(name)] differs from the teacher: \(disagree.sorted { $0.value > $1.value })")
            }
        }
    }
}

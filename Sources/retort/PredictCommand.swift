import ArgumentParser
import Foundation
import RetortData
import RetortEvals
import RetortStudents

struct Predict: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Predict with an exported model; report accuracy and agreement where rows have gold and teacher.")

    @Argument(help: "A model folder (RUN_DIR/model) with model.json and model.safetensors.")
    var modelDirectory: String
    @Option(help: "JSONL rows (FORMATS.md §1); teacher and gold are optional.")
    var input: String
    @Option(help: "Write one JSON line per row ({id, label, probability}) to this file.")
    var out: String?
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await ErrorReporting.run {
            let bundle = try ModelBundle.load(from: URL(fileURLWithPath: modelDirectory))
            let rows = try RowReader.read(URL(fileURLWithPath: input), requireTeacher: false)
            let expectsText: Bool
            expectsText = bundle.featurizer.readsText
            for row in rows {
                switch row.input {
                case .text where !expectsText:
                    throw DataError(.badData, "input is text but the model is numeric", file: input, line: row.line)
                case .numeric where expectsText:
                    throw DataError(.badData, "input is numeric but the model reads text", file: input, line: row.line)
                case .numeric(let values) where values.count != bundle.featurizer.outputDimension:
                    throw DataError(
                        .badData,
                        "input has \(values.count) numbers; the model expects \(bundle.featurizer.outputDimension)",
                        file: input, line: row.line)
                default: break
                }
            }
            let probabilities = try bundle.probabilities(for: rows.map(\.input))
            let predictions = probabilities.argmaxPerRow()
            var goldRows = 0
            var goldHits = 0
            var teacherRows = 0
            var teacherHits = 0
            var lines: [String] = []
            let kind = Classification(LabelVocabulary(inOrder: bundle.labels))
            for (index, row) in rows.enumerated() {
                let answer = predictions[index]
                if let gold = row.gold {
                    goldRows += 1
                    if let reference = kind.vocabulary.index(of: gold), kind.same(reference, answer) { goldHits += 1 }
                }
                if let teacher = row.teacher {
                    teacherRows += 1
                    if let reference = kind.vocabulary.index(of: teacher.answer), kind.same(reference, answer) {
                        teacherHits += 1
                    }
                }
                let printed = kind.printed(answer)
                let object: [String: Any] = [
                    "id": row.id, printed.key: printed.value, "probability": Double(probabilities[index, answer]),
                ]
                let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                lines.append(String(decoding: data, as: UTF8.self))
            }
            if let out {
                do {
                    try Data((lines.joined(separator: "\n") + "\n").utf8).write(
                        to: URL(fileURLWithPath: out), options: .atomic)
                } catch {
                    throw DataError(
                        .cannotCreateOutput, "cannot write predictions: \(FileProblem.reason(error))", file: out)
                }
            }
            if output.json {
                try output.printJSON(
                    PredictJSON(
                        model: bundle.candidate, precision: bundle.model.precision.rawValue, rows: rows.count,
                        accuracy: goldRows > 0 ? Double(goldHits) / Double(goldRows) : nil,
                        agreement: teacherRows > 0 ? Double(teacherHits) / Double(teacherRows) : nil))
                return
            }
            say("model: \(bundle.candidate) (\(bundle.model.precision.rawValue)), rows: \(rows.count)")
            if goldRows > 0 {
                say(
                    String(
                        format: "accuracy: %.4f (%d/%d rows with gold)", Double(goldHits) / Double(goldRows), goldHits,
                        goldRows))
            }
            if teacherRows > 0 {
                say(
                    String(
                        format: "agreement: %.4f (%d/%d rows with teacher)", Double(teacherHits) / Double(teacherRows),
                        teacherHits, teacherRows))
            }
        }
    }
}

/// `retort predict --json`: the summary (predictions go to --out).
struct PredictJSON: Encodable {
    let model: String
    let precision: String
    let rows: Int
    let accuracy: Double?
    let agreement: Double?
}

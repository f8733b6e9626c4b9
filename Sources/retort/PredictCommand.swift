import ArgumentParser
import Foundation
import RetortData
import RetortEvals
import RetortSearch
import RetortStudents

struct Predict: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Predict with an exported model; report accuracy and agreement where rows have gold and teacher.")

    @Argument(help: "A model folder (RUN_DIR/model) with model.json and model.safetensors.")
    var modelDirectory: String
    @Option(help: "JSONL rows (FORMATS.md §1); teacher and gold are optional.")
    var input: String
    @Option(
        help:
            "Write one JSON line per row to this file: {id, label, probability}, or {id, output, confidence} for a structured task's model."
    )
    var out: String?
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await ErrorReporting.run {
            if StructuredStudent.isStructured(folder: URL(fileURLWithPath: modelDirectory)) {
                try predictStructured()
                return
            }
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
            try writePredictions(lines)
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

extension Predict {
    /// Writes the prediction lines to `--out`, when given (atomically: a failure leaves no partial file).
    func writePredictions(_ lines: [String]) throws {
        guard let out else { return }
        do {
            try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: out), options: .atomic)
        } catch {
            throw DataError(.cannotCreateOutput, "cannot write predictions: \(FileProblem.reason(error))", file: out)
        }
    }

    /// Predicts with a structured task's model (FORMATS.md §9): `{"id", "output", "confidence"}` lines, and exact match
    /// and field F1 against gold, agreement (exact match) against the teacher, where rows have them (a row whose teacher
    /// answer is invalid is left out of agreement, as in the report).
    func predictStructured() throws {
        let folder = URL(fileURLWithPath: modelDirectory)
        let student = try StructuredStudent.load(from: folder)
        let rows = try RowReader.readStructured(URL(fileURLWithPath: input), schema: nil, requireTeacher: false)
        let answers = try student.predict(rows.map(\.input))
        var gold = (rows: 0, hits: 0, truePairs: 0, predictedPairs: 0, goldPairs: 0)
        var teacher = (rows: 0, hits: 0)
        var lines: [String] = []
        for (row, predicted) in zip(rows, answers) {
            if let reference = row.gold {
                gold.rows += 1
                if reference == predicted.answer { gold.hits += 1 }
                gold.truePairs += reference.pairs.intersection(predicted.answer.pairs).count
                gold.predictedPairs += predicted.answer.pairs.count
                gold.goldPairs += reference.pairs.count
            }
            if let reference = row.teacher {
                teacher.rows += 1
                if reference == predicted.answer { teacher.hits += 1 }
            }
            let object: [String: Any] = [
                "id": row.id, "output": predicted.answer.jsonObject, "confidence": predicted.confidence,
            ]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            lines.append(String(decoding: data, as: UTF8.self))
        }
        try writePredictions(lines)
        let exactMatch = gold.rows > 0 ? Double(gold.hits) / Double(gold.rows) : nil
        let pairs = gold.predictedPairs + gold.goldPairs
        let fieldF1 = gold.rows > 0 ? (pairs > 0 ? 2 * Double(gold.truePairs) / Double(pairs) : 1) : nil
        let agreement = teacher.rows > 0 ? Double(teacher.hits) / Double(teacher.rows) : nil
        let name = student.candidate ?? student.family.rawValue
        if output.json {
            try output.printJSON(
                PredictJSON(
                    model: name, precision: student.precision.rawValue, rows: rows.count, accuracy: nil,
                    agreement: agreement, exactMatch: exactMatch, fieldF1: fieldF1))
            return
        }
        say("model: \(name) (\(student.precision.rawValue)), rows: \(rows.count)")
        if let exactMatch, let fieldF1 {
            say(String(format: "exact_match: %.4f (%d/%d rows with gold)", exactMatch, gold.hits, gold.rows))
            say(String(format: "field_f1: %.4f", fieldF1))
        }
        if let agreement {
            say(
                String(
                    format: "agreement: %.4f (%d/%d rows with a valid teacher answer)", agreement, teacher.hits,
                    teacher.rows))
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
    /// Structured models: exact match and field F1 against gold.
    var exactMatch: Double? = nil
    var fieldF1: Double? = nil

    enum CodingKeys: String, CodingKey {
        case model, precision, rows, accuracy, agreement
        case exactMatch = "exact_match"
        case fieldF1 = "field_f1"
    }
}

import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import RetortData
import RetortNumerics
import RetortSearch
import RetortStudents
import RetortTeacher
import Synchronization

/// A deployed student loaded in the gateway: its model, its shadow-agreement window and whether it was rolled back.
public final class ServedStudent: Sendable {
    /// What a deployment's model folder holds.
    public enum Model: Sendable {
        /// A label student's exported bundle: the answer is a label.
        case labels(ModelBundle)
        /// A structured student (FORMATS.md §9): the answer is a flat JSON object.
        case structured(StructuredStudent)
    }

    /// The deployment as the ledger keeps it.
    public let record: DeploymentRecord
    /// The exported model.
    public let model: Model
    private let outcomes: Mutex<[Bool]>
    private let rolledBack = Atomic<Bool>(false)
    package let shadowsInFlight = Atomic<Int>(0)
    /// Shadow calls in flight per deployment beyond which sampled requests are not checked (so a slow teacher can
    /// never pile up background work).
    package static let maxShadowsInFlight = 64

    /// Loads `record`'s model; `outcomes` are its newest shadow results, oldest first.
    public init(record: DeploymentRecord, outcomes: [Bool] = []) throws(DataError) {
        self.record = record
        model = try Self.load(record)
        self.outcomes = Mutex(Array(outcomes.suffix(ShadowAgreement.window)))
    }

    /// `record`'s model folder: a structured student when its `model.json` names a structured family, else a label
    /// student's bundle.
    static func load(_ record: DeploymentRecord) throws(DataError) -> Model {
        let folder = URL(fileURLWithPath: record.modelDirectory)
        if StructuredStudent.isStructured(folder: folder) {
            do { return .structured(try StructuredStudent.load(from: folder)) } catch let error as StudentError {
                throw DataError(
                    .badData, "cannot load \(record.student): \(error.message)", file: error.file ?? folder.path,
                    line: error.line)
            } catch {
                throw DataError(.badData, "cannot load \(record.student): \(error)", file: folder.path)
            }
        }
        do { return .labels(try ModelBundle.load(from: folder)) } catch {
            throw DataError(.badData, "cannot load \(record.student): \(error.message)", file: error.file)
        }
    }

    /// The label student's bundle (nil for a structured student).
    public var bundle: ModelBundle? {
        if case .labels(let bundle) = model { return bundle }
        return nil
    }

    /// One prediction.
    public struct Prediction: Sendable {
        /// Class probabilities, in label order (empty for a structured student).
        public var probabilities: [Float]
        /// The chosen class (0 for a structured student).
        public var index: Int
        /// The answer's text: the chosen label, or a structured answer's canonical JSON (keys sorted, no spaces).
        public var label: String
        /// A structured student's answer (nil for a label student).
        public var answer: StructuredAnswer?
        /// What the threshold is compared with: the label's probability, or a structured student's confidence.
        public var top: Double
        /// Featurize + predict, in seconds.
        public var seconds: Double
    }

    /// The student's answer for a raw input (text, or a JSON array of numbers for a numeric model).
    public func predict(_ input: String) throws(DataError) -> Prediction {
        let started = DispatchTime.now().uptimeNanoseconds
        let bundle: ModelBundle
        switch model {
        case .labels(let labels): bundle = labels
        case .structured(let student):
            let answers: [(answer: StructuredAnswer, confidence: Double)]
            do { answers = try student.predict([input]) } catch {
                throw DataError(.badData, "\(record.student) could not predict: \(error)")
            }
            guard let first = answers.first else {
                throw DataError(.badData, "\(record.student) gave no answer for the input")
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
            return Prediction(
                probabilities: [], index: 0, label: first.answer.canonicalJSON, answer: first.answer,
                top: first.confidence, seconds: seconds)
        }
        let example: ExampleInput
        if bundle.featurizer.readsText {
            example = .text(input)
        } else {
            guard let values = (try? JSON.parse(input))?.array?.compactMap({ $0.double.map(Float.init) }),
                values.count == bundle.featurizer.outputDimension, values.allSatisfy(\.isFinite)
            else {
                throw DataError(
                    .badData,
                    "\(record.student) reads \(bundle.featurizer.outputDimension) numbers; the input is not a JSON array of that many"
                )
            }
            example = .numeric(values)
        }
        let matrix: Matrix
        do { matrix = try bundle.probabilities(for: [example]) } catch {
            throw DataError(.badData, "\(record.student) could not predict: \(error)")
        }
        let probabilities = (0..<matrix.columns).map { matrix[0, $0] }
        var best = 0
        for index in probabilities.indices where probabilities[index] > probabilities[best] { best = index }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        return Prediction(
            probabilities: probabilities, index: best, label: bundle.labels[best], answer: nil,
            top: Double(probabilities[best]), seconds: seconds)
    }

    /// Adds one shadow outcome; returns the window's tally.
    package func observe(agree: Bool) -> ShadowAgreement {
        outcomes.withLock { window in
            window.append(agree)
            if window.count > ShadowAgreement.window { window.removeFirst(window.count - ShadowAgreement.window) }
            return ShadowAgreement(outcomes: window)
        }
    }

    /// What `prediction` cost to serve: its measured time at the run's vCPU price (the serving cost model).
    package func cost(of prediction: Prediction) -> Double { prediction.seconds * record.usdPerVCPUSecond }

    /// The window's tally now.
    public var agreement: ShadowAgreement { outcomes.withLock { ShadowAgreement(outcomes: $0) } }

    /// Whether shadow checks (or an operator) took it off the route.
    public var isRolledBack: Bool { rolledBack.load(ordering: .acquiring) }

    /// Marks it rolled back; false when it already was.
    package func markRolledBack() -> Bool {
        rolledBack.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
    }
}

/// The OpenAI-shaped answers of a student.
package enum StudentReply {
    /// `logprobs.content` of one answer token, with up to `top` alternatives (label order by probability).
    package static func logprobs(_ prediction: ServedStudent.Prediction, labels: [String], top: Int) -> JSON {
        func entry(_ index: Int) -> JSON {
            let label = labels[index]
            return [
                "token": .string(label),
                "logprob": .number(Foundation.log(max(Double(prediction.probabilities[index]), 1e-30))),
                "bytes": .array(label.utf8.map { .int(Int($0)) }),
            ]
        }
        let ranked = prediction.probabilities.indices.sorted {
            (prediction.probabilities[$0], $1) > (prediction.probabilities[$1], $0)
        }
        var chosen = entry(prediction.index)
        chosen["top_logprobs"] = .array(ranked.prefix(max(0, min(top, 20))).map(entry))
        return ["content": [chosen]]
    }

    /// The `logprobs` member the client asked for (`null` unless `logprobs: true`; always `null` for a structured
    /// student, which has no per-token probabilities to give).
    package static func logprobs(for chat: JSON, _ prediction: ServedStudent.Prediction, student: ServedStudent)
        -> JSON
    {
        guard chat["logprobs"]?.bool == true, let labels = student.bundle?.labels, !prediction.probabilities.isEmpty
        else { return .null }
        return logprobs(prediction, labels: labels, top: chat["top_logprobs"]?.int ?? 0)
    }

    package static let zeroUsage: JSON = ["prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0]

    /// A `chat.completion` whose content is the label.
    package static func completion(
        _ prediction: ServedStudent.Prediction, student: ServedStudent, chat: JSON, id: String, created: Int
    ) -> JSON {
        [
            "id": .string(id), "object": "chat.completion", "created": .int(created),
            "model": .string(student.record.student),
            "choices": [
                [
                    "index": 0, "message": ["role": "assistant", "content": .string(prediction.label)],
                    "logprobs": logprobs(for: chat, prediction, student: student), "finish_reason": "stop",
                ]
            ],
            "usage": zeroUsage,
        ]
    }

    /// The server-sent events of the same answer, `[DONE]` included.
    package static func stream(
        _ prediction: ServedStudent.Prediction, student: ServedStudent, chat: JSON, id: String, created: Int,
        usage: Bool
    ) -> String {
        func chunk(_ choices: JSON, usage: JSON? = nil) -> String {
            var object: JSON = [
                "id": .string(id), "object": "chat.completion.chunk", "created": .int(created),
                "model": .string(student.record.student), "choices": choices,
            ]
            if let usage { object["usage"] = usage }
            return "data: " + object.text + "\n\n"
        }
        var text = chunk([
            [
                "index": 0, "delta": ["role": "assistant", "content": .string(prediction.label)],
                "logprobs": logprobs(for: chat, prediction, student: student), "finish_reason": .null,
            ]
        ])
        text += chunk([["index": 0, "delta": [:], "finish_reason": "stop"]])
        if usage { text += chunk([], usage: zeroUsage) }
        return text + "data: [DONE]\n\n"
    }
}

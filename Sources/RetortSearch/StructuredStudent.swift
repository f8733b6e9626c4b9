import Foundation
import RetortData
import RetortStudents

/// A trained student of a structured task (FORMATS.md §9), as the search scores, times and exports it: each answer
/// comes with the student's confidence in it (a cascade's threshold).
public enum StructuredStudent: Sendable {
    /// The teacher's answer on the most similar train input; confidence is the cosine similarity.
    case nearest(NearestAnswer)
    /// A classifier per closed-set key and a span tagger for copied values; confidence is the product of the parts'
    /// probabilities.
    case fields(FieldsStudent)
    /// A decoder language model with LoRA adapters, decoding constrained to the schema; confidence is the answer's
    /// probability under the constrained decoder.
    case slm(SlmStudent)

    /// The family.
    public var family: Family {
        switch self {
        case .nearest: .nearest
        case .fields: .fields
        case .slm: .slm
        }
    }

    /// Answers `texts`, end to end from the raw inputs.
    public func predict(_ texts: [String]) throws -> [(answer: StructuredAnswer, confidence: Double)] {
        switch self {
        case .nearest(let nearest):
            nearest.nearest(texts).map { (nearest.answers[$0.row], Double(max(0, $0.similarity))) }
        case .fields(let fields): try fields.predict(texts)
        case .slm(let slm): try slm.predict(texts)
        }
    }

    /// The student stored at `precision` (nearest: its fp32 index as it is; slm: its adapters at fp32 or fp16).
    public func quantized(to precision: Precision) throws -> StructuredStudent {
        switch self {
        case .nearest: self
        case .fields(let fields): .fields(fields.quantized(to: precision))
        case .slm(let slm): .slm(try slm.quantized(to: precision))
        }
    }

    /// Epochs trained (0 for an index).
    public var epochsRun: Double {
        switch self {
        case .nearest: 0
        case .fields(let fields): Double(fields.config.epochs)
        case .slm(let slm): Double(slm.config.epochs)
        }
    }

    /// The epoch whose weights were kept, for a trained student.
    public var bestEpoch: Int? {
        switch self {
        case .nearest, .fields, .slm: nil
        }
    }

    /// The stored precision.
    public var precision: Precision {
        switch self {
        case .nearest: .fp32
        case .fields(let fields): fields.precision
        case .slm(let slm): slm.precision
        }
    }

    /// The candidate id the model folder names, when it names one.
    public var candidate: String? {
        switch self {
        case .nearest(let nearest): nearest.candidate
        case .fields: nil
        case .slm(let slm): slm.candidate
        }
    }

    /// Stored numbers (index values, weights).
    public var params: Int {
        switch self {
        case .nearest(let nearest): nearest.parameterCount
        case .fields(let fields): fields.params
        case .slm(let slm): slm.params
        }
    }

    /// Bytes of the exported model.
    public var sizeBytes: Int {
        switch self {
        case .nearest(let nearest): nearest.sizeBytes
        case .fields(let fields): fields.sizeBytes
        case .slm(let slm): slm.sizeBytes
        }
    }

    /// Analytic operations per example, on the sample `texts` where the cost depends on the input.
    public func flopsPerExample(sample texts: [String]) -> Int {
        switch self {
        case .nearest(let nearest): nearest.flopsPerExample(for: texts)
        case .fields(let fields): fields.flopsPerExample
        case .slm(let slm): slm.flopsPerExample(sample: texts)
        }
    }

    /// Writes the model folder `retort predict` runs from, naming `candidate` in its manifest.
    public func write(to folder: URL, candidate: String?) throws {
        switch self {
        case .nearest(let nearest): try nearest.write(to: folder, candidate: candidate)
        case .fields(let fields): try fields.write(to: folder)
        case .slm(let slm): try slm.write(to: folder, candidate: candidate)
        }
    }

    /// Whether `folder` holds a structured student (rather than a label student's bundle).
    public static func isStructured(folder: URL) -> Bool {
        StructuredBundleFile.family(in: folder) != nil
    }

    /// Loads a model folder written by ``write(to:)``.
    public static func load(from folder: URL) throws -> StructuredStudent {
        switch StructuredBundleFile.family(in: folder) {
        case .nearest: .nearest(try NearestAnswer.load(from: folder))
        case .fields: .fields(try FieldsStudent.load(from: folder))
        case .slm: .slm(try SlmStudent.load(from: folder))
        default:
            throw StudentError(
                "not a structured student's folder (model.json names no nearest, fields or slm family)",
                file: folder.appendingPathComponent("model.json").relativePath)
        }
    }
}

/// What a model folder's `model.json` says about its family, read leniently (any problem: not structured).
enum StructuredBundleFile {
    /// The structured family `folder/model.json` names, or nil.
    static func family(in folder: URL) -> Family? {
        guard let data = FileManager.default.contents(atPath: folder.appendingPathComponent("model.json").path),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let name = object["family"] as? String, let family = Family(rawValue: name), family.isStructured
        else { return nil }
        return family
    }
}

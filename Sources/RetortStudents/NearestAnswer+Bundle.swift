import Foundation
import RetortData

/// A nearest student's model folder: `model.json` (family `nearest`, the featurizer, the answers as JSON objects)
/// and `model.safetensors` (the inverted index: `offsets` I32 [buckets + 1], `rows` I32 [postings], `values` F32
/// [postings]). `retort predict` answers from the folder alone.
extension NearestAnswer {
    /// The folder's manifest.
    struct Manifest: Codable {
        var format: String
        var version: Int
        var family: String
        var candidate: String?
        var featurizer: HashedTextFeaturizer
        var answers: [String]
    }

    /// The manifest's `format` and `version`.
    static let bundleFormat = "retort-structured"
    static let bundleVersion = 1

    /// Writes `model.json` and `model.safetensors` into `folder` (created if needed).
    public func write(to folder: URL, candidate: String? = nil) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let tensors: [String: Tensor] = [
            "offsets": Tensor(offsets.map { Int32($0) }, shape: [offsets.count]),
            "rows": Tensor(rows, shape: [rows.count]),
            "values": Tensor(values, shape: [values.count]),
        ]
        try Safetensors.encode(tensors, metadata: ["format": "pt", "producer": "retort"]).write(
            to: folder.appendingPathComponent("model.safetensors"), options: .atomic)
        let manifest = Manifest(
            format: Self.bundleFormat, version: Self.bundleVersion, family: Family.nearest.rawValue,
            candidate: candidate ?? self.candidate, featurizer: featurizer, answers: answers.map(\.canonicalJSON))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(manifest).write(to: folder.appendingPathComponent("model.json"), options: .atomic)
    }

    /// Loads a folder written by ``write(to:candidate:)``, checking the index against the manifest (a file that does
    /// not match is an error naming it, never a trap).
    public static func load(from folder: URL) throws(StudentError) -> NearestAnswer {
        let manifestURL = folder.appendingPathComponent("model.json")
        let weightsURL = folder.appendingPathComponent("model.safetensors")
        let (manifestData, weightsData) = try ModelBundle.readFiles(in: folder)
        let manifest: Manifest
        do {
            manifest = try JSONDecoder().decode(Manifest.self, from: manifestData)
        } catch {
            throw StudentError(
                "not a nearest student's manifest (format, version, family, featurizer, answers): \(error)",
                file: manifestURL.relativePath)
        }
        guard manifest.format == bundleFormat, manifest.version == bundleVersion, manifest.family == "nearest" else {
            throw StudentError(
                "format \(manifest.format) version \(manifest.version) family \(manifest.family); this retort reads "
                    + "\(bundleFormat) version \(bundleVersion) nearest folders",
                file: manifestURL.relativePath)
        }
        guard (8...24).contains(manifest.featurizer.bucketsLog2) else {
            throw StudentError("featurizer.buckets_log2 must lie in 8…24", file: manifestURL.relativePath)
        }
        var answers: [StructuredAnswer] = []
        for (index, text) in manifest.answers.enumerated() {
            guard let answer = StructuredAnswer.parse(text: text) else {
                throw StudentError("answers[\(index)] is not a flat JSON object", file: manifestURL.relativePath)
            }
            answers.append(answer)
        }
        let (tensors, _) = try Safetensors.decode(weightsData, file: weightsURL.relativePath)
        let buckets = manifest.featurizer.bucketCount
        guard let offsets = tensors["offsets"]?.int32s(), offsets.count == buckets + 1,
            let rows = tensors["rows"]?.int32s(), let values = tensors["values"]?.floats(), rows.count == values.count,
            offsets.first == 0, Int(offsets[buckets]) == rows.count,
            zip(offsets, offsets.dropFirst()).allSatisfy({ $0 <= $1 }),
            rows.allSatisfy({ $0 >= 0 && Int($0) < answers.count }), !answers.isEmpty
        else {
            throw StudentError(
                "the index does not match model.json: offsets I32 [\(buckets + 1)] rising from 0 to the postings, rows "
                    + "I32 and values F32 [postings], rows below the \(answers.count) answers",
                file: weightsURL.relativePath)
        }
        var nearest = NearestAnswer(
            featurizer: manifest.featurizer, answers: answers, offsets: offsets.map { Int($0) }, rows: rows,
            values: values)
        nearest.candidate = manifest.candidate
        return nearest
    }
}

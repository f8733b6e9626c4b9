import Foundation
import RetortData

/// `model.json` of a `nearest` student.
struct NearestManifest: Codable {
    var format = NearestAnswer.bundleFormat
    var family = "nearest"
    var version = NearestAnswer.bundleVersion
    var featurizer: HashedTextFeaturizer
    var answers: [[String: ManifestValue]]
}

extension NearestAnswer {
    /// `format` in model.json.
    static let bundleFormat = "retort-nearest"
    /// The bundle version this code writes and reads.
    public static let bundleVersion = 1

    /// Writes `model.json` (family `nearest`, format version, featurizer settings, the indexed answers) and
    /// `model.safetensors` (the inverted index: `index.offsets` I32 `[buckets + 1]`, `index.rows` I32 and
    /// `index.values` F32 `[postings]`) into `folder` (created if needed).
    ///
    /// - Throws: when the index has more postings than an I32 offset holds, or a file cannot be written.
    public func write(to folder: URL) throws {
        guard let last = offsets.last, last <= Int(Int32.max) else {
            throw StudentError("nearest: the index has more than 2^31 postings; use fewer buckets or train rows")
        }
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let tensors: [String: Tensor] = [
            "index.offsets": Tensor(offsets.map { Int32($0) }, shape: [offsets.count]),
            "index.rows": Tensor(rows, shape: [rows.count]),
            "index.values": Tensor(values, shape: [values.count]),
        ]
        let data = try Safetensors.encode(tensors, metadata: ["format": "pt", "producer": "retort"])
        try data.write(to: folder.appendingPathComponent("model.safetensors"), options: .atomic)
        let manifest = NearestManifest(
            featurizer: featurizer, answers: answers.map { $0.fields.mapValues(ManifestValue.init) })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(manifest).write(to: folder.appendingPathComponent("model.json"), options: .atomic)
    }

    /// Loads a student written by ``write(to:)``; it retrieves exactly what the student written did.
    ///
    /// - Throws: ``StudentError`` naming the file and what is wrong: a missing file, JSON that is not a `nearest`
    ///   manifest, an unknown version, an index whose tensors are missing, of the wrong type or inconsistent.
    public static func load(from folder: URL) throws(StudentError) -> NearestAnswer {
        let manifestURL = folder.appendingPathComponent("model.json")
        let weightsURL = folder.appendingPathComponent("model.safetensors")
        let manifestPath = manifestURL.relativePath
        let weightsPath = weightsURL.relativePath
        guard let manifestData = FileManager.default.contents(atPath: manifestURL.path) else {
            throw StudentError("no model.json; pass the folder a nearest student was written to", file: manifestPath)
        }
        guard let weightsData = FileManager.default.contents(atPath: weightsURL.path) else {
            throw StudentError("no model.safetensors beside model.json; export the student again", file: weightsPath)
        }
        func fail(_ message: String) -> StudentError { StudentError(message, file: manifestPath) }
        let raw: Any
        do { raw = try JSONSerialization.jsonObject(with: manifestData) } catch {
            throw StudentError(
                "not valid JSON (\(DecodingProblem.syntax(error))); restore the file or export the student again",
                file: manifestPath, line: DecodingProblem.line(of: error, in: manifestData))
        }
        guard let top = raw as? [String: Any], top["format"] as? String == bundleFormat,
            top["family"] as? String == "nearest"
        else {
            throw fail("not a nearest student: \"format\" must be \"\(bundleFormat)\" and \"family\" \"nearest\"")
        }
        guard let version = top["version"] as? Int, version == bundleVersion else {
            throw fail(
                "unknown version \(top["version"].map { "\($0)" } ?? "(missing)"); this retort reads version "
                    + "\(bundleVersion): export the student again with this retort")
        }
        let manifest: NearestManifest
        do { manifest = try JSONDecoder().decode(NearestManifest.self, from: manifestData) } catch {
            throw fail(DecodingProblem.describe(any: error))
        }
        var featurizer = manifest.featurizer
        guard (1...24).contains(featurizer.bucketsLog2), (0...16).contains(featurizer.maxWordNgram),
            (0...16).contains(featurizer.minCharNgram), (0...16).contains(featurizer.maxCharNgram)
        else {
            throw fail("featurizer bucketsLog2 must be in 1...24 and the n-gram sizes in 0...16")
        }
        featurizer.normalization = .l2
        guard !manifest.answers.isEmpty else { throw fail("\"answers\" is empty; a nearest student retrieves one") }
        let answers = manifest.answers.map { StructuredAnswer($0.mapValues { $0.value }) }
        let (tensors, _) = try Safetensors.decode(weightsData, file: weightsPath)
        guard let offsets = tensors["index.offsets"]?.int32s(), offsets.count == featurizer.bucketCount + 1,
            let rows = tensors["index.rows"]?.int32s(), let values = tensors["index.values"]?.floats(),
            tensors["index.values"]?.dtype == .f32, rows.count == values.count
        else {
            throw StudentError(
                "the index must be I32 index.offsets [\(featurizer.bucketCount + 1)] (buckets + 1), and I32 "
                    + "index.rows and F32 index.values of one length; export the student again",
                file: weightsPath)
        }
        guard offsets.first == 0, offsets.last.map({ Int($0) }) == rows.count,
            zip(offsets, offsets.dropFirst()).allSatisfy({ $0 <= $1 }),
            rows.allSatisfy({ $0 >= 0 && Int($0) < answers.count })
        else {
            throw StudentError(
                "index.offsets must rise from 0 to the posting count and index.rows must name rows below "
                    + "\(answers.count) (the answers in model.json)", file: weightsPath)
        }
        return NearestAnswer(
            featurizer: featurizer, answers: answers, offsets: offsets.map { Int($0) }, rows: rows, values: values)
    }
}

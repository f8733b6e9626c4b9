import Foundation
import RetortData
import RetortNumerics
import RetortTestSupport
import Testing

@testable import RetortStudents

/// model.json, safetensors headers and checkpoints are outside data: every number in them is range-checked where it
/// is read, and a bad one is a worded `StudentError` (the key, what was expected), never a trap or a type dump.
@Suite struct ModelFileRangeTests {
    /// A small exported mlp bundle; returns its folder and model.json as an object.
    static func exportedBundle() throws -> (URL, [String: Any]) {
        var generator = SeededGenerator(seed: 9)
        let architecture = Architecture(
            family: .mlp, hidden: [4], inputDimension: 3, outputDimension: 2, sparseInput: false)
        let bundle = ModelBundle(
            candidate: "mlp-4", network: DenseNetwork(architecture: architecture, generator: &generator),
            featurizer: .numeric(NumericStandardizer(mean: [0, 0, 0], standardDeviation: [1, 1, 1])),
            labels: ["a", "b"])
        let folder = SyntheticTasks.temporaryFolder().appendingPathComponent("model")
        try bundle.write(to: folder)
        let data = try Data(contentsOf: folder.appendingPathComponent("model.json"))
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        return (folder, object)
    }

    static func rewrite(_ object: [String: Any], in folder: URL) throws {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        try data.write(to: folder.appendingPathComponent("model.json"))
    }

    static func loadError(_ folder: URL) -> StudentError? {
        #expect(throws: StudentError.self) { try ModelBundle.load(from: folder) }
    }

    @Test("an unknown family names the key, the value and the choices")
    func unknownFamily() throws {
        var (folder, object) = try Self.exportedBundle()
        object["family"] = "foo"
        try Self.rewrite(object, in: folder)
        let error = Self.loadError(folder)
        #expect(
            error?.message
                == "key `family`: unknown family `foo` (expected one of \(Family.allCases.map(\.rawValue).joined(separator: ", ")))"
        )
        #expect(error?.file?.hasSuffix("model/model.json") == true)
    }

    @Test("malformed JSON is reported with its line")
    func malformedJSON() throws {
        let (folder, _) = try Self.exportedBundle()
        let url = folder.appendingPathComponent("model.json")
        var lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n").map(String.init)
        lines[3] = "  oops,"
        try Data(lines.joined(separator: "\n").utf8).write(to: url)
        let error = Self.loadError(folder)
        #expect(error?.line == 4, "\(String(describing: error))")
        #expect(error?.message.hasPrefix("not valid JSON") == true)
        #expect(error?.description.contains("model.json:4: not valid JSON") == true)
    }

    @Test(
        "numbers outside their range are rejected with the key and the range",
        arguments: [
            ("architecture", "inputDimension", 1e30 as Double, "key `architecture.inputDimension`: expected a whole"),
            (
                "architecture", "outputDimension", 0,
                "key `architecture.outputDimension`: must be in [1, 1000000], got 0"
            ),
            ("featurizer", "dimension", -3, "key `featurizer.dimension`: must be in [1, 16777216], got -3"),
            ("featurizer", "max_length", 1e6, "key `featurizer.max_length`: must be in [1, 8192], got 1000000"),
        ])
    func outOfRange(section: String, key: String, value: Double, message: String) throws {
        var (folder, object) = try Self.exportedBundle()
        var inner = try #require(object[section] as? [String: Any])
        inner[key] = value
        object[section] = inner
        try Self.rewrite(object, in: folder)
        let error = Self.loadError(folder)
        #expect(error?.message.hasPrefix(message) == true, "\(String(describing: error?.message))")
    }

    @Test("a gbdt depth of 63 (2^63 − 1 nodes) is rejected, not computed")
    func hugeTreeDepth() throws {
        var (folder, object) = try Self.exportedBundle()
        object["family"] = "gbdt"
        var architecture = try #require(object["architecture"] as? [String: Any])
        architecture["family"] = "gbdt"
        architecture["hidden"] = [63, 1]
        object["architecture"] = architecture
        try Self.rewrite(object, in: folder)
        let error = Self.loadError(folder)
        #expect(error?.message == "key `architecture.hidden[0]`: must be in [1, 16], got 63")
    }

    /// A safetensors file with `header` as its JSON header and `body` bytes.
    static func safetensors(header: String, body: Int) -> Data {
        var json = Data(header.utf8)
        while json.count % 8 != 0 { json.append(0x20) }
        var length = UInt64(json.count).littleEndian
        var data = Data(bytes: &length, count: 8)
        data.append(json)
        data.append(Data(count: body))
        return data
    }

    @Test("a header whose shape overflows or is negative is an error, not a trap")
    func overflowingShapes() throws {
        let overflow = Self.safetensors(
            header: #"{"w": {"dtype": "F32", "shape": [4611686018427387904, 4], "data_offsets": [0, 16]}}"#, body: 16)
        #expect(throws: StudentError.self) { try Safetensors.decode(overflow, file: "m.safetensors") }
        let negative = Self.safetensors(
            header: #"{"w": {"dtype": "F32", "shape": [-2, -2], "data_offsets": [0, 16]}}"#, body: 16)
        let error = #expect(throws: StudentError.self) { try Safetensors.decode(negative, file: "m.safetensors") }
        #expect(error?.message.contains("shape (sizes ≥ 0)") == true)
        let fine = Self.safetensors(
            header: #"{"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}"#, body: 16)
        #expect(try Safetensors.decode(fine, file: "m.safetensors").tensors["w"]?.shape == [2, 2])
    }

    /// A gbdt checkpoint after 3 rounds, with `edit` applied to its tensors and metadata.
    static func gbdtCheckpoint(
        _ edit: (inout [String: Tensor], inout [String: String]) -> Void
    ) throws -> (Data, Architecture, TrainingSplit) {
        let data = blobs(count: 120, seed: 5)
        let split = TrainingSplit(
            features: .dense(data.features), teacherProbabilities: data.probabilities, hardLabels: data.labels)
        let architecture = Architecture(
            family: .gbdt, hidden: [3, 10], inputDimension: 5, outputDimension: 3, sparseInput: false)
        var session = TrainingSession(
            architecture: architecture, train: split, options: TrainingOptions(epochs: 10, learningRate: 0.2),
            seed: 1)
        try session.runEpochs(3, train: split, validation: split)
        var (tensors, metadata) = try Safetensors.decode(try session.checkpointData(), file: "c.safetensors")
        edit(&tensors, &metadata)
        return (try Safetensors.encode(tensors, metadata: metadata), architecture, split)
    }

    @Test(
        "a checkpoint with a feature index that is not one, or a negative round count, is an error",
        arguments: [Float.nan, 1e10, 99])
    func corruptCheckpointFeatures(value: Float) throws {
        let (data, architecture, split) = try Self.gbdtCheckpoint { tensors, _ in
            var features = tensors["trees.features"]?.floats() ?? []
            features[0] = value
            tensors["trees.features"] = Tensor(features, shape: [features.count])
        }
        let error = #expect(throws: StudentError.self) {
            try TrainingSession(
                restoring: data, file: "c.safetensors", architecture: architecture, train: split,
                options: TrainingOptions(epochs: 10, learningRate: 0.2))
        }
        #expect(error?.message.contains("not a feature index in [-1, 5)") == true, "\(String(describing: error))")
    }

    @Test("checkpoint counters outside their range are errors", arguments: ["best_rounds", "epochs_run", "best_epoch"])
    func corruptCheckpointCounters(key: String) throws {
        let (data, architecture, split) = try Self.gbdtCheckpoint { _, metadata in metadata[key] = "-5" }
        let error = #expect(throws: StudentError.self) {
            try TrainingSession(
                restoring: data, file: "c.safetensors", architecture: architecture, train: split,
                options: TrainingOptions(epochs: 10, learningRate: 0.2))
        }
        #expect(
            error?.message.contains("checkpoint metadata \(key) must be in [0, ") == true,
            "\(String(describing: error))")
    }
}

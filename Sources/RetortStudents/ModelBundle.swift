import Foundation
import RetortData
import RetortNumerics

/// An exported student: `model.safetensors` (weights, and the featurizer's statistics) plus `model.json`
/// (family, architecture, labels, featurizer, precision). Everything needed to predict from raw inputs.
public struct ModelBundle: Sendable {
    /// The candidate id it was exported as.
    public var candidate: String
    /// The model.
    public var model: StudentModel
    /// The featurizer (or the pretrained encoder of an `encoder-head` student).
    public var featurizer: InputFeaturizer
    /// Labels by class index.
    public var labels: [String]

    /// A bundle from its parts.
    public init(candidate: String, network: DenseNetwork, featurizer: Featurizer, labels: [String]) {
        self.init(candidate: candidate, model: .dense(network), featurizer: featurizer, labels: labels)
    }

    /// A bundle of any family.
    public init(candidate: String, model: StudentModel, featurizer: Featurizer, labels: [String]) {
        self.init(candidate: candidate, model: model, featurizer: .basic(featurizer), labels: labels)
    }

    /// A bundle of any family, with any input side.
    public init(candidate: String, model: StudentModel, featurizer: InputFeaturizer, labels: [String]) {
        self.candidate = candidate
        self.model = model
        self.featurizer = featurizer
        self.labels = labels
    }

    /// Class probabilities for raw inputs.
    public func probabilities(for inputs: [ExampleInput]) throws(NumericsError) -> Matrix {
        try model.probabilities(try featurizer.features(for: inputs))
    }

    /// The named tensors as exported.
    public func tensors() -> [String: Tensor] {
        var tensors: [String: Tensor] = [:]
        switch model {
        case .trees(let trees):
            tensors["trees.feature"] = Tensor(trees.features.map { Int16(clamping: $0) }, shape: [trees.features.count])
            tensors["trees.threshold"] = Tensor(trees.thresholds, shape: [trees.thresholds.count])
            if trees.precision == .fp16 {
                tensors["trees.leaf"] = Tensor(trees.leaves.map { Float16($0) }, shape: [trees.leaves.count])
            } else {
                tensors["trees.leaf"] = Tensor(trees.leaves, shape: [trees.leaves.count])
            }
            tensors["trees.base"] = Tensor(trees.baseScores, shape: [trees.baseScores.count])
        case .dense(let network):
            addLayers(of: network, to: &tensors)
        }
        if case .basic(.numeric(let standardizer)) = featurizer {
            tensors["featurizer.mean"] = Tensor(standardizer.mean, shape: [standardizer.mean.count])
            tensors["featurizer.std"] = Tensor(standardizer.standardDeviation, shape: [standardizer.mean.count])
        }
        return tensors
    }

    func addLayers(of network: DenseNetwork, to tensors: inout [String: Tensor]) {
        for (index, layer) in network.layers.enumerated() {
            let shape = [layer.inputDimension, layer.outputDimension]
            if let int8 = layer.int8 {
                tensors["layers.\(index).weight"] = Tensor(int8.codes, shape: shape)
                tensors["layers.\(index).weight_scale"] = Tensor(int8.scales, shape: [layer.outputDimension])
            } else if network.precision == .fp16 {
                tensors["layers.\(index).weight"] = Tensor(layer.weights.storage.map { Float16($0) }, shape: shape)
            } else {
                tensors["layers.\(index).weight"] = Tensor(layer.weights.storage, shape: shape)
            }
            tensors["layers.\(index).bias"] = Tensor(layer.bias, shape: [layer.outputDimension])
        }
    }

    /// The exported architecture: the network's, or for trees their depth and actual rounds.
    var architecture: Architecture {
        switch model {
        case .dense(let network): return network.architecture
        case .trees(let trees):
            return Architecture(
                family: .gbdt, hidden: [trees.depth, trees.rounds], inputDimension: trees.inputDimension,
                outputDimension: trees.classes, sparseInput: false)
        }
    }

    /// Bytes of tensor data in the export (with an encoder's files): the student's `size_bytes`.
    public var sizeBytes: Int {
        let encoderBytes = if case .encoder(let encoder) = featurizer { encoder.storedBytes } else { 0 }
        return tensors().values.reduce(0) { $0 + $1.bytes.count } + encoderBytes
    }

    struct Manifest: Codable {
        var format = "retort-model"
        var version = 1
        var candidate: String
        var family: Family
        var precision: Precision
        var architecture: Architecture
        var labels: [String]
        var featurizer: FeaturizerManifest
    }

    struct FeaturizerManifest: Codable {
        var kind: String
        var bucketsLog2: Int?
        var maxWordNgram: Int?
        var minCharNgram: Int?
        var maxCharNgram: Int?
        var normalization: String?
        var dimension: Int?
        var maxLength: Int?
        var layers: Int?

        enum CodingKeys: String, CodingKey {
            case kind, normalization, dimension, layers
            case maxLength = "max_length"
            case bucketsLog2 = "buckets_log2"
            case maxWordNgram = "max_word_ngram"
            case minCharNgram = "min_char_ngram"
            case maxCharNgram = "max_char_ngram"
        }
    }

    /// Writes `model.safetensors` and `model.json` into `folder` (created if needed).
    public func write(to folder: URL) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let data = try Safetensors.encode(tensors(), metadata: ["format": "pt", "producer": "retort"])
        try data.write(to: folder.appendingPathComponent("model.safetensors"), options: .atomic)
        let featurizerManifest: FeaturizerManifest
        switch featurizer {
        case .basic(.numeric(let standardizer)):
            featurizerManifest = FeaturizerManifest(kind: "standardize", dimension: standardizer.mean.count)
        case .encoder(let encoder):
            featurizerManifest = FeaturizerManifest(
                kind: "encoder", normalization: encoder.encoder.normalizes ? "l2" : nil,
                dimension: encoder.encoder.config.hiddenSize, maxLength: encoder.maxLength,
                layers: encoder.encoder.layers.count)
            try encoder.write(to: folder.appendingPathComponent("encoder"))
        case .basic(.text(let hashed)):
            featurizerManifest = FeaturizerManifest(
                kind: "hashed-ngrams", bucketsLog2: hashed.bucketsLog2, maxWordNgram: hashed.maxWordNgram,
                minCharNgram: hashed.minCharNgram, maxCharNgram: hashed.maxCharNgram,
                normalization: hashed.normalization.rawValue)
        }
        let manifest = Manifest(
            candidate: candidate, family: architecture.family, precision: model.precision,
            architecture: architecture, labels: labels, featurizer: featurizerManifest)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(manifest).write(to: folder.appendingPathComponent("model.json"), options: .atomic)
    }

    /// Loads a bundle written by ``write(to:)``, checking every tensor's shape against model.json.
    public static func load(from folder: URL) throws(StudentError) -> ModelBundle {
        let (manifestData, weightsData) = try readFiles(in: folder)
        return try load(manifest: manifestData, weights: weightsData, folder: folder)
    }

    /// The bytes of a model folder's model.json and model.safetensors (every student family's folder holds both).
    static func readFiles(in folder: URL) throws(StudentError) -> (manifest: Data, weights: Data) {
        let manifestURL = folder.appendingPathComponent("model.json")
        let weightsURL = folder.appendingPathComponent("model.safetensors")
        guard let manifestData = FileManager.default.contents(atPath: manifestURL.path) else {
            throw StudentError(
                "no model.json; pass the model folder of a run (RUN_DIR/model)", file: manifestURL.relativePath)
        }
        guard let weightsData = FileManager.default.contents(atPath: weightsURL.path) else {
            throw StudentError("no model.safetensors beside model.json", file: weightsURL.relativePath)
        }
        return (manifestData, weightsData)
    }

    /// Loads a bundle from the bytes of its model.json and model.safetensors (`folder` names them in messages), as
    /// ``load(from:)`` does; the fuzzer's in-memory entry.
    public static func load(manifest manifestData: Data, weights weightsData: Data, folder: URL) throws(StudentError)
        -> ModelBundle
    {
        let manifestURL = folder.appendingPathComponent("model.json")
        let weightsURL = folder.appendingPathComponent("model.safetensors")
        let manifest = try Manifest.decode(manifestData, file: manifestURL.relativePath)
        let (tensors, _) = try Safetensors.decode(weightsData, file: weightsURL.relativePath)
        guard manifest.labels.count == manifest.architecture.outputDimension else {
            throw StudentError(
                "model.json lists \(manifest.labels.count) labels for \(manifest.architecture.outputDimension) outputs",
                file: manifestURL.relativePath)
        }
        let reader = BundleReader(
            manifest: manifest, tensors: tensors, manifestPath: manifestURL.relativePath,
            weightsPath: weightsURL.relativePath)
        let model: StudentModel =
            manifest.architecture.family.isTrees
            ? .trees(try reader.trees())
            : .dense(
                DenseNetwork(
                    architecture: manifest.architecture, layers: try reader.layers(), precision: manifest.precision))
        return ModelBundle(
            candidate: manifest.candidate, model: model, featurizer: try reader.featurizer(folder: folder),
            labels: manifest.labels)
    }
}

/// Rebuilds a bundle's parts from its manifest and tensors, checking each tensor's name, shape and type against the
/// architecture (a file that does not match is an error naming the tensor, never a trap).
struct BundleReader {
    let manifest: ModelBundle.Manifest
    let tensors: [String: Tensor]
    let manifestPath: String
    let weightsPath: String

    var architecture: Architecture { manifest.architecture }

    /// The tensor `name`, which must have `shape`.
    func tensor(_ name: String, _ shape: [Int]) throws(StudentError) -> Tensor {
        guard let tensor = tensors[name], tensor.shape == shape else {
            throw StudentError("tensor \"\(name)\" is missing or not of shape \(shape)", file: weightsPath)
        }
        return tensor
    }

    /// A tree ensemble from `trees.feature` (I16), `trees.threshold`, `trees.leaf` and `trees.base`.
    func trees() throws(StudentError) -> TreeEnsemble {
        let depth = architecture.treeShape.depth
        guard let features = tensors["trees.feature"]?.int16s(),
            let thresholds = tensors["trees.threshold"]?.floats(),
            let leaves = tensors["trees.leaf"]?.floats(),
            let base = try tensor("trees.base", [architecture.outputDimension]).floats(),
            thresholds.count == features.count, depth >= 1,
            features.count % ((1 << depth) - 1) == 0,
            leaves.count == features.count / ((1 << depth) - 1) * (1 << depth),
            features.allSatisfy({ $0 < architecture.inputDimension })
        else {
            throw StudentError(
                "trees.feature (I16), trees.threshold, trees.leaf and trees.base do not describe depth-\(depth) trees",
                file: weightsPath)
        }
        var trees = TreeEnsemble(
            classes: architecture.outputDimension, inputDimension: architecture.inputDimension, depth: depth,
            baseScores: base)
        trees.features = features.map(Int32.init)
        trees.thresholds = thresholds
        trees.leaves = leaves
        trees.precision = manifest.precision
        return trees
    }

    /// The dense layers `layers.I.weight` / `.bias` (and `.weight_scale` at int8), in the manifest's precision.
    func layers() throws(StudentError) -> [DenseLayer] {
        var layers: [DenseLayer] = []
        let widths = architecture.widths
        for (index, (input, output)) in zip(widths, widths.dropFirst()).enumerated() {
            let weight = try tensor("layers.\(index).weight", [input, output])
            guard let bias = try tensor("layers.\(index).bias", [output]).floats() else {
                throw StudentError("layers.\(index).bias must be F32", file: weightsPath)
            }
            switch manifest.precision {
            case .fp32, .fp16:
                let expected: Tensor.DType = manifest.precision == .fp32 ? .f32 : .f16
                guard weight.dtype == expected, let values = weight.floats() else {
                    throw StudentError(
                        "layers.\(index).weight must be \(expected.rawValue) for an \(manifest.precision.rawValue) model",
                        file: weightsPath)
                }
                layers.append(DenseLayer(weights: Matrix(rows: input, columns: output, storage: values), bias: bias))
            case .int8:
                guard let codes = weight.int8s(),
                    let scales = try tensor("layers.\(index).weight_scale", [output]).floats()
                else {
                    throw StudentError("layers.\(index) needs I8 weight and F32 weight_scale", file: weightsPath)
                }
                var dequantized = Matrix(rows: input, columns: output)
                for i in 0..<input {
                    for o in 0..<output { dequantized[i, o] = Float(codes[i * output + o]) * scales[o] }
                }
                layers.append(
                    DenseLayer(
                        weights: dequantized, bias: bias, int8: DenseLayer.Int8Weights(codes: codes, scales: scales)))
            }
        }
        return layers
    }

    /// The input featurizer the manifest names: a numeric standardizer, hashed n-grams, or the encoder in
    /// `folder/encoder`.
    func featurizer(folder: URL) throws(StudentError) -> InputFeaturizer {
        let spec = manifest.featurizer
        switch spec.kind {
        case "standardize":
            let dimension = spec.dimension ?? architecture.inputDimension
            guard let mean = try tensor("featurizer.mean", [dimension]).floats(),
                let std = try tensor("featurizer.std", [dimension]).floats()
            else { throw StudentError("featurizer.mean and featurizer.std must be F32", file: weightsPath) }
            return .basic(.numeric(NumericStandardizer(mean: mean, standardDeviation: std)))
        case "hashed-ngrams":
            guard let bucketsLog2 = spec.bucketsLog2, 1 << bucketsLog2 == architecture.inputDimension else {
                throw StudentError("featurizer buckets_log2 does not match the input dimension", file: manifestPath)
            }
            guard let normalization = HashedTextFeaturizer.Normalization(rawValue: spec.normalization ?? "l2") else {
                throw StudentError(
                    "featurizer normalization is l2 or mean, not \"\(spec.normalization ?? "")\"", file: manifestPath)
            }
            return .basic(
                .text(
                    HashedTextFeaturizer(
                        bucketsLog2: bucketsLog2, maxWordNgram: spec.maxWordNgram ?? 2,
                        minCharNgram: spec.minCharNgram ?? 3,
                        maxCharNgram: spec.maxCharNgram ?? 5, normalization: normalization)))
        case "encoder":
            let encoder = try TextEncoder.load(
                from: folder.appendingPathComponent("encoder"), maxLength: spec.maxLength ?? 128)
            guard encoder.encoder.config.hiddenSize == architecture.inputDimension else {
                throw StudentError(
                    "encoder/ produces \(encoder.encoder.config.hiddenSize)-wide vectors; the head reads \(architecture.inputDimension)",
                    file: manifestPath)
            }
            return .encoder(encoder)
        default:
            throw StudentError("unknown featurizer kind \"\(spec.kind)\"", file: manifestPath)
        }
    }
}

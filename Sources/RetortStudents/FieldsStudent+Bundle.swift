import Foundation
import RetortData
import RetortNumerics

/// A structured value as it sits in a manifest: a JSON string, number or boolean.
struct ManifestValue: Codable, Equatable {
    let value: StructuredValue

    init(_ value: StructuredValue) { self.value = value }

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let text = try? container.decode(String.self) {
            value = .string(text)
        } else if let flag = try? container.decode(Bool.self) {
            value = .bool(flag)
        } else {
            let number = try container.decode(Double.self)
            guard number.isFinite else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "a value must be finite")
            }
            value = .number(number)
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch value {
        case .string(let text): try container.encode(text)
        case .bool(let flag): try container.encode(flag)
        case .number(let number):
            if let integer = StructuredValue.integerValue(number) {
                try container.encode(integer)
            } else {
                try container.encode(number)
            }
        }
    }
}

extension StructuredValue {
    /// `number` as an integer when it is integral and below 2^53.
    static func integerValue(_ number: Double) -> Int64? {
        guard number == number.rounded(), abs(number) < 9_007_199_254_740_992 else { return nil }
        return Int64(number)
    }
}

/// The schema as task.json writes it (FORMATS.md §9), for manifests.
struct SchemaDocument: Codable {
    struct Property: Codable {
        var type: String?
        var allowed: [ManifestValue]?

        enum CodingKeys: String, CodingKey {
            case type
            case allowed = "enum"
        }
    }

    var type = "object"
    var properties: [String: Property]
    var required: [String]

    init(_ schema: StructuredSchema) {
        properties = schema.properties.mapValues {
            Property(type: $0.type?.rawValue, allowed: $0.allowed?.map(ManifestValue.init))
        }
        required = schema.required.sorted()
    }
}

/// `model.json` of a `fields` student.
struct FieldsManifest: Codable {
    struct Closed: Codable {
        var key: String
        var values: [ManifestValue]
        var absent: Bool
        var architecture: Architecture?
    }

    struct Span: Codable {
        var key: String
        var casing: FieldsStudent.Casing
    }

    var format = FieldsStudent.bundleFormat
    var family = "fields"
    var version = FieldsStudent.bundleVersion
    var precision: Precision
    var config: FieldsConfig
    var schema: SchemaDocument
    var roles: [String: FieldsStudent.Role]
    var featurizer: HashedTextFeaturizer
    var closed: [Closed]
    var spans: [Span]
    var tagger: Architecture?
    var fallback: [String: ManifestValue]
    var costs: FieldsStudent.Costs
}

extension FieldsStudent {
    /// `format` in model.json.
    static let bundleFormat = "retort-fields"
    /// The bundle version this code writes and reads.
    public static let bundleVersion = 1

    /// The exported tensors: `closed.I.layers.J.weight` / `.bias` (`.weight_scale` at int8) for the I-th closed key
    /// with a classifier, and `tagger.layers.J.*` for the span tagger, as ``ModelBundle`` names a network's layers.
    func tensors() -> [String: Tensor] {
        var tensors: [String: Tensor] = [:]
        func add(_ model: StudentModel, prefix: String) {
            let bundle = ModelBundle(candidate: "", model: model, featurizer: .text(featurizer), labels: [])
            for (name, tensor) in bundle.tensors() { tensors[prefix + name] = tensor }
        }
        for (index, part) in closed.enumerated() {
            if let model = part.model { add(model, prefix: "closed.\(index).") }
        }
        if let tagger { add(tagger, prefix: "tagger.") }
        return tensors
    }

    /// Writes `model.json` (family `fields`, format version, schema, roles, featurizer settings, each closed key's
    /// values, span keys, precision, architectures) and `model.safetensors` into `folder` (created if needed).
    public func write(to folder: URL) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let manifest = FieldsManifest(
            precision: precision, config: config, schema: SchemaDocument(schema), roles: roles,
            featurizer: featurizer,
            closed: closed.map { part in
                let architecture: Architecture? =
                    if case .dense(let network) = part.model { network.architecture } else { nil }
                return FieldsManifest.Closed(
                    key: part.key, values: part.values.map(ManifestValue.init), absent: part.absent,
                    architecture: architecture)
            },
            spans: spans.map { FieldsManifest.Span(key: $0.key, casing: $0.casing) },
            tagger: { if case .dense(let network) = tagger { network.architecture } else { nil } }(),
            fallback: fallback.mapValues(ManifestValue.init), costs: costs)
        let data = try Safetensors.encode(tensors(), metadata: ["format": "pt", "producer": "retort"])
        try data.write(to: folder.appendingPathComponent("model.safetensors"), options: .atomic)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(manifest).write(to: folder.appendingPathComponent("model.json"), options: .atomic)
    }

    /// Loads a student written by ``write(to:)``; predictions are exactly those of the student written.
    ///
    /// - Throws: ``StudentError`` naming the file and what is wrong: a missing file, JSON that is not a `fields`
    ///   manifest, an unknown version, a schema, role or value that does not fit, a tensor missing or of the wrong
    ///   shape or type.
    public static func load(from folder: URL) throws(StudentError) -> FieldsStudent {
        let manifestURL = folder.appendingPathComponent("model.json")
        let weightsURL = folder.appendingPathComponent("model.safetensors")
        let manifestPath = manifestURL.relativePath
        let weightsPath = weightsURL.relativePath
        guard let manifestData = FileManager.default.contents(atPath: manifestURL.path) else {
            throw StudentError("no model.json; pass the folder a fields student was written to", file: manifestPath)
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
        guard let top = raw as? [String: Any] else { throw fail("expected a JSON object (a fields manifest)") }
        guard top["format"] as? String == bundleFormat, top["family"] as? String == "fields" else {
            throw fail("not a fields student: \"format\" must be \"\(bundleFormat)\" and \"family\" \"fields\"")
        }
        guard let version = top["version"] as? Int, version == bundleVersion else {
            throw fail(
                "unknown version \(top["version"].map { "\($0)" } ?? "(missing)"); this retort reads version "
                    + "\(bundleVersion): export the student again with this retort")
        }
        let manifest: FieldsManifest
        do { manifest = try JSONDecoder().decode(FieldsManifest.self, from: manifestData) } catch {
            throw fail(DecodingProblem.describe(any: error))
        }
        let schema: StructuredSchema
        do { schema = try StructuredSchema.parse(top["schema"] ?? NSNull(), file: manifestPath) } catch {
            throw fail(error.message)
        }
        let (tensors, _) = try Safetensors.decode(weightsData, file: weightsPath)
        return try FieldsLoader(
            manifest: manifest, schema: schema, tensors: tensors, manifestPath: manifestPath, weightsPath: weightsPath
        ).student()
    }
}

/// Checks a decoded fields manifest against its schema and tensors and rebuilds the student.
private struct FieldsLoader {
    let manifest: FieldsManifest
    let schema: StructuredSchema
    let tensors: [String: Tensor]
    let manifestPath: String
    let weightsPath: String

    func fail(_ message: String) -> StudentError { StudentError(message, file: manifestPath) }

    func student() throws(StudentError) -> FieldsStudent {
        let featurizer = manifest.featurizer
        guard (1...24).contains(featurizer.bucketsLog2), (1...24).contains(manifest.config.tokenBucketsLog2),
            (0...16).contains(featurizer.maxWordNgram), (0...16).contains(featurizer.minCharNgram),
            (0...16).contains(featurizer.maxCharNgram)
        else {
            throw fail("featurizer bucketsLog2 and config tokenBucketsLog2 must be in 1...24, n-gram sizes in 0...16")
        }
        guard Set(manifest.roles.keys) == Set(schema.keys) else {
            throw fail("\"roles\" must give one role per schema property (\(schema.keys.joined(separator: ", ")))")
        }
        let closedKeys = schema.keys.filter { manifest.roles[$0] == .closed }
        let spanKeys = schema.keys.filter { manifest.roles[$0] == .span }
        guard manifest.closed.map(\.key) == closedKeys, manifest.spans.map(\.key) == spanKeys else {
            throw fail("\"closed\" and \"spans\" must list the closed and span keys of \"roles\", in sorted order")
        }
        var closed: [FieldsStudent.ClosedPart] = []
        for (index, entry) in manifest.closed.enumerated() {
            let values = entry.values.map(\.value)
            guard let property = schema.properties[entry.key], values.allSatisfy(property.admits) else {
                throw fail("closed key \"\(entry.key)\" lists a value its schema property does not admit")
            }
            var part = FieldsStudent.ClosedPart(key: entry.key, values: values, absent: entry.absent)
            let classes = values.count + (entry.absent ? 1 : 0)
            if let architecture = entry.architecture {
                guard classes >= 2 else {
                    throw fail(
                        "closed key \"\(entry.key)\" has a classifier but \(classes) class; it needs two or more")
                }
                part.model = try model(
                    architecture, classes: classes, inputDimension: 1 << featurizer.bucketsLog2,
                    prefix: "closed.\(index).", what: "classifier of \"\(entry.key)\"")
            } else if classes >= 2 {
                throw fail("closed key \"\(entry.key)\" has \(classes) classes but no architecture")
            }
            closed.append(part)
        }
        var tagger: StudentModel?
        if let architecture = manifest.tagger {
            tagger = try model(
                architecture, classes: 1 + 2 * spanKeys.count, inputDimension: 1 << manifest.config.tokenBucketsLog2,
                prefix: "tagger.", what: "span tagger")
        } else if !spanKeys.isEmpty {
            throw fail("span keys need a \"tagger\" architecture")
        }
        var fallback: [String: StructuredValue] = [:]
        for key in schema.required {
            guard let value = manifest.fallback[key]?.value, schema.properties[key]?.admits(value) ?? false else {
                throw fail("\"fallback\" must give required key \"\(key)\" a value its schema property admits")
            }
            fallback[key] = value
        }
        return FieldsStudent(
            schema: schema, roles: manifest.roles, config: manifest.config, featurizer: featurizer,
            tokenFeaturizer: TokenFeaturizer(bucketsLog2: manifest.config.tokenBucketsLog2), closed: closed,
            spans: manifest.spans.map { FieldsStudent.SpanPart(key: $0.key, casing: $0.casing) }, tagger: tagger,
            fallback: fallback, costs: manifest.costs)
    }

    /// A part's network from the tensors under `prefix`, its shape checked against the manifest.
    func model(
        _ architecture: Architecture, classes: Int, inputDimension: Int, prefix: String, what: String
    ) throws(StudentError) -> StudentModel {
        guard architecture.family == .linear || architecture.family == .mlp, architecture.sparseInput,
            architecture.inputDimension == inputDimension, architecture.outputDimension == classes,
            architecture.hidden.count <= (architecture.family == .linear ? 0 : 1),
            architecture.hidden.allSatisfy({ (1...(1 << 20)).contains($0) })
        else {
            throw fail(
                "the \(what) must be a linear or one-hidden-layer mlp from \(inputDimension) sparse inputs to "
                    + "\(classes) classes")
        }
        var part: [String: Tensor] = [:]
        for (name, tensor) in tensors where name.hasPrefix(prefix) {
            part[String(name.dropFirst(prefix.count))] = tensor
        }
        let bundleManifest = ModelBundle.Manifest(
            candidate: "", family: architecture.family, precision: manifest.precision, architecture: architecture,
            labels: [], featurizer: ModelBundle.FeaturizerManifest(kind: "hashed-ngrams"))
        let reader = BundleReader(
            manifest: bundleManifest, tensors: part, manifestPath: manifestPath, weightsPath: weightsPath)
        do {
            return .dense(
                DenseNetwork(architecture: architecture, layers: try reader.layers(), precision: manifest.precision))
        } catch {
            throw StudentError("the \(what) (tensors \(prefix)*): \(error.message)", file: weightsPath)
        }
    }
}

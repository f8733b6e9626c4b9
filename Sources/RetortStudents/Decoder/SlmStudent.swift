import Foundation
import RetortData

/// The `slm` student of a structured task: a small pretrained decoder language model (SmolLM2-135M-Instruct by
/// default, read from its GGUF file) fine-tuned with LoRA on the teacher's answers (sequence-level distillation:
/// ``SlmFormat``'s prompt from the input, the teacher's canonical JSON as the target), answering by decoding constrained
/// to the schema (``SchemaDecoder``), so every answer is valid. Confidence is the answer's probability under the
/// constrained decoder (the exponential of its sequence log-probability), a cascade's threshold.
///
/// What ships is what is measured: the base model's GGUF file as it was fetched, beside the adapters as safetensors;
/// loading merges the adapters into the dequantized weights once, so every answer runs at the base model's speed.
public struct SlmStudent: Sendable {
    /// The schema the answers follow.
    public let schema: StructuredSchema
    /// The adapters' configuration (rank, alpha, depth, targets, epochs).
    public var config: LoRAConfig { adapters.config }
    /// The trained adapters.
    public let adapters: LoRAAdapters
    /// The precision the adapters are stored at (fp32 or fp16).
    public let precision: Precision
    /// The base model's GGUF file.
    public let modelFile: URL
    /// What training reported (nil for a loaded student).
    public let training: LoRATrainingReport?
    /// The mean number of target tokens of the training answers (for FLOPs).
    public let meanTargetTokens: Double
    /// The candidate id the model folder names (a loaded student).
    public var candidate: String?
    /// The base model's GGUF file size, read once.
    let baseBytes: Int
    let base: LlamaDecoder
    let merged: LlamaDecoder
    let tokenizer: BPETokenizer
    let decoding: SchemaDecoder

    /// Where `make models` puts SmolLM2-135M-Instruct (relative to the working directory).
    public static let defaultModelPath = ".build-models/SmolLM2-135M-Instruct/model.gguf"
    /// Sequences decoded together when answering many inputs.
    public static let batchSize = 32
    /// `format` in model.json.
    static let bundleFormat = "retort-slm"
    /// The bundle version this code writes and reads.
    public static let bundleVersion = 1

    /// Trains adapters for the model in `modelFile` on the inputs `texts` whose teacher answer is valid (`answers`,
    /// nil where invalid: never trained on): sequence-level distillation on the answer's canonical JSON, plus
    /// token-level distillation at `softWeight` where a row's teacher `tokens` line up with it (``SlmDistillation``).
    public static func train(
        texts: [String], answers: [StructuredAnswer?], tokens: [[TeacherToken]?]? = nil, schema: StructuredSchema,
        config: LoRAConfig, modelFile: URL, precision: Precision = .fp32, softWeight: Double = 0.5,
        progress: (@Sendable (String) -> Void)? = nil
    ) throws -> SlmStudent {
        let gguf = try GGUFFile(url: modelFile)
        let tokenizer = try BPETokenizer(gguf: gguf)
        let base = try LlamaDecoder(gguf: gguf)
        var examples: [(prompt: [Int32], target: [Int32])] = []
        // Token-level targets where the row recorded the teacher's tokens and they line up (SlmDistillation).
        var soft: [[SlmDistillation.Soft]?] = []
        for (index, (text, answer)) in zip(texts, answers).enumerated() {
            guard let answer else { continue }
            let target = SlmFormat.targetTokens(answer, tokenizer: tokenizer)
            examples.append((SlmFormat.promptTokens(text, tokenizer: tokenizer), target))
            soft.append(
                tokens?[index].flatMap {
                    SlmDistillation.softTargets(tokens: $0, answer: answer, target: target, tokenizer: tokenizer)
                })
        }
        guard !examples.isEmpty else { throw StudentError("no train row has a valid teacher answer to learn from") }
        let (adapters, report) = try LoRATrainer.train(
            decoder: base, examples: examples, soft: soft.contains { $0 != nil } ? soft : nil, softWeight: softWeight,
            config: config, progress: progress)
        let meanTarget = Double(examples.reduce(0) { $0 + $1.target.count }) / Double(examples.count)
        return try SlmStudent(
            schema: schema, adapters: adapters, precision: .fp32, modelFile: modelFile, training: report,
            meanTargetTokens: meanTarget, base: base, tokenizer: tokenizer
        ).quantized(to: precision)
    }

    init(
        schema: StructuredSchema, adapters: LoRAAdapters, precision: Precision, modelFile: URL,
        training: LoRATrainingReport?, meanTargetTokens: Double, base: LlamaDecoder, tokenizer: BPETokenizer
    ) throws {
        self.schema = schema
        self.adapters = adapters
        self.precision = precision
        self.modelFile = modelFile
        self.training = training
        self.meanTargetTokens = meanTargetTokens
        self.base = base
        self.tokenizer = tokenizer
        baseBytes = (try? FileManager.default.attributesOfItem(atPath: modelFile.path)[.size] as? Int) ?? 0
        merged = try adapters.merged(into: base)
        decoding = try SchemaDecoder(schema: schema, tokenizer: tokenizer)
    }

    /// Answers `texts` (batched constrained decoding), each with its probability under the decoder.
    public func predict(_ texts: [String]) throws -> [(answer: StructuredAnswer, confidence: Double)] {
        let prompts = texts.map { SlmFormat.promptTokens($0, tokenizer: tokenizer) }
        let outputs =
            prompts.count == 1
            ? [try decoding.decode(merged, prompt: prompts[0])]
            : try decoding.decode(merged, prompts: prompts, batchSize: Self.batchSize)
        return outputs.map { ($0.answer, $0.confidence) }
    }

    /// The student with its adapters stored at `precision` (fp32 or fp16; int8 is not offered for adapters) and
    /// merged again from the stored values, so what is measured is what is exported.
    public func quantized(to precision: Precision) throws -> SlmStudent {
        guard precision != self.precision else { return self }
        guard precision == .fp32 || precision == .fp16 else {
            throw StudentError("slm adapters are stored at fp32 or fp16, not \(precision.rawValue)")
        }
        let stored = try LoRAAdapters(
            safetensors: try adapters.safetensors(precision: precision), decoder: base.config, file: "<adapters>")
        return try SlmStudent(
            schema: schema, adapters: stored, precision: precision, modelFile: modelFile, training: training,
            meanTargetTokens: meanTargetTokens, base: base, tokenizer: tokenizer)
    }

    /// Numbers stored: the base model's parameters and the adapters'.
    public var params: Int { base.parameterCount + adapters.parameterCount }

    /// Bytes shipped: the base model's GGUF file and the adapters at their precision.
    public var sizeBytes: Int {
        baseBytes + adapters.parameterCount * (precision == .fp16 ? 2 : 4)
    }

    /// Analytic FLOPs of one answer: the prompt of each sample input and the training answers' mean length.
    public func flopsPerExample(sample texts: [String]) -> Int {
        guard !texts.isEmpty else { return 0 }
        let prompt = texts.reduce(0) { $0 + SlmFormat.promptTokens($1, tokenizer: tokenizer).count } / texts.count
        return merged.flops(promptTokens: prompt, generatedTokens: Int(meanTargetTokens.rounded()))
    }

    /// `model.json` of an `slm` student.
    struct Manifest: Codable {
        var format = SlmStudent.bundleFormat
        var family = "slm"
        var version = SlmStudent.bundleVersion
        var candidate: String?
        var precision: Precision
        var lora: LoRAConfig
        var schema: SchemaDocument
        var base: String
        var meanTargetTokens: Double

        enum CodingKeys: String, CodingKey {
            case format, family, version, candidate, precision, lora, schema, base
            case meanTargetTokens = "mean_target_tokens"
        }
    }

    /// Writes the folder `retort predict` runs from: `model.json`, `adapters.safetensors` and the base model as
    /// `model.gguf` (a hard link to the fetched file when the file system allows, else a copy).
    public func write(to folder: URL, candidate: String?) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let gguf = folder.appendingPathComponent("model.gguf")
        if FileManager.default.fileExists(atPath: gguf.path) { try FileManager.default.removeItem(at: gguf) }
        do { try FileManager.default.linkItem(at: modelFile, to: gguf) } catch {
            try FileManager.default.copyItem(at: modelFile, to: gguf)
        }
        try adapters.safetensors(precision: precision).write(
            to: folder.appendingPathComponent("adapters.safetensors"), options: .atomic)
        let manifest = Manifest(
            candidate: candidate, precision: precision, lora: config, schema: SchemaDocument(schema),
            base: "model.gguf",
            meanTargetTokens: meanTargetTokens)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(manifest).write(to: folder.appendingPathComponent("model.json"), options: .atomic)
    }

    /// Loads a folder written by ``write(to:candidate:)``.
    ///
    /// - Throws: ``StudentError`` naming the file: no or bad `model.json`, another format or version, a schema that
    ///   does not parse, a missing or bad GGUF or adapter file, adapters that do not fit the model.
    public static func load(from folder: URL) throws -> SlmStudent {
        let manifestURL = folder.appendingPathComponent("model.json")
        let manifestPath = manifestURL.relativePath
        func fail(_ message: String) -> StudentError { StudentError(message, file: manifestPath) }
        guard let data = FileManager.default.contents(atPath: manifestURL.path) else {
            throw fail("no model.json; pass the folder an slm student was written to")
        }
        let raw: Any
        do { raw = try JSONSerialization.jsonObject(with: data) } catch {
            throw StudentError(
                "not valid JSON (\(DecodingProblem.syntax(error))); restore the file or export the student again",
                file: manifestPath, line: DecodingProblem.line(of: error, in: data))
        }
        guard let top = raw as? [String: Any], top["format"] as? String == bundleFormat,
            top["family"] as? String == "slm"
        else { throw fail("not an slm student: \"format\" must be \"\(bundleFormat)\" and \"family\" \"slm\"") }
        guard top["version"] as? Int == bundleVersion else {
            throw fail(
                "unknown version \(top["version"].map { "\($0)" } ?? "(missing)"); this retort reads version "
                    + "\(bundleVersion): export the student again with this retort")
        }
        let manifest: Manifest
        do { manifest = try JSONDecoder().decode(Manifest.self, from: data) } catch {
            throw fail(DecodingProblem.describe(any: error))
        }
        let schema: StructuredSchema
        do { schema = try StructuredSchema.parse(top["schema"] ?? NSNull(), file: manifestPath) } catch {
            throw fail(error.message)
        }
        guard !manifest.base.contains("/"), !manifest.base.isEmpty else {
            throw fail("\"base\" must name a file in the model folder, such as \"model.gguf\"")
        }
        let modelFile = folder.appendingPathComponent(manifest.base)
        let gguf = try GGUFFile(url: modelFile)
        let base = try LlamaDecoder(gguf: gguf)
        let adaptersURL = folder.appendingPathComponent("adapters.safetensors")
        guard let adapterData = FileManager.default.contents(atPath: adaptersURL.path) else {
            throw StudentError(
                "no adapters.safetensors beside model.json; export the student again", file: adaptersURL.relativePath)
        }
        let adapters = try LoRAAdapters(
            safetensors: adapterData, decoder: base.config, file: adaptersURL.relativePath)
        var student = try SlmStudent(
            schema: schema, adapters: adapters, precision: manifest.precision, modelFile: modelFile, training: nil,
            meanTargetTokens: manifest.meanTargetTokens, base: base, tokenizer: try BPETokenizer(gguf: gguf))
        student.candidate = manifest.candidate
        return student
    }
}

import Foundation
import RetortNumerics

/// What a LoRA training run did.
public struct LoRATrainingReport: Sendable {
    /// Mean cross-entropy per target token (weighted by the example weights) in each epoch, measured during the epoch
    /// (so on adapters still changing).
    public var epochLosses: [Double]
    /// Wall-clock seconds of each epoch.
    public var epochSeconds: [Double]
    /// Examples trained on (after ``LoRAConfig/maxTrainRows``).
    public var examples: Int
    /// Positions run forward and backward through the adapted blocks, over all epochs.
    public var tokens: Int
    /// Target tokens the loss was taken over, over all epochs.
    public var targetTokens: Int
    /// Target positions with a soft (token-level distillation) target, per epoch.
    public var softPositions = 0
    /// Seconds to run every example once through the frozen lower blocks (the cache).
    public var cacheSeconds: Double
    /// Seconds of the epochs (caching excluded).
    public var seconds: Double

    /// ``tokens`` per second of ``seconds``.
    public var tokensPerSecond: Double { seconds > 0 ? Double(tokens) / seconds : 0 }
}

/// Sequence-level distillation of a ``LlamaDecoder`` with LoRA adapters on its top blocks.
///
/// The frozen lower `layers − depth` blocks run once per example over `prompt + target.dropLast()` and their output is
/// cached; each epoch then runs forward and backward through the adapted blocks, the final RMSNorm and the LM head
/// (logits only at the last prompt position and the target positions but the last, which predict the target tokens).
/// The loss is the mean cross-entropy over target tokens; Adam (`β₁ = 0.9`, `β₂ = 0.999`) steps once per mini-batch.
public enum LoRATrainer {
    /// Trains adapters for `decoder` on `examples` (token ids of the prompt and of the target, for instance from
    /// ``SlmFormat``).
    /// - Parameters:
    ///   - weights: optional per-example loss weights (non-negative, not all zero).
    ///   - soft: optional token-level distillation targets per example and target position (``SlmDistillation``;
    ///     an empty list keeps a position's hard target), mixed in at `softWeight`.
    ///   - progress: called with a line after the cache and after each epoch.
    /// - Throws: ``StudentError`` naming the example (0-based) for an empty prompt or target, a token id outside the
    ///   vocabulary or a sequence longer than the context; or for a bad configuration.
    public static func train(
        decoder: LlamaDecoder, examples: [(prompt: [Int32], target: [Int32])], weights: [Double]? = nil,
        soft: [[SlmDistillation.Soft]?]? = nil, softWeight: Double = 0.5, config: LoRAConfig,
        progress: (@Sendable (String) -> Void)? = nil
    ) throws(StudentError) -> (LoRAAdapters, LoRATrainingReport) {
        try check(examples, weights: weights, decoder: decoder.config)
        if let soft {
            guard soft.count == examples.count, softWeight >= 0, softWeight <= 1 else {
                throw StudentError(
                    "soft targets: \(soft.count) lists for \(examples.count) examples at weight \(softWeight); give one "
                        + "(or nil) per example and a weight in [0, 1]")
            }
            for (index, lists) in soft.enumerated() {
                guard let lists else { continue }
                guard lists.count == examples[index].target.count,
                    lists.allSatisfy({
                        $0.allSatisfy { $0.token >= 0 && Int($0.token) < decoder.config.vocabularySize }
                    })
                else {
                    throw StudentError(
                        "soft targets of example \(index): one list per target token, token ids inside the vocabulary")
                }
            }
        }
        var adapters = try LoRAAdapters(config: config, decoder: decoder.config)
        var generator = SeededGenerator(seed: config.seed)
        var chosen = Array(examples.indices)
        if let limit = config.maxTrainRows, limit < chosen.count {
            chosen.shuffle(using: &generator)
            chosen = Array(chosen.prefix(limit)).sorted()
        }
        let clock = ContinuousClock()
        do {
            let cacheStart = clock.now
            let cached = try chosen.map { (i) throws -> Matrix in
                try decoder.residual(
                    examples[i].prompt + examples[i].target.dropLast(), lowerBlocks: adapters.firstLayer)
            }
            let cacheSeconds = (clock.now - cacheStart).inSeconds
            progress?(
                "LoRA: cached \(chosen.count) examples through \(adapters.firstLayer) frozen blocks in "
                    + String(format: "%.1f s", cacheSeconds))
            var report = LoRATrainingReport(
                epochLosses: [], epochSeconds: [], examples: chosen.count, tokens: 0, targetTokens: 0,
                cacheSeconds: cacheSeconds, seconds: 0)
            report.softPositions = chosen.reduce(0) { $0 + (soft?[$1]?.filter { !$0.isEmpty }.count ?? 0) }
            var optimizer = FlatAdam(adapters: adapters, learningRate: Float(config.learningRate))
            var gradients = LoRAGradients(zeroFor: adapters)
            for epoch in 0..<config.epochs {
                let epochStart = clock.now
                let order = Array(chosen.indices).shuffled(using: &generator)
                var (lossTotal, weightTotal) = (0.0, 0.0)
                for batchStart in stride(from: 0, to: order.count, by: config.batchSize) {
                    let batch = order[batchStart..<min(order.count, batchStart + config.batchSize)]
                    let batchWeight = batch.reduce(0.0) {
                        $0 + (weights?[chosen[$1]] ?? 1) * Double(examples[chosen[$1]].target.count)
                    }
                    guard batchWeight > 0 else { continue }
                    gradients.zero()
                    for slot in batch {
                        let example = examples[chosen[slot]]
                        let weight = weights?[chosen[slot]] ?? 1
                        let loss = try decoder.adaptedLoss(
                            cached: cached[slot], targets: example.target, soft: soft?[chosen[slot]],
                            softWeight: Float(softWeight), adapters: adapters,
                            gradientScale: Float(weight / batchWeight), gradients: &gradients)
                        lossTotal += weight * loss
                        weightTotal += weight * Double(example.target.count)
                        report.tokens += cached[slot].rows
                        report.targetTokens += example.target.count
                    }
                    optimizer.step(&adapters, gradients: gradients)
                }
                let elapsed = (clock.now - epochStart).inSeconds
                report.epochLosses.append(weightTotal > 0 ? lossTotal / weightTotal : 0)
                report.epochSeconds.append(elapsed)
                report.seconds += elapsed
                progress?(
                    "LoRA epoch \(epoch + 1)/\(config.epochs): loss "
                        + String(format: "%.4f, %.1f s", report.epochLosses[epoch], elapsed))
            }
            return (adapters, report)
        } catch let error as StudentError {
            throw error
        } catch {
            throw StudentError("LoRA training failed: \(error)")
        }
    }

    /// Every example usable, weights matching; the first problem as an error naming the example.
    static func check(
        _ examples: [(prompt: [Int32], target: [Int32])], weights: [Double]?, decoder: LlamaConfig
    ) throws(StudentError) {
        guard !examples.isEmpty else { throw StudentError("no training examples; LoRA needs at least one") }
        if let weights {
            guard weights.count == examples.count else {
                throw StudentError("\(weights.count) weights for \(examples.count) examples; give one per example")
            }
            if let bad = weights.firstIndex(where: { !($0.isFinite && $0 >= 0) }) {
                throw StudentError("example \(bad): weight \(weights[bad]) must be a finite number ≥ 0")
            }
            guard weights.contains(where: { $0 > 0 }) else {
                throw StudentError("every example weight is 0; give at least one a positive weight")
            }
        }
        for (i, example) in examples.enumerated() {
            guard !example.prompt.isEmpty, !example.target.isEmpty else {
                throw StudentError(
                    "example \(i): the \(example.prompt.isEmpty ? "prompt" : "target") has no tokens; drop the row")
            }
            if let bad = (example.prompt + example.target).first(where: { $0 < 0 || Int($0) >= decoder.vocabularySize })
            {
                throw StudentError(
                    "example \(i): token id \(bad) is outside the vocabulary of \(decoder.vocabularySize); tokenize "
                        + "with the model's own tokenizer")
            }
            let length = example.prompt.count + example.target.count - 1
            guard length <= decoder.contextLength else {
                throw StudentError(
                    "example \(i): \(length) positions exceed the context length \(decoder.contextLength); shorten it")
            }
        }
    }
}

/// Adam over the adapters' `A` and `B` storage (bias-corrected, no weight decay).
struct FlatAdam {
    var first: [[Float]]
    var second: [[Float]]
    var steps = 0
    let learningRate: Float
    let beta1: Float = 0.9
    let beta2: Float = 0.999
    let epsilon: Float = 1e-8

    init(adapters: LoRAAdapters, learningRate: Float) {
        let sizes = adapters.pairs.flatMap { [$0.a.storage.count, $0.b.storage.count] }
        first = sizes.map { [Float](repeating: 0, count: $0) }
        second = first
        self.learningRate = learningRate
    }

    mutating func step(_ adapters: inout LoRAAdapters, gradients: LoRAGradients) {
        steps += 1
        let t = Float(steps)
        let stepSize = learningRate * (1 - Foundation.pow(beta2, t)).squareRoot() / (1 - Foundation.pow(beta1, t))
        for p in adapters.pairs.indices {
            update(&adapters.pairs[p].a.storage, gradient: gradients.a[p].storage, slot: 2 * p, stepSize: stepSize)
            update(&adapters.pairs[p].b.storage, gradient: gradients.b[p].storage, slot: 2 * p + 1, stepSize: stepSize)
        }
    }

    private mutating func update(_ weights: inout [Float], gradient: [Float], slot: Int, stepSize: Float) {
        let (b1, b2, eps) = (beta1, beta2, epsilon)
        weights.withUnsafeMutableBufferPointer { w in
            first[slot].withUnsafeMutableBufferPointer { m in
                second[slot].withUnsafeMutableBufferPointer { v in
                    gradient.withUnsafeBufferPointer { g in
                        guard let wp = w.baseAddress, let mp = m.baseAddress, let vp = v.baseAddress,
                            let gp = g.baseAddress
                        else { return }
                        Kernels.adamStep(
                            weights: wp, firstMoments: mp, secondMoments: vp, gradient: gp, count: w.count,
                            beta1: b1, beta2: b2, epsilon: eps, stepSize: stepSize)
                    }
                }
            }
        }
    }
}

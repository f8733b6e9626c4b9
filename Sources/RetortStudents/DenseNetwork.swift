import RetortNumerics

/// A dense student: `linear` (one affine layer, softmax regression) or `mlp` (ReLU hidden layers).
///
/// Forward pass, shapes for a batch of `n`: `H₀ = X (n × d)`, `Hₗ = relu(Hₗ₋₁·Wₗ + bₗ)` for hidden layers,
/// logits `Z = H_{L−1}·W_L + b_L (n × K)`, probabilities `softmax(Z)`.
public struct DenseNetwork: Sendable, Equatable {
    /// The shape.
    public let architecture: Architecture
    /// Layers, input side first.
    public var layers: [DenseLayer]
    /// The stored precision.
    public private(set) var precision: Precision

    /// A network with initial weights: He-normal for dense hidden layers (std `√(2/fan_in)`); `√(1/out)` for a
    /// sparse first layer (its L2-normalised input has unit norm, so this keeps pre-activations small enough for
    /// Adam to shape the embedding, as fastText's small uniform init does); zero output layer for `linear`,
    /// `√(1/fan_in)` otherwise.
    public init(architecture: Architecture, generator: inout SeededGenerator) {
        self.architecture = architecture
        self.precision = .fp32
        let widths = architecture.widths
        var layers: [DenseLayer] = []
        for (index, (input, output)) in zip(widths, widths.dropFirst()).enumerated() {
            let isOutput = index == widths.count - 2
            let std: Float
            if isOutput {
                std = architecture.hidden.isEmpty ? 0 : Float((1 / Double(input)).squareRoot())
            } else if index == 0 && architecture.sparseInput {
                std = Float((1 / Double(output)).squareRoot())
            } else {
                std = Float((2 / Double(input)).squareRoot())
            }
            var weights = Matrix(rows: input, columns: output)
            if std > 0 {
                for i in weights.storage.indices { weights.storage[i] = generator.nextGaussian() * std }
            }
            layers.append(DenseLayer(weights: weights, bias: [Float](repeating: 0, count: output)))
        }
        self.layers = layers
    }

    /// fastText's initial weights for SGD training: the first layer uniform in `[−1/out, 1/out)` (`out` = the
    /// embedding dimension for an embedding bag), every later layer and every bias zero.
    public init(uniformFirstLayer architecture: Architecture, generator: inout SeededGenerator) {
        self.architecture = architecture
        self.precision = .fp32
        let widths = architecture.widths
        var layers: [DenseLayer] = []
        for (index, (input, output)) in zip(widths, widths.dropFirst()).enumerated() {
            let bound = 1 / Float(output)
            let weights =
                index == 0
                ? Matrix(rows: input, columns: output, uniformFrom: -bound, to: bound, generator: &generator)
                : Matrix(rows: input, columns: output)
            layers.append(DenseLayer(weights: weights, bias: [Float](repeating: 0, count: output)))
        }
        self.layers = layers
    }

    /// A network from existing layers (loading an export).
    public init(architecture: Architecture, layers: [DenseLayer], precision: Precision) {
        self.architecture = architecture
        self.layers = layers
        self.precision = precision
    }

    /// Logits `n × K` for `features`.
    public func logits(_ features: FeatureMatrix) throws(NumericsError) -> Matrix {
        guard let logits = try forwardPass(features).last else {
            throw NumericsError(.shapeMismatch, "a network needs at least one layer")
        }
        return logits
    }

    /// Class probabilities `n × K` (softmax of the logits).
    public func probabilities(_ features: FeatureMatrix) throws(NumericsError) -> Matrix {
        var output = try logits(features)
        Kernels.softmaxRows(&output)
        return output
    }

    /// Every layer's output (post-ReLU for hidden layers), logits last.
    func forwardPass(_ features: FeatureMatrix) throws(NumericsError) -> [Matrix] {
        var outputs: [Matrix] = []
        outputs.reserveCapacity(layers.count)
        let hiddenReLU = architecture.family != .embeddingBag
        for (index, layer) in layers.enumerated() {
            let relu = hiddenReLU && index < layers.count - 1
            if index > 0 {
                outputs.append(try layer.forward(outputs[index - 1], relu: relu))
                continue
            }
            switch features {
            case .dense(let input): outputs.append(try layer.forward(input, relu: relu))
            case .sparse(let input): outputs.append(try layer.forward(input, relu: relu))
            }
        }
        return outputs
    }

    /// The network with weights converted to `precision` (fp32 returns itself): int8 per output channel, or fp16
    /// rounded to nearest. Predictions then use exactly the converted values.
    public func quantized(to target: Precision) -> DenseNetwork {
        guard target != precision, target != .fp32 else { return self }
        let converted = layers.map { target == .int8 ? $0.quantizedToInt8() : $0.roundedToFloat16() }
        return DenseNetwork(architecture: architecture, layers: converted, precision: target)
    }
}

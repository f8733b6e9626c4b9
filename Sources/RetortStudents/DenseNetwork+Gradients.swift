import RetortNumerics

/// The gradient of one layer: dense, or only the touched rows for a sparse-input layer.
public struct LayerGradient: Sendable {
    /// `∂L/∂W`: all rows, or the listed rows only.
    public enum Weights: Sendable {
        /// Every row of `∂L/∂W`.
        case dense(Matrix)
        /// `∂L/∂W` rows for the listed (ascending) input indices; other rows are zero.
        case rows([Int32], Matrix)
    }

    /// `∂L/∂W`.
    public var weights: Weights
    /// `∂L/∂b`.
    public var bias: [Float]

    /// A gradient from its parts.
    public init(weights: Weights, bias: [Float]) {
        self.weights = weights
        self.bias = bias
    }
}

extension DenseNetwork {
    /// The batch loss and every layer's gradient, by backpropagation:
    /// `∂L/∂Wₗ = Hₗ₋₁ᵀ·Gₗ` (sgemm, or the CSR kernel for sparse input), `∂L/∂bₗ = 1ᵀ·Gₗ` (sgemv),
    /// `Gₗ₋₁ = (Gₗ·Wₗᵀ) ⊙ 1[Hₗ₋₁ > 0]`.
    public func lossAndGradients(
        _ features: FeatureMatrix, temperedTargets: Matrix, hardLabels: [Int], loss: DistillationLoss
    ) throws(NumericsError) -> (loss: Float, gradients: [LayerGradient]) {
        let outputs = try forwardPass(features)
        let value = loss.loss(
            logits: outputs[outputs.count - 1], temperedTargets: temperedTargets, hardLabels: hardLabels)
        return (
            value,
            try gradients(
                features, outputs: outputs, temperedTargets: temperedTargets, hardLabels: hardLabels, loss: loss)
        )
    }

    /// Every layer's gradient without the loss value (the training step).
    public func gradients(
        _ features: FeatureMatrix, temperedTargets: Matrix, hardLabels: [Int], loss: DistillationLoss
    ) throws(NumericsError) -> [LayerGradient] {
        try gradients(
            features, outputs: try forwardPass(features), temperedTargets: temperedTargets, hardLabels: hardLabels,
            loss: loss)
    }

    func gradients(
        _ features: FeatureMatrix, outputs: [Matrix], temperedTargets: Matrix, hardLabels: [Int],
        loss: DistillationLoss
    ) throws(NumericsError) -> [LayerGradient] {
        var upstream = loss.gradient(
            logits: outputs[outputs.count - 1], temperedTargets: temperedTargets, hardLabels: hardLabels)
        var gradients: [LayerGradient] = []
        gradients.reserveCapacity(layers.count)
        for index in stride(from: layers.count - 1, through: 0, by: -1) {
            let weightGradient: LayerGradient.Weights
            if index == 0 {
                switch features {
                case .dense(let input):
                    weightGradient = .dense(try Matrix.product(input, upstream, transposeA: .transposed))
                case .sparse(let input):
                    let (rows, values) = try input.transposeMultipliedTouched(by: upstream)
                    weightGradient = .rows(rows, values)
                }
            } else {
                weightGradient = .dense(try Matrix.product(outputs[index - 1], upstream, transposeA: .transposed))
            }
            let biasGradient = try Kernels.columnSums(upstream)
            gradients.append(LayerGradient(weights: weightGradient, bias: biasGradient))
            if index > 0 {
                var next = try Matrix.product(upstream, layers[index].weights, transposeB: .transposed)
                if architecture.family != .embeddingBag { Kernels.reluBackward(&next, activation: outputs[index - 1]) }
                upstream = next
            }
        }
        return gradients.reversed()
    }
}

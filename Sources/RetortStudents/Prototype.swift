import Foundation
import RetortNumerics

/// Nearest-class-centroid students in closed form, as a one-layer ``DenseNetwork``.
///
/// Centroids are teacher-weighted means `μ_k = Σ_i p_ik x_i / Σ_i p_ik` (one sgemm `Pᵀ·X`, or the CSR kernel for
/// sparse input). Text (L2-normalised rows) scores by cosine: `z_k = s · x·μ̂_k`. Numeric scores by squared
/// Euclidean distance: `z_k = −s·‖x − μ_k‖²/2 = s·(x·μ_k − ‖μ_k‖²/2) + c(x)`, so `W = s·μ`, `b_k = −s·‖μ_k‖²/2`.
/// The scale `s` (a softmax temperature for the probabilities; it does not change the arg-max) is the value of
/// {1, 2, 5, 10, 20, 50, 100} with the lowest train cross-entropy against the teacher.
public enum Prototype {
    /// The fitted network for `architecture` (family `prototype`) on `train`.
    public static func fit(architecture: Architecture, train: TrainingSplit) throws(NumericsError) -> DenseNetwork {
        let (d, k) = (architecture.inputDimension, architecture.outputDimension)
        var centroids = Matrix(rows: d, columns: k)
        switch train.features {
        case .dense(let x):
            let sums = try Matrix.product(train.teacherProbabilities, x, transposeA: .transposed)
            for c in 0..<k { for j in 0..<d { centroids[j, c] = sums[c, j] } }
        case .sparse(let x):
            let (columns, rows) = try x.transposeMultipliedTouched(by: train.teacherProbabilities)
            for (position, column) in columns.enumerated() {
                for c in 0..<k { centroids[Int(column), c] = rows[position, c] }
            }
        }
        let mass = try Kernels.columnSums(train.teacherProbabilities)
        var bias = [Float](repeating: 0, count: k)
        for c in 0..<k {
            var norm: Float = 0
            for j in 0..<d {
                centroids[j, c] /= max(mass[c], 1e-12)
                norm += centroids[j, c] * centroids[j, c]
            }
            if architecture.sparseInput {
                let inverse = norm > 0 ? 1 / norm.squareRoot() : 0
                for j in 0..<d { centroids[j, c] *= inverse }
            } else {
                bias[c] = -norm / 2
            }
        }
        let base = DenseNetwork(
            architecture: architecture, layers: [DenseLayer(weights: centroids, bias: bias)], precision: .fp32)
        var best = base
        var bestLoss = Float.infinity
        for scale: Float in [1, 2, 5, 10, 20, 50, 100] {
            var scaled = base
            try scaled.layers[0].weights.scale(by: scale)
            scaled.layers[0].bias = bias.map { $0 * scale }
            let loss = try TrainingSession.crossEntropy(scaled, on: train)
            if loss < bestLoss {
                bestLoss = loss
                best = scaled
            }
        }
        return best
    }
}

import Foundation
import RetortNumerics

/// The distillation objective (Hinton, Vinyals & Dean 2015):
/// `L = α·T²·KL(p_T ‖ softmax(z/T)) + (1−α)·CE(y, softmax(z))`, with `p_T ∝ p^(1/T)`, averaged over the batch.
///
/// Its gradient with respect to the logits is `∂L/∂z = [α·T·(q_T − p_T) + (1−α)·(q − y)] / n`.
public struct DistillationLoss: Sendable, Equatable, Codable {
    /// Temperature `T` (> 0).
    public var temperature: Float
    /// Weight `α` of the soft (teacher distribution) term, in `[0, 1]`.
    public var alpha: Float

    /// A loss with temperature `T` and weight `α`.
    public init(temperature: Float = 2, alpha: Float = 0.8) {
        self.temperature = temperature
        self.alpha = alpha
    }

    /// `p_T ∝ p^(1/T)` per row.
    public func temperedTargets(_ probabilities: Matrix) -> Matrix {
        guard temperature != 1 else { return probabilities }
        var result = probabilities
        let exponent = 1 / temperature
        for i in 0..<result.rows {
            var total: Float = 0
            for j in 0..<result.columns {
                let value = powf(max(result[i, j], 0), exponent)
                result[i, j] = value
                total += value
            }
            if total > 0 { for j in 0..<result.columns { result[i, j] /= total } }
        }
        return result
    }

    /// The mean loss and `∂L/∂z` for logits `z` (`n × K`), tempered teacher targets `p_T` and hard labels `y`.
    public func lossAndGradient(logits: Matrix, temperedTargets: Matrix, hardLabels: [Int]) -> (
        loss: Float, gradient: Matrix
    ) {
        let (n, k) = (logits.rows, logits.columns)
        var soft = logits
        Kernels.softmaxRows(&soft, temperature: temperature)
        var hard = logits
        Kernels.softmaxRows(&hard)
        var gradient = Matrix(rows: n, columns: k)
        var loss: Double = 0
        let scale = 1 / Float(max(n, 1))
        let t = temperature
        for i in 0..<n {
            for j in 0..<k {
                let p = temperedTargets[i, j]
                let q = soft[i, j]
                if p > 0 { loss += Double(alpha * t * t * p * (logf(p) - logf(max(q, 1e-30)))) }
                let y: Float = j == hardLabels[i] ? 1 : 0
                gradient[i, j] = (alpha * t * (q - p) + (1 - alpha) * (hard[i, j] - y)) * scale
            }
            loss -= Double((1 - alpha) * logf(max(hard[i, hardLabels[i]], 1e-30)))
        }
        return (Float(loss) * scale, gradient)
    }
}

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
        (
            loss(logits: logits, temperedTargets: temperedTargets, hardLabels: hardLabels),
            gradient(logits: logits, temperedTargets: temperedTargets, hardLabels: hardLabels)
        )
    }

    /// The mean loss `L` alone (validation; training needs only the gradient).
    public func loss(logits: Matrix, temperedTargets: Matrix, hardLabels: [Int]) -> Float {
        let (n, k) = (logits.rows, logits.columns)
        var soft = logits
        Kernels.softmaxRows(&soft, temperature: temperature)
        var hard = logits
        Kernels.softmaxRows(&hard)
        var loss: Double = 0
        let t = temperature
        for i in 0..<n {
            for j in 0..<k {
                let p = temperedTargets[i, j]
                if p > 0 { loss += Double(alpha * t * t * p * (logf(p) - logf(max(soft[i, j], 1e-30)))) }
            }
            loss -= Double((1 - alpha) * logf(max(hard[i, hardLabels[i]], 1e-30)))
        }
        return Float(loss / Double(max(n, 1)))
    }

    /// `∂L/∂z = [α·T·(q_T − p_T) + (1−α)·(q − y)] / n`: two vectorized softmaxes (one when `T = 1`), one fused
    /// elementwise pass, then `−(1−α)/n` at each row's label.
    public func gradient(logits: Matrix, temperedTargets: Matrix, hardLabels: [Int]) -> Matrix {
        var gradient = logits
        var scratch = Matrix(rows: 0, columns: 0)
        self.gradient(replacing: &gradient, scratch: &scratch, temperedTargets: temperedTargets, hardLabels: hardLabels)
        return gradient
    }

    /// ``gradient(logits:temperedTargets:hardLabels:)`` in place: `logits` becomes `∂L/∂z`. `scratch` holds the
    /// untempered softmax when `T ≠ 1`; a caller that keeps it between calls of one shape allocates nothing.
    public func gradient(
        replacing gradient: inout Matrix, scratch: inout Matrix, temperedTargets: Matrix, hardLabels: [Int]
    ) {
        precondition(temperedTargets.rows == gradient.rows && temperedTargets.columns == gradient.columns)
        precondition(hardLabels.count == gradient.rows, "one hard label per row")
        let n = gradient.rows
        let untempered = temperature == 1 || temperature == 2 ? nil : gradient
        Kernels.softmaxRows(&gradient, temperature: temperature)
        let scale = 1 / Float(max(n, 1))
        let (softWeight, hardWeight) = (alpha * temperature * scale, (1 - alpha) * scale)
        if temperature == 1 {
            // q_T = q: ∂L/∂z = (α·(q − p) + (1−α)·q − (1−α)·y) / n = (q − α·p − (1−α)·y) / n.
            gradient.storage.withUnsafeMutableBufferPointer { g in
                temperedTargets.storage.withUnsafeBufferPointer { p in
                    for i in g.indices { g[i] = (g[i] - alpha * p[i]) * scale }
                }
            }
        } else {
            if scratch.rows != gradient.rows || scratch.columns != gradient.columns {
                scratch = Matrix(rows: gradient.rows, columns: gradient.columns)
            }
            if temperature == 2 {
                // exp(z − max z) = exp(z/2 − max z/2)²: q = q_T² renormalised, without a second exponential pass.
                gradient.storage.withUnsafeBufferPointer { source in
                    scratch.storage.withUnsafeMutableBufferPointer { _ = $0.update(fromContentsOf: source) }
                }
                Kernels.squareAndNormalizeRows(&scratch)
            } else if let untempered {
                untempered.storage.withUnsafeBufferPointer { source in
                    scratch.storage.withUnsafeMutableBufferPointer { _ = $0.update(fromContentsOf: source) }
                }
                Kernels.softmaxRows(&scratch)
            }
            gradient.storage.withUnsafeMutableBufferPointer { g in
                temperedTargets.storage.withUnsafeBufferPointer { p in
                    scratch.storage.withUnsafeBufferPointer { q in
                        for i in g.indices { g[i] = softWeight * (g[i] - p[i]) + hardWeight * q[i] }
                    }
                }
            }
        }
        for (i, label) in hardLabels.enumerated() { gradient[i, label] -= hardWeight }
    }
}

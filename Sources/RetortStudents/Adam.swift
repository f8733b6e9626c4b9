import Foundation
import RetortNumerics

/// Adam (Kingma & Ba 2015) over a network's layers; sparse-input layers are updated lazily, only on the rows a
/// batch touched (as LazyAdam and fastText's sparse updates do).
///
/// `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`, `w ← w − η·m̂ / (√v̂ + ε)` with bias-corrected `m̂`, `v̂`.
public struct Adam: Sendable {
    /// Learning rate `η`.
    public var learningRate: Float
    /// First-moment decay `β₁`.
    public var beta1: Float = 0.9
    /// Second-moment decay `β₂`.
    public var beta2: Float = 0.999
    /// `ε`.
    public var epsilon: Float = 1e-8
    /// Steps taken.
    public internal(set) var step = 0
    var firstMoments: [[Float]]
    var secondMoments: [[Float]]
    var biasFirst: [[Float]]
    var biasSecond: [[Float]]

    /// Zero state for `network`.
    public init(for network: DenseNetwork, learningRate: Float) {
        self.learningRate = learningRate
        firstMoments = network.layers.map { [Float](repeating: 0, count: $0.weights.storage.count) }
        secondMoments = firstMoments
        biasFirst = network.layers.map { [Float](repeating: 0, count: $0.bias.count) }
        biasSecond = biasFirst
    }

    /// No moments at all: the learning-rate holder of an SGD session (``update(_:with:)`` must not be called).
    public init(learningRate: Float) {
        self.learningRate = learningRate
        (firstMoments, secondMoments, biasFirst, biasSecond) = ([], [], [], [])
    }

    /// Whether the moments exist (false for an SGD session's rate holder).
    var hasState: Bool { !firstMoments.isEmpty }

    /// Applies one update with `gradients` to `network`.
    public mutating func update(_ network: inout DenseNetwork, with gradients: [LayerGradient]) {
        step += 1
        let correction1 = 1 - powf(beta1, Float(step))
        let correction2 = 1 - powf(beta2, Float(step))
        let stepSize = learningRate * correction2.squareRoot() / correction1
        let (b1, b2, eps) = (beta1, beta2, epsilon)
        /// Updates `count` parameters from `offset` in `w`, `m`, `v` with gradients from `gradientOffset` in `g`.
        func apply(
            _ w: UnsafeMutableBufferPointer<Float>, _ m: UnsafeMutableBufferPointer<Float>,
            _ v: UnsafeMutableBufferPointer<Float>, offset: Int, _ g: UnsafeBufferPointer<Float>, gradientOffset: Int,
            count: Int
        ) {
            precondition(offset + count <= w.count && gradientOffset + count <= g.count, "Adam update out of range")
            guard count > 0, let wp = w.baseAddress, let mp = m.baseAddress, let vp = v.baseAddress,
                let gp = g.baseAddress
            else { return }
            Kernels.adamStep(
                weights: wp + offset, firstMoments: mp + offset, secondMoments: vp + offset,
                gradient: gp + gradientOffset, count: count, beta1: b1, beta2: b2, epsilon: eps, stepSize: stepSize)
        }
        for (index, gradient) in gradients.enumerated() {
            let columns = network.layers[index].weights.columns
            network.layers[index].weights.storage.withUnsafeMutableBufferPointer { w in
                firstMoments[index].withUnsafeMutableBufferPointer { m in
                    secondMoments[index].withUnsafeMutableBufferPointer { v in
                        switch gradient.weights {
                        case .dense(let g):
                            g.storage.withUnsafeBufferPointer { gp in
                                apply(w, m, v, offset: 0, gp, gradientOffset: 0, count: gp.count)
                            }
                        case .rows(let rows, let g):
                            g.storage.withUnsafeBufferPointer { gp in
                                for (position, row) in rows.enumerated() {
                                    apply(
                                        w, m, v, offset: Int(row) * columns, gp, gradientOffset: position * columns,
                                        count: columns)
                                }
                            }
                        }
                    }
                }
            }
            network.layers[index].bias.withUnsafeMutableBufferPointer { w in
                biasFirst[index].withUnsafeMutableBufferPointer { m in
                    biasSecond[index].withUnsafeMutableBufferPointer { v in
                        gradient.bias.withUnsafeBufferPointer { g in
                            apply(w, m, v, offset: 0, g, gradientOffset: 0, count: g.count)
                        }
                    }
                }
            }
        }
    }
}

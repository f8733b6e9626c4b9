import Foundation
import RetortNumerics

/// Trains a ``TreeEnsemble`` on the teacher's distribution by second-order boosting of the softmax cross-entropy
/// (Friedman 2001; the histogram split finding of LightGBM, Ke et al. 2017): each round fits one tree per class to
/// the gradients `g = q − p` and hessians `h = q(1 − q)`, splits on quantile bins by the gain
/// `G_L²/(H_L+λ) + G_R²/(H_R+λ) − G²/(H+λ)`, and sets leaves to `−η·G/(H+λ)`.
public struct GradientBoosting: Sendable {
    /// Shrinkage `η`.
    public let learningRate: Float
    /// L2 regularisation `λ` of the leaf values.
    public let lambda: Float = 1
    /// Fewest training rows a split may leave on a side.
    public let minimumRows: Int = 10
    /// Bin upper edges per feature (at most 63 quantile cuts).
    let cuts: [[Float]]
    /// Train rows binned, row-major `n × d`.
    let bins: [UInt8]
    let rows: Int
    /// The ensemble so far.
    public private(set) var ensemble: TreeEnsemble
    /// Current train logits, `n × K`.
    var trainScores: Matrix

    /// A booster for dense train features `x` with teacher distributions `p`.
    public init(x: Matrix, teacher p: Matrix, depth: Int, learningRate: Float) {
        self.learningRate = learningRate
        let (n, d, k) = (x.rows, x.columns, p.columns)
        var cuts: [[Float]] = []
        var bins = [UInt8](repeating: 0, count: n * d)
        for j in 0..<d {
            let sorted = (0..<n).map { x[$0, j] }.sorted()
            var edges: [Float] = []
            for q in 1..<64 {
                let value = sorted[min(n - 1, q * n / 64)]
                if edges.last.map({ value > $0 }) ?? true { edges.append(value) }
            }
            cuts.append(edges)
            for i in 0..<n {
                let value = x[i, j]
                var lo = 0
                var hi = edges.count
                while lo < hi {
                    let mid = (lo + hi) / 2
                    if value <= edges[mid] { hi = mid } else { lo = mid + 1 }
                }
                bins[i * d + j] = UInt8(lo)
            }
        }
        self.cuts = cuts
        self.bins = bins
        self.rows = n
        let prior = (0..<k).map { c in (0..<n).reduce(Float(0)) { $0 + p[$1, c] } / Float(max(n, 1)) }
        let base = prior.map { logf(max($0, 1e-6)) }
        ensemble = TreeEnsemble(classes: k, inputDimension: d, depth: depth, baseScores: base)
        trainScores = Matrix(rows: n, columns: k)
        for i in 0..<n { for c in 0..<k { trainScores[i, c] = base[c] } }
    }

    /// Adds one round: `K` trees fitted to the current gradients.
    public mutating func addRound(teacher p: Matrix) {
        let (n, d, k) = (rows, ensemble.inputDimension, ensemble.classes)
        var q = trainScores
        Kernels.softmaxRows(&q)
        let depth = ensemble.depth
        let internalCount = ensemble.internalNodes
        var roundUpdates: [(Int, [Int], [Float])] = []
        for c in 0..<k {
            let g = (0..<n).map { q[$0, c] - p[$0, c] }
            let h = (0..<n).map { max(q[$0, c] * (1 - q[$0, c]), 1e-6) }
            var node = [Int](repeating: 0, count: n)
            var features = [Int32](repeating: -1, count: internalCount)
            var thresholds = [Float](repeating: .infinity, count: internalCount)
            var splitBins = [Int](repeating: Int.max, count: internalCount)
            for level in 0..<depth {
                let first = (1 << level) - 1
                let width = 1 << level
                // Histograms: [node in level][feature][bin] of (G, H, count).
                var gradient = [Float](repeating: 0, count: width * d * 64)
                var hessian = [Float](repeating: 0, count: width * d * 64)
                var count = [Int32](repeating: 0, count: width * d * 64)
                bins.withUnsafeBufferPointer { b in
                    for i in 0..<n {
                        let slot = (node[i] - first) * d * 64
                        for j in 0..<d {
                            let index = slot + j * 64 + Int(b[i * d + j])
                            gradient[index] += g[i]
                            hessian[index] += h[i]
                            count[index] += 1
                        }
                    }
                }
                for position in 0..<width {
                    var best: (gain: Float, feature: Int, bin: Int) = (0, -1, 0)
                    for j in 0..<d {
                        let base = (position * d + j) * 64
                        var totalG: Float = 0
                        var totalH: Float = 0
                        var totalN: Int32 = 0
                        for b in 0..<64 {
                            totalG += gradient[base + b]
                            totalH += hessian[base + b]
                            totalN += count[base + b]
                        }
                        let parent = totalG * totalG / (totalH + lambda)
                        var leftG: Float = 0
                        var leftH: Float = 0
                        var leftN: Int32 = 0
                        for b in 0..<max(0, cuts[j].count - 1) {
                            leftG += gradient[base + b]
                            leftH += hessian[base + b]
                            leftN += count[base + b]
                            let rightN = totalN - leftN
                            guard leftN >= minimumRows, rightN >= minimumRows else { continue }
                            let rightG = totalG - leftG
                            let rightH = totalH - leftH
                            let gain = leftG * leftG / (leftH + lambda) + rightG * rightG / (rightH + lambda) - parent
                            if gain > best.gain { best = (gain, j, b) }
                        }
                    }
                    if best.feature >= 0 {
                        features[first + position] = Int32(best.feature)
                        thresholds[first + position] = cuts[best.feature][best.bin]
                        splitBins[first + position] = best.bin
                    }
                }
                for i in 0..<n {
                    let feature = Int(features[node[i]])
                    let goLeft = feature < 0 || Int(bins[i * d + feature]) <= splitBins[node[i]]
                    node[i] = 2 * node[i] + (goLeft ? 1 : 2)
                }
            }
            var leafG = [Float](repeating: 0, count: 1 << depth)
            var leafH = [Float](repeating: 0, count: 1 << depth)
            for i in 0..<n {
                leafG[node[i] - internalCount] += g[i]
                leafH[node[i] - internalCount] += h[i]
            }
            let leaves = (0..<(1 << depth)).map { -learningRate * leafG[$0] / (leafH[$0] + lambda) }
            ensemble.features += features
            ensemble.thresholds += thresholds
            ensemble.leaves += leaves
            roundUpdates.append((c, node.map { $0 - internalCount }, leaves))
        }
        for (c, leafOfRow, leaves) in roundUpdates {
            for i in 0..<n { trainScores[i, c] += leaves[leafOfRow[i]] }
        }
    }

    /// Continues from `ensemble` (a checkpoint): its train logits are recomputed in the order training summed them.
    public mutating func restore(_ ensemble: TreeEnsemble, x: Matrix) {
        self.ensemble = ensemble
        trainScores = ensemble.logits(x)
    }

    /// Keeps the first `rounds` rounds (the best ones under early stopping).
    public func truncated(toRounds rounds: Int) -> TreeEnsemble { ensemble.truncated(toRounds: rounds) }
}

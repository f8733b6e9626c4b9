import Foundation
import RetortNumerics

/// Gradient-boosted regression trees on the teacher's distribution: `K` trees per round (one per class), complete
/// binary trees of a fixed depth, scores summed into logits and turned into probabilities by a softmax.
///
/// Tree `t` scores class `t mod K`. A tree of depth `D` stores `2^D − 1` internal nodes (feature, threshold; node `i`
/// has children `2i+1` and `2i+2`, `x ≤ threshold` goes left) and `2^D` leaf values (already scaled by the
/// shrinkage). A node that found no useful split has feature −1 and sends everything left.
public struct TreeEnsemble: Sendable, Equatable {
    /// Number of classes.
    public let classes: Int
    /// Input dimension.
    public let inputDimension: Int
    /// Depth of every tree.
    public let depth: Int
    /// Initial logits (log of the teacher's class prior).
    public var baseScores: [Float]
    /// Split features, `trees × (2^D − 1)`.
    public var features: [Int32]
    /// Split thresholds, `trees × (2^D − 1)`.
    public var thresholds: [Float]
    /// Leaf values, `trees × 2^D`.
    public var leaves: [Float]
    /// Stored precision (fp32, or fp16 leaves: thresholds stay fp32, since rounding them moves splits across data
    /// values; measured on letter, fp16 thresholds cost 17 points of accuracy).
    public var precision: Precision

    /// An ensemble with no trees.
    public init(classes: Int, inputDimension: Int, depth: Int, baseScores: [Float]) {
        self.classes = classes
        self.inputDimension = inputDimension
        self.depth = depth
        self.baseScores = baseScores
        self.features = []
        self.thresholds = []
        self.leaves = []
        self.precision = .fp32
    }

    /// Internal nodes per tree.
    public var internalNodes: Int { (1 << depth) - 1 }
    /// Leaves per tree.
    public var leafCount: Int { 1 << depth }
    /// Trees in the ensemble.
    public var treeCount: Int { internalNodes == 0 ? 0 : features.count / internalNodes }
    /// Boosting rounds (trees / classes).
    public var rounds: Int { treeCount / max(classes, 1) }

    /// Bytes of the exported model at `precision` for `rounds` rounds: per internal node a 2-byte feature index and a
    /// 4-byte threshold, per leaf a value (4 bytes, or 2 at fp16), plus fp32 base scores.
    public static func bytes(rounds: Int, classes: Int, depth: Int, precision: Precision) -> Int {
        let width = precision == .fp16 ? 2 : 4
        let trees = rounds * classes
        return trees * (((1 << depth) - 1) * 6 + (1 << depth) * width) + classes * 4
    }

    /// Comparisons per example: `depth` per tree.
    public var comparisonsPerExample: Int { treeCount * depth }

    /// The leaf index tree `t` sends row `row` of `x` to.
    @inline(__always)
    func leaf(tree t: Int, _ x: UnsafeBufferPointer<Float>, row: Int) -> Int {
        var node = 0
        let base = t * internalNodes
        for _ in 0..<depth {
            let feature = Int(features[base + node])
            let goLeft = feature < 0 || x[row * inputDimension + feature] <= thresholds[base + node]
            node = 2 * node + (goLeft ? 1 : 2)
        }
        return node - internalNodes
    }

    /// Logits `n × K` for dense inputs.
    public func logits(_ x: Matrix) -> Matrix {
        var scores = Matrix(rows: x.rows, columns: classes)
        for i in 0..<x.rows { for k in 0..<classes { scores[i, k] = baseScores[k] } }
        addScores(ofTrees: 0..<treeCount, for: x, to: &scores)
        return scores
    }

    /// Adds the leaf values of `trees` to `scores` (`n × K`): how boosting keeps validation logits up to date
    /// round by round, summing in the same order as ``logits(_:)``.
    public func addScores(ofTrees trees: Range<Int>, for x: Matrix, to scores: inout Matrix) {
        x.storage.withUnsafeBufferPointer { input in
            for t in trees {
                let k = t % classes
                for i in 0..<x.rows { scores[i, k] += leaves[t * leafCount + leaf(tree: t, input, row: i)] }
            }
        }
    }

    /// Class probabilities (softmax of the logits).
    public func probabilities(_ x: Matrix) -> Matrix {
        var scores = logits(x)
        Kernels.softmaxRows(&scores)
        return scores
    }

    /// The ensemble with leaves rounded to fp16, or itself (fp32).
    public func quantized(to target: Precision) -> TreeEnsemble {
        guard target == .fp16, precision != .fp16 else { return self }
        var copy = self
        copy.leaves = leaves.map { Float(Float16($0)) }
        copy.precision = .fp16
        return copy
    }

    /// The first `rounds` rounds.
    public func truncated(toRounds rounds: Int) -> TreeEnsemble {
        var copy = self
        let trees = min(rounds * classes, treeCount)
        copy.features = Array(features.prefix(trees * internalNodes))
        copy.thresholds = Array(thresholds.prefix(trees * internalNodes))
        copy.leaves = Array(leaves.prefix(trees * leafCount))
        return copy
    }
}

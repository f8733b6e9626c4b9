import RetortData

/// The shape of a dense student: the family, hidden widths, and the input and output dimensions.
public struct Architecture: Sendable, Codable, Equatable, Hashable {
    /// The family (`linear` has no hidden layers).
    public var family: Family
    /// Hidden layer widths, input side first (empty for `linear`).
    public var hidden: [Int]
    /// Input feature dimension (buckets for text).
    public var inputDimension: Int
    /// Number of classes.
    public var outputDimension: Int
    /// Whether the input is sparse (hashed text), which changes the FLOP count of the first layer.
    public var sparseInput: Bool

    /// An architecture.
    public init(family: Family, hidden: [Int], inputDimension: Int, outputDimension: Int, sparseInput: Bool) {
        self.family = family
        self.hidden =
            family.isSingleLayer
            ? [] : family == .embeddingBag ? Array(hidden.prefix(1)) : family.isTrees ? Array(hidden.prefix(2)) : hidden
        self.inputDimension = inputDimension
        self.outputDimension = outputDimension
        self.sparseInput = sparseInput
    }

    /// Layer widths from input to output.
    public var widths: [Int] { [inputDimension] + hidden + [outputDimension] }

    /// gbdt: tree depth and the most boosting rounds.
    public var treeShape: (depth: Int, rounds: Int) { (hidden.first ?? 3, hidden.count > 1 ? hidden[1] : 100) }

    /// Parameter count: `Σ (in·out + out)` over layers; for gbdt, thresholds and leaves of every tree at the most
    /// rounds, plus the base scores.
    public var parameterCount: Int {
        if family.isTrees {
            let (depth, rounds) = treeShape
            return rounds * outputDimension * ((1 << depth) - 1 + (1 << depth)) + outputDimension
        }
        return zip(widths, widths.dropFirst()).reduce(0) { $0 + $1.0 * $1.1 + $1.1 }
    }

    /// Serialized weight bytes at `precision`: weights at the precision's width (4, 2 or 1 bytes), plus fp32 biases,
    /// plus (int8) one fp32 scale per output channel of every layer. Exactly the bytes of the exported tensors.
    public func weightBytes(at precision: Precision) -> Int {
        if family.isTrees {
            let (depth, rounds) = treeShape
            return TreeEnsemble.bytes(rounds: rounds, classes: outputDimension, depth: depth, precision: precision)
        }
        return zip(widths, widths.dropFirst()).reduce(0) { total, layer in
            let (input, output) = layer
            let scales = precision == .int8 ? output * 4 : 0
            return total + input * output * precision.bytesPerWeight + output * 4 + scales
        }
    }

    /// Multiply-add FLOPs for one example: `2·in·out` per dense layer; `2·nnz·out` for a sparse first layer.
    public func flopsPerExample(meanNonzeros: Double) -> Int {
        if family.isTrees {
            let (depth, rounds) = treeShape
            return rounds * outputDimension * depth
        }
        var total = 0.0
        for (index, (input, output)) in zip(widths, widths.dropFirst()).enumerated() {
            let effectiveInput = index == 0 && sparseInput ? meanNonzeros : Double(input)
            total += 2 * effectiveInput * Double(output)
        }
        return Int(total.rounded())
    }
}

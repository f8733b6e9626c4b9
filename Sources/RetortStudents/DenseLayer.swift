import RetortNumerics

/// An affine layer `y = x·W + b`, `W` of shape `in × out` (row-major), `b` of length `out`.
///
/// A quantized layer keeps its int8 codes and per-output scales for export; `weights` then holds the dequantized
/// values `q_io · s_o`, which is exactly what the quantized model computes.
public struct DenseLayer: Sendable, Equatable {
    /// `in × out` weights.
    public var weights: Matrix
    /// `out` biases.
    public var bias: [Float]
    /// Int8 codes (row-major `in × out`) and per-output scales, when quantized.
    public var int8: Int8Weights?

    /// Int8 codes and their per-output-channel scales.
    public struct Int8Weights: Sendable, Equatable {
        /// Codes in `[-127, 127]`, row-major `in × out`.
        public var codes: [Int8]
        /// One scale per output channel.
        public var scales: [Float]
    }

    /// A layer with the given weights and biases.
    public init(weights: Matrix, bias: [Float], int8: Int8Weights? = nil) {
        precondition(bias.count == weights.columns, "one bias per output")
        self.weights = weights
        self.bias = bias
        self.int8 = int8
    }

    /// Input width.
    public var inputDimension: Int { weights.rows }
    /// Output width.
    public var outputDimension: Int { weights.columns }

    /// `x·W + b` for dense `x` (`batch × in`), then `max(0, ·)` when `relu`: sgemm, then one fused bias pass.
    public func forward(_ input: Matrix, relu: Bool = false) throws(NumericsError) -> Matrix {
        var output = try Matrix.product(input, weights)
        Kernels.addBias(bias, to: &output, relu: relu)
        return output
    }

    /// `x·W + b` for sparse `x`, then `max(0, ·)` when `relu`: the CSR kernel, then the bias pass.
    public func forward(_ input: SparseMatrix, relu: Bool = false) throws(NumericsError) -> Matrix {
        var output = try input.multiplied(by: weights)
        Kernels.addBias(bias, to: &output, relu: relu)
        return output
    }

    /// The layer with every weight rounded to the nearest IEEE half (`Float16`) and back; biases stay fp32.
    public func roundedToFloat16() -> DenseLayer {
        DenseLayer(
            weights: Matrix(
                rows: weights.rows, columns: weights.columns, storage: weights.storage.map { Float(Float16($0)) }),
            bias: bias)
    }

    /// The layer with symmetric per-output-channel int8 weights: `s_o = max_i |W_io| / 127`,
    /// `q_io = round(W_io / s_o)`, and `weights` replaced by `q_io · s_o`.
    public func quantizedToInt8() -> DenseLayer {
        let (rows, columns) = (weights.rows, weights.columns)
        var scales = [Float](repeating: 0, count: columns)
        for i in 0..<rows {
            for o in 0..<columns { scales[o] = max(scales[o], abs(weights[i, o])) }
        }
        scales = scales.map { $0 > 0 ? $0 / 127 : 1 }
        var codes = [Int8](repeating: 0, count: rows * columns)
        var dequantized = Matrix(rows: rows, columns: columns)
        for i in 0..<rows {
            for o in 0..<columns {
                let code = Int8(max(-127, min(127, (weights[i, o] / scales[o]).rounded())))
                codes[i * columns + o] = code
                dequantized[i, o] = Float(code) * scales[o]
            }
        }
        return DenseLayer(weights: dequantized, bias: bias, int8: Int8Weights(codes: codes, scales: scales))
    }
}

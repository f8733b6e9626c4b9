import RetortNumerics

/// A trained student of any family: a dense network or a tree ensemble.
public enum StudentModel: Sendable, Equatable {
    /// linear, mlp, embedding-bag, prototype.
    case dense(DenseNetwork)
    /// gbdt.
    case trees(TreeEnsemble)

    /// Class probabilities `n × K` (trees read dense features only).
    public func probabilities(_ features: FeatureMatrix) throws(NumericsError) -> Matrix {
        switch self {
        case .dense(let network): return try network.probabilities(features)
        case .trees(let ensemble):
            guard case .dense(let x) = features else {
                throw NumericsError(.shapeMismatch, "tree students read dense (numeric) features")
            }
            return ensemble.probabilities(x)
        }
    }

    /// The model converted to `precision`.
    public func quantized(to precision: Precision) -> StudentModel {
        switch self {
        case .dense(let network): .dense(network.quantized(to: precision))
        case .trees(let ensemble): .trees(ensemble.quantized(to: precision))
        }
    }

    /// The stored precision.
    public var precision: Precision {
        switch self {
        case .dense(let network): network.precision
        case .trees(let ensemble): ensemble.precision
        }
    }
}

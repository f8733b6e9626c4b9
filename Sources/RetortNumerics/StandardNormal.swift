import Foundation

/// The standard normal distribution, for the normal approximations Retort's decisions make (the chance a candidate
/// clears a bar, the confidence a bootstrap interval gives).
public enum StandardNormal {
    /// Φ(x), the probability that a standard normal variable is at most `x`.
    public static func cdf(_ x: Double) -> Double { 0.5 * erfc(-x / 2.0.squareRoot()) }
}

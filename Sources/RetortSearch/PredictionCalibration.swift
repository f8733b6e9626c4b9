import Foundation

/// How well history's predictions matched what training measured, over one search (report.json
/// `search.calibration`, an addition to FORMATS.md §4): of the candidates trained to completion at full fidelity that
/// had a prediction from history (invented sizes, whose prediction is interpolated from this search's own
/// measurements, are left out), how many measured validation gaps (student − teacher on the primary metric) fell
/// inside the predicted gap ± z sd, and the mean absolute error of the predicted gap.
public struct PredictionCalibration: Sendable, Codable, Equatable {
    /// Trained candidates with a prediction and a measured gap.
    public var predicted: Int
    /// Of those, how many measured gaps fell inside the predicted gap ± z sd.
    public var inside: Int
    /// `inside / predicted`.
    public var coverage: Double
    /// Mean |measured gap − predicted gap|.
    public var mae: Double
    /// The interval's half-width in standard deviations (2).
    public var z: Double

    /// A calibration summary.
    public init(predicted: Int, inside: Int, coverage: Double, mae: Double, z: Double) {
        self.predicted = predicted
        self.inside = inside
        self.coverage = coverage
        self.mae = mae
        self.z = z
    }

    /// The calibration of `trials`' predictions at ± `z` sd, or nil when no trained trial had one.
    public init?(trials: [TrialResult], z: Double = 2) {
        var errors: [Double] = []
        var inside = 0
        for trial in trials where trial.status == .complete && trial.fidelity >= 1 && trial.invented != true {
            guard let prediction = trial.predicted, let measured = trial.differenceToTeacher?.value else { continue }
            let error = abs(measured - prediction.gap)
            errors.append(error)
            if error <= z * prediction.gapSD { inside += 1 }
        }
        guard !errors.isEmpty else { return nil }
        self.init(
            predicted: errors.count, inside: inside, coverage: Double(inside) / Double(errors.count),
            mae: errors.reduce(0, +) / Double(errors.count), z: z)
    }

    /// One line for frontier.md and report.html: "7 of 8 measured gaps inside the predicted ± 2 sd (88%), mean
    /// absolute error 0.0123".
    public var summaryLine: String {
        String(
            format: "%d of %d measured gaps inside the predicted ± %g sd (%.0f%%), mean absolute error %.4f", inside,
            predicted, z, coverage * 100, mae)
    }
}

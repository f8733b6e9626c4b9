import Foundation
import RetortData

/// Hard constraints and the quality bar of a recommendation.
public struct Constraints: Sendable, Equatable, Codable {
    /// Largest serialized size, bytes.
    public var maxModelBytes: Int?
    /// Largest p50 latency, ms.
    public var maxLatencyMs: Double?
    /// Largest FLOPs per example (known before training, like size).
    public var maxFlops: Int?
    /// The deployment device the latency limit is meant for, if any.
    public var device: String?
    /// Device latency = measured p50 × this (this machine's sgemm FLOP/s / the device's); 1 without a device.
    public var latencyScale: Double?
    /// Allowed drop against the teacher on the primary metric.
    public var maxDrop: Double
    /// The probability (adjusted for picking among many, ``SelectionAdjustment``) that a recommended student's true
    /// drop is within `maxDrop`; nil in reports made before it existed (read as 0.9).
    public var confidence: Double?

    /// The confidence level the recommendation needs.
    public var confidenceLevel: Double { confidence ?? 0.9 }

    /// Constraints with the given limits.
    public init(maxModelBytes: Int? = nil, maxLatencyMs: Double? = nil, maxDrop: Double = 0.01, maxFlops: Int? = nil) {
        self.maxModelBytes = maxModelBytes
        self.maxFlops = maxFlops
        self.maxLatencyMs = maxLatencyMs
        self.maxDrop = maxDrop
    }

    enum CodingKeys: String, CodingKey {
        case maxModelBytes = "max_model_bytes"
        case maxLatencyMs = "max_latency_ms"
        case maxFlops = "max_flops"
        case device
        case latencyScale = "latency_scale"
        case maxDrop = "max_drop"
        case confidence
    }
}

/// Decides between the students and the teacher (DESIGN.md, "Recommendation").
///
/// Among complete full-fidelity students that meet the hard constraints (size, p50 latency) and the quality bar
/// (validation primary metric ≥ teacher − `max_drop`, and, with a ``SelectionAdjustment``, a probability of at least
/// the confidence level that the true drop is within `max_drop`, adjusted for picking among many), recommend the
/// cheapest to run. With a ``SpeedComparison`` that is the fastest as measured: the qualifying students whose p50 is
/// within the run's tolerance of the fastest one count as equally fast, and among them the smallest wins, then the
/// fewest FLOPs, then the best. Without one (reports from before it, decisions during a search) it is the fewest FLOPs
/// per example, then the smallest, then the best. If none qualifies, recommend keeping the teacher and name the
/// closest candidate.
public enum Recommender {
    /// The recommendation for `trials` given the teacher's validation value of `metric`.
    public static func recommend(
        trials: [TrialResult], metric: String, teacherValue: Double, constraints: Constraints,
        selection: SelectionAdjustment? = nil, speed: SpeedComparison? = nil
    ) -> Recommendation {
        let complete = trials.filter { $0.status == .complete && $0.fidelity >= 1 }
        guard !complete.isEmpty else {
            if let maxBytes = constraints.maxModelBytes, trials.allSatisfy({ $0.status == .skipped }) {
                return .noDistillation(reason: "no student fits in \(ByteSize.format(maxBytes)); keep the teacher")
            }
            return .noDistillation(reason: "no student finished training at full fidelity; keep the teacher")
        }
        let sizeFits = complete.filter { trial in constraints.maxModelBytes.map { trial.sizeBytes <= $0 } ?? true }
        guard !sizeFits.isEmpty else {
            return .noDistillation(
                reason: "no student fits in \(ByteSize.format(constraints.maxModelBytes ?? 0)); keep the teacher")
        }
        let fits = sizeFits.filter { trial in
            guard let limit = constraints.maxLatencyMs else { return true }
            return (trial.latencyMsP50 ?? .infinity) * (constraints.latencyScale ?? 1) <= limit
        }
        guard !fits.isEmpty else {
            let fastest =
                sizeFits.min { ($0.latencyMsP50 ?? .infinity) < ($1.latencyMsP50 ?? .infinity) } ?? sizeFits[0]
            return .noDistillation(
                reason: String(
                    format: "no student meets %@p50 ≤ %@ ms (fastest: %@ at %.4f ms); keep the teacher",
                    constraints.device.map { "the estimated \($0) " } ?? "", format(constraints.maxLatencyMs ?? 0),
                    fastest.id, (fastest.latencyMsP50 ?? .nan) * (constraints.latencyScale ?? 1)))
        }
        func value(_ trial: TrialResult) -> Double { trial.metrics[metric]?.value ?? -.infinity }
        let bar = teacherValue - constraints.maxDrop
        let level = constraints.confidenceLevel
        // With a selection adjustment (and each candidate's bootstrap spread) a student qualifies by its probability of
        // being within the drop; without one (reports from before it, trials still training), by its point estimate.
        func probability(_ trial: TrialResult) -> Double? {
            guard let selection, let se = trial.differenceSE else { return nil }
            return selection.probabilityWithin(
                difference: value(trial) - teacherValue, se: se, maxDrop: constraints.maxDrop)
        }
        let qualifying = fits.filter { trial in
            guard value(trial) >= bar - 1e-12 else { return false }
            return probability(trial).map { $0 >= level - 1e-12 } ?? true
        }
        let among = selection.map { " (adjusted for choosing among \($0.candidates) candidates)" } ?? ""
        // The cheapest to run of the qualifying students; none qualifies: keep the teacher, naming the closest.
        guard
            let (chosen, bySpeed) = cheapest(
                qualifying, speed: speed, latency: \.latencyMsP50, sizeBytes: \.sizeBytes, flops: \.flopsPerExample,
                value: value, id: \.id)
        else {
            let closest =
                fits.max { value($0) < value($1) || (value($0) == value($1) && $0.sizeBytes > $1.sizeBytes) } ?? fits[0]
            let drop = (teacherValue - value(closest)) * 100
            if value(closest) >= bar - 1e-12, let p = probability(closest) {
                let surest = fits.compactMap { trial in probability(trial).map { (trial, $0) } }.max { $0.1 < $1.1 }
                return .noDistillation(
                    reason: String(
                        format:
                            "best student %@ reaches %@ %.4f vs teacher %.4f (drop %.1f pt ≤ allowed %.1f pt), but "
                            + "with only %.0f%% confidence that its true drop is within %.1f pt (%g%% needed%@; the "
                            + "surest, %@, %.0f%%); keep the teacher",
                        closest.id, metric, value(closest), teacherValue, drop, constraints.maxDrop * 100, p * 100,
                        constraints.maxDrop * 100, level * 100, among, surest?.0.id ?? closest.id,
                        (surest?.1 ?? p) * 100))
            }
            return .noDistillation(
                reason: String(
                    format:
                        "best student %@ reaches %@ %.4f vs teacher %.4f: drop %.1f pt > allowed %.1f pt; keep the teacher",
                    closest.id, metric, value(closest), teacherValue, drop, constraints.maxDrop * 100))
        }
        let delta = (value(chosen) - teacherValue) * 100
        let comparison =
            delta >= 0
            ? String(format: "%.1f pt above the teacher", delta)
            : String(format: "drop %.1f pt ≤ allowed %.1f pt", -delta, constraints.maxDrop * 100)
        let confidence =
            probability(chosen).map {
                String(
                    format: "; within %.1f pt of the teacher with %.0f%% confidence%@", constraints.maxDrop * 100,
                    min($0, 0.99) * 100, among)
            } ?? ""
        let cheapest: String
        if bySpeed {
            // How many are "as fast" moves with the measured latencies: the reason does not say, so that a second run
            // of the same job words its recommendation the same.
            let which =
                qualifying.count == 1
                ? "the only qualifying student"
                : "the smallest of the \(qualifying.count) qualifying students that are as fast as the fastest as "
                    + "measured"
            cheapest = String(
                format: "%@ and %d FLOPs per example; %@", ByteSize.format(chosen.sizeBytes), chosen.flopsPerExample,
                which)
        } else {
            cheapest = String(
                format: "%d FLOPs per example and %@; the cheapest to run of %d qualifying students",
                chosen.flopsPerExample, ByteSize.format(chosen.sizeBytes), qualifying.count)
        }
        let reason = String(
            format: "%@ reaches %@ %.4f vs teacher %.4f (%@%@) with %@", chosen.id, metric, value(chosen), teacherValue,
            comparison, confidence, cheapest)
        return .distill(candidate: chosen.id, reason: reason)
    }

    static func format(_ value: Double) -> String { String(format: "%g", value) }

    /// The `students` as fast as the fastest of them: those whose p50 is not clearly slower, under `speed`, than the
    /// lowest positive p50 (students without a latency are left out); nil when none has a positive latency. The
    /// recommender applies it to the qualifying students, the learned schedule to each tier of predicted runs.
    public static func equallyFast<Student>(
        _ students: [Student], speed: SpeedComparison, latency: (Student) -> Double?
    ) -> [Student]? {
        guard let fastest = students.compactMap(latency).filter({ $0 > 0 }).min() else { return nil }
        return students.filter { student in latency(student).map { !speed.clearlyFaster(fastest, than: $0) } ?? false }
    }

    /// The cheapest to run of the `qualifying` students: the recommender's rule for measured students, and `suggest`'s
    /// for predicted ones. With a `speed` rule and a latency for some of them, the students equally fast as the
    /// fastest (p50 within the rule's tolerance), then the smallest, the fewest FLOPs; without, the fewest FLOPs, then
    /// the smallest; then the higher `value`, the id. `bySpeed` says which of the two rules chose; nil when none
    /// qualifies.
    public static func cheapest<Student>(
        _ qualifying: [Student], speed: SpeedComparison?, latency: (Student) -> Double?, sizeBytes: (Student) -> Int,
        flops: (Student) -> Int, value: (Student) -> Double, id: (Student) -> String
    ) -> (chosen: Student, bySpeed: Bool)? {
        let equallyFast = speed.flatMap { Self.equallyFast(qualifying, speed: $0, latency: latency) }
        let bySpeed = equallyFast != nil
        let chosen = (equallyFast ?? qualifying).min { a, b in
            let (sizeA, sizeB, flopsA, flopsB) = (sizeBytes(a), sizeBytes(b), flops(a), flops(b))
            if bySpeed {
                if sizeA != sizeB { return sizeA < sizeB }
                if flopsA != flopsB { return flopsA < flopsB }
            } else {
                if flopsA != flopsB { return flopsA < flopsB }
                if sizeA != sizeB { return sizeA < sizeB }
            }
            if value(a) != value(b) { return value(a) > value(b) }
            return id(a) < id(b)
        }
        return chosen.map { ($0, bySpeed) }
    }
}

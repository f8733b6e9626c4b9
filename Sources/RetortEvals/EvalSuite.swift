import RetortData

/// An eval suite (`evals/*.yaml`): which metrics to report, the primary metric, and the bootstrap settings.
///
/// ```yaml
/// name: classification
/// metrics: [accuracy, agreement, macro_f1]
/// primary: accuracy          # optional; default accuracy when rows have gold, else agreement
/// bootstrap: {resamples: 1000, confidence: 0.95}
/// ```
public struct EvalSuite: Sendable, Equatable {
    /// Suite name.
    public var name: String
    /// Metrics to report.
    public var metrics: [Metric]
    /// The primary metric, when the suite fixes one.
    public var primary: Metric?
    /// Bootstrap resamples `B`.
    public var resamples: Int
    /// Interval confidence.
    public var confidence: Double

    /// The default suite: every classification metric, B = 1000, 95%.
    public static let standard = EvalSuite(
        name: "classification", metrics: classificationMetrics, primary: nil, resamples: 1000, confidence: 0.95)

    /// Classification's metrics with gold, in report order.
    static let classificationMetrics = Classification(LabelVocabulary([])).metrics(hasGold: true)

    /// A suite with the given fields.
    public init(name: String, metrics: [Metric], primary: Metric?, resamples: Int, confidence: Double) {
        self.name = name
        self.metrics = metrics
        self.primary = primary
        self.resamples = resamples
        self.confidence = confidence
    }

    /// Parses a suite from YAML.
    public init(_ value: YAMLValue) throws(DataError) {
        let fields = try value.mapping(allowed: ["name", "metrics", "primary", "bootstrap"])
        self = .standard
        if let name = fields["name"] { self.name = try name.string() }
        if let metrics = fields["metrics"] {
            var parsed: [Metric] = []
            for item in try metrics.sequence() { parsed.append(try Self.metric(item)) }
            guard !parsed.isEmpty else { throw metrics.error("list at least one metric") }
            self.metrics = parsed
        }
        if let primary = fields["primary"] { self.primary = try Self.metric(primary) }
        if let bootstrap = fields["bootstrap"] {
            let settings = try bootstrap.mapping(allowed: ["resamples", "confidence"])
            self.resamples = try settings["resamples"]?.int(in: 100...100_000) ?? self.resamples
            self.confidence =
                try settings["confidence"]?.double(in: NumberRange(0.5, 1, excludingLower: true, excludingUpper: true))
                ?? self.confidence
        }
    }

    /// Parses a metric name, naming the choices when it is unknown.
    public static func metric(_ value: YAMLValue) throws(DataError) -> Metric {
        let name = try value.string()
        guard let metric = Metric(rawValue: name) else {
            let structured = Structured.metrics(hasGold: true).filter { !classificationMetrics.contains($0) }
            throw value.error(
                "unknown metric \"\(name)\"; choose from \(classificationMetrics.map(\.rawValue).joined(separator: ", "))"
                    + " (structured tasks: \(structured.map(\.rawValue).joined(separator: ", ")))")
        }
        return metric
    }
}

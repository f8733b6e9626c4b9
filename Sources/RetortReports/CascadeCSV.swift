import Foundation
import RetortSearch

/// cascade.csv: every point of every frontier student's cascade curve, validation then test.
public enum CascadeCSV {
    /// The CSV text (header and one row per point).
    public static func render(_ report: RunReport) -> String {
        let metric = report.primaryMetric
        var lines = [
            "candidate,split,threshold,coverage,agreement_covered,agreement_covered_lo,agreement_covered_hi,"
                + "\(metric),\(metric)_lo,\(metric)_hi,blended_cost_per_1m_usd,blended_latency_ms_p50"
        ]
        for curve in report.cascades ?? [] {
            for (split, points) in [("validation", curve.validation), ("test", curve.test)] {
                for point in points {
                    let cells: [String] = [
                        curve.candidate, split, number(point.threshold), number(point.coverage),
                        number(point.agreement?.value), number(point.agreement?.ci95.first),
                        number(point.agreement?.ci95.last), number(point.metrics[metric]?.value),
                        number(point.metrics[metric]?.ci95.first), number(point.metrics[metric]?.ci95.last),
                        number(point.blendedCostPer1MUSD), number(point.blendedLatencyMsP50),
                    ]
                    lines.append(cells.joined(separator: ","))
                }
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func number(_ value: Double?) -> String {
        guard let value, value.isFinite else { return "" }
        return String(format: "%.6g", value)
    }

    /// The frontier.md line: per frontier student, the validation point that hands the most inputs to the student
    /// while the cascade still meets the bar (teacher − max drop on the primary metric); nil when none does.
    public static func summary(_ report: RunReport) -> String? {
        let metric = report.primaryMetric
        guard let teacher = report.teacher.validationMetrics[metric]?.value else { return nil }
        let bar = teacher - report.constraints.maxDrop
        let parts: [String] = (report.cascades ?? []).compactMap { curve in
            guard
                let best = curve.validation.filter({ ($0.metrics[metric]?.value ?? -.infinity) >= bar - 1e-12 })
                    .max(by: {
                        $0.coverage < $1.coverage || ($0.coverage == $1.coverage && $0.threshold > $1.threshold)
                    }),
                best.coverage > 0
            else { return nil }
            let agreement =
                best.agreement.map { String(format: ", agreement with the teacher there %.3f", $0.value) } ?? ""
            return String(
                format: "%@ answers %.0f%% of inputs (%@ ≥ %.3f%@; cascade %@ %.4f)", curve.candidate,
                report.confidenceName,
                best.coverage * 100, best.threshold, agreement, metric, best.metrics[metric]?.value ?? .nan)
        }
        guard !parts.isEmpty else { return nil }
        return
            "Cascades meeting the bar on validation (student first, the teacher on the rest; every point in cascade.csv): "
            + parts.joined(separator: "; ") + "."
    }
}

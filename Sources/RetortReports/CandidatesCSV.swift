import Foundation
import RetortData
import RetortSearch

/// candidates.csv: one row per candidate (RFC 4180 quoting).
public enum CandidatesCSV {
    /// The CSV text for `report`.
    public static func render(_ report: RunReport) -> String {
        let metrics = ["accuracy", "agreement", "macro_f1"]
        var header = [
            "id", "family", "precision", "status", "on_frontier", "recommended", "params", "size_bytes",
            "flops_per_example", "latency_ms_p50", "latency_ms_p95", "throughput_per_s", "cost_per_1m_usd", "fidelity",
            "epochs_run", "best_epoch",
        ]
        for metric in metrics { header += ["val_\(metric)", "val_\(metric)_lo", "val_\(metric)_hi"] }
        header += ["test_\(report.primaryMetric)", "reason"]
        // Learned strategy: history's predictions, in their own columns (never in the measured ones).
        let predicted = report.candidates.contains { $0.predicted != nil }
        if predicted { header += ["predicted_gap", "predicted_gap_sd", "predicted_latency_ms_p50"] }
        var lines = [header.joined(separator: ",")]
        for trial in report.candidates {
            var fields: [String] = [
                trial.id, trial.family.rawValue, trial.precision.rawValue, trial.status.rawValue, "\(trial.onFrontier)",
                "\(trial.id == report.recommendation.candidate)", "\(trial.params)", "\(trial.sizeBytes)",
                "\(trial.flopsPerExample)", optional(trial.latencyMsP50), optional(trial.latencyMsP95),
                optional(trial.throughputPerSecond), optional(trial.costPer1MUSD), "\(trial.fidelity)",
                trial.epochsRun.map(String.init) ?? "", trial.bestEpoch.map(String.init) ?? "",

            ]
            for metric in metrics {
                let estimate = trial.metrics[metric]
                fields += [
                    optional(estimate?.value), optional(estimate?.ci95.first), optional(estimate?.ci95.last),
                ]
            }
            fields.append(optional(trial.testMetrics?[report.primaryMetric]?.value))
            fields.append(trial.reason ?? "")
            if predicted {
                fields += [
                    optional(trial.predicted?.gap), optional(trial.predicted?.gapSD),
                    optional(trial.predicted?.latencyMsP50),
                ]
            }
            lines.append(fields.map(quote).joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func optional(_ value: Double?) -> String { value.map { "\($0)" } ?? "" }

    static func quote(_ field: String) -> String { CSV.field(field) }
}

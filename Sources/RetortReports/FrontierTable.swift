import Foundation
import RetortData
import RetortEvals
import RetortSearch

/// frontier.md and the terminal frontier table: one row per frontier member and the teacher (and, for a structured
/// task, the best candidate of each student class off the frontier, marked dominated).
public enum FrontierTable {
    /// The Markdown document: the table, then the recommendation and its test figures.
    public static func markdown(_ report: RunReport) -> String {
        let metric = report.primaryMetric
        var lines: [String] = []
        lines.append("# Pareto frontier: \(report.job)")
        lines.append("")
        let speed =
            report.speed == nil
            ? "between students: FLOPs per example, a deterministic stand-in for the measured p50 shown"
            : "between students: the measured p50, within the run's tolerance then FLOPs within a family (below)"
        lines.append(
            "Objectives: validation \(metric) ↑, speed ↑ (\(speed); the teacher: its recorded latency), size ↓. CIs are 95% "
                + "bootstrap intervals over the validation rows; test figures are on held-out rows."
        )
        lines.append("")
        lines.append(
            "| candidate | val \(metric) [95% CI] | Δ vs teacher [95% CI] | test \(metric) | p50 ms | p95 ms | size | FLOPs/ex | $ per 1M |"
        )
        lines.append("|---|---|---|---|---|---|---|---|---|")
        let members = report.frontier.compactMap { id in report.candidates.first { $0.id == id } }
        func row(_ trial: TrialResult, mark: String = "") -> (quality: Double, line: String) {
            let value = trial.metrics[metric]
            let recommended = trial.id == report.recommendation.candidate ? " ★" : ""
            return (
                value?.value ?? -.infinity,
                "| \(trial.id)\(recommended)\(mark) | \(estimate(value)) | \(estimate(trial.differenceToTeacher, signed: true)) | "
                    + "\(estimate(trial.testMetrics?[metric])) | \(number(trial.latencyMsP50)) | \(number(trial.latencyMsP95)) | "
                    + "\(ByteSize.format(trial.sizeBytes)) | \(trial.flopsPerExample) | \(money(trial.costPer1MUSD)) |"
            )
        }
        var rows = members.map { row($0) }
        // A structured search compares student classes: the best of each class off the frontier is shown too, marked.
        if report.taskKind == TaskKind.structured.rawValue {
            let onFrontier = Set(members.map(\.family))
            let quality = { (trial: TrialResult) in trial.metrics[metric]?.value ?? -.infinity }
            let best = Dictionary(grouping: report.candidates.filter { $0.status == .complete }, by: \.family)
                .filter { !onFrontier.contains($0.key) }.values
                .compactMap { trials in trials.sorted { (quality($0), $1.id) > (quality($1), $0.id) }.first }
            rows += best.map { row($0, mark: " (dominated; best \($0.family.rawValue))") }
        }
        let teacher = report.teacher
        let teacherMark = teacher.onFrontier ? "" : " (dominated)"
        rows.append(
            (
                teacher.validationMetrics[metric]?.value ?? -.infinity,
                "| teacher: \(shortName(teacher.name))\(teacherMark) | \(estimate(teacher.validationMetrics[metric])) | — | "
                    + "\(estimate(teacher.metrics[metric])) | \(number(teacher.latencyMsP50)) | — | — | — | \(money(teacher.costPer1MUSD)) |"
            ))
        rows.sort { $0.quality > $1.quality }
        lines.append(contentsOf: rows.map(\.line))
        if let models = teacher.models, models.count > 1 {
            lines.append("")
            lines.append(
                "**The teacher rows come from \(models.count) models**: "
                    + models.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.map { "\($0.key) (\($0.value) rows)" }
                    .joined(separator: ", ")
                    + "; the teacher's figures mix them. Label with one model (`retort label` keeps to the route's first "
                    + "model unless told otherwise) to compare against one teacher.")
        }
        if let invalid = teacher.invalidRows {
            let splits = ["train", "validation", "test"].compactMap { split in
                teacher.invalidRowsBySplit?[split].map { "\(split) \($0)" }
            }
            lines.append("")
            lines.append(
                "Teacher answers that are not a valid JSON object: \(invalid)"
                    + (splits.isEmpty ? "" : " (\(splits.joined(separator: ", ")))")
                    + ". They are never trained on; on validation and test they count as the teacher's misses against gold, "
                    + "and they are left out of the `_vs_teacher` figures.")
        }
        if let cascades = CascadeCSV.summary(report) {
            lines.append("")
            lines.append(cascades)
        }
        if let device = report.constraints.device, let scale = report.constraints.latencyScale {
            lines.append("")
            lines.append(
                String(
                    format:
                        "Device %@: estimated p50 = measured p50 × %.2f (this machine's sgemm FLOP/s / the device's): ",
                    device, scale)
                    + members.map { trial in
                        "\(trial.id) \(number(trial.deviceLatencyMsP50)) ms"
                    }.joined(separator: ", ") + ".")
        }
        lines.append("")
        let recommendation = report.recommendation
        if let candidate = recommendation.candidate {
            lines.append(
                recommendation.kind == "cascade"
                    ? String(
                        format:
                            "**Recommendation: cascade: `%@` answers when its %@ is ≥ %.3f, the teacher the rest.** %@.",
                        candidate, report.confidenceName, recommendation.threshold ?? 0, recommendation.reason)
                    : "**Recommendation: distill into `\(candidate)`.** \(recommendation.reason).")
            if let test = recommendation.testMetrics?[metric] {
                var line = "Test \(metric): \(estimate(test)) vs teacher \(estimate(teacher.metrics[metric]))"
                if let difference = recommendation.testDifferenceToTeacher {
                    line += ", difference \(estimate(difference, signed: true))"
                }
                lines.append(line + ".")
            }
        } else {
            lines.append("**Recommendation: no distillation.** \(recommendation.reason).")
        }
        if let money = EconomicsText.line(report.economics) {
            lines.append("")
            lines.append(money)
        }
        if let speed = speedLine(report.speed) {
            lines.append("")
            lines.append(speed)
        }
        lines.append("")
        let counts = Dictionary(grouping: report.candidates, by: \.status).mapValues(\.count)
        let statusText = [TrialStatus.complete, .pruned, .skipped, .failed].compactMap { status in
            counts[status].map { "\($0) \(status.rawValue)" }
        }.joined(separator: ", ")
        lines.append(
            String(
                format: "Search: %@, %d candidates (%@), %.0f candidate-epochs; %@.",
                report.search.strategy, report.candidates.count, statusText,
                report.search.candidateEpochs, report.search.stoppedBecause))
        if let executor = report.search.executor {
            var line =
                executor.kind == "ray"
                ? "Trials trained on the Ray cluster at \(executor.address ?? "?") (\(executor.nodes ?? 0) node(s), "
                    + "\(executor.cpus ?? 0) CPU(s))"
                : "Trials trained as `retort trial run` processes"
            if executor.retried > 0 {
                line += "; \(executor.retried) trial(s) lost with a worker or node and resubmitted"
            }
            lines.append(
                line + "; every latency above was measured on \(executor.latencyHost), the search's driver, after "
                    + "training, so the candidates are timed on one machine.")
        }
        if let mode = report.search.learnedMode {
            lines.append("Learned strategy schedule: \(mode.schedule.rawValue) (\(mode.reason)).")
        }
        if let calibration = report.search.calibration {
            lines.append("Predictions against measurements: \(calibration.summaryLine).")
        }
        if let similar = report.search.similarTasks, !similar.isEmpty {
            lines.append(
                "Evidence from history (the most similar past tasks): "
                    + similar.map { task in
                        "\(task.task): \(task.recommendation)"
                            + (task.bestGap.map { String(format: ", best student %+.1f pt", $0 * 100) } ?? "")
                    }.joined(separator: "; ") + ".")
        }
        if let seconds = report.search.encoderSeconds {
            lines.append(
                String(
                    format:
                        "Encoder vectors (every split, depth and precision of the encoder-head candidates): %.1f s, computed once and shared.",
                    seconds))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func estimate(_ value: MetricEstimate?, signed: Bool = false) -> String {
        guard let value else { return "—" }
        let format = signed ? "%+.4f [%+.4f, %+.4f]" : "%.4f [%.4f, %.4f]"
        return String(format: format, value.value, value.ci95.first ?? .nan, value.ci95.last ?? .nan)
    }

    static func number(_ value: Double?) -> String {
        guard let value else { return "—" }
        return value >= 100
            ? String(format: "%.0f", value) : value >= 1 ? String(format: "%.2f", value) : String(format: "%.4f", value)
    }

    static func money(_ value: Double?) -> String {
        guard let value else { return "—" }
        return value >= 1 ? String(format: "%.2f", value) : String(format: "%.6f", value)
    }

    /// A teacher name short enough for a table cell (its full name is in report.json).
    static func shortName(_ name: String) -> String {
        name.count <= 48 ? name : String(name.prefix(47)) + "…"
    }

    /// How speed was compared, in words: the measured latency's tolerance, where it came from, and FLOPs' role.
    public static func speedLine(_ speed: SpeedComparison?) -> String? {
        guard let speed else { return nil }
        let spread =
            speed.measuredSpread.map {
                String(
                    format: "; %d close calls were measured twice, and differed by %.1f%% at the median",
                    speed.remeasured.count, $0 * 100)
            } ?? ""
        return String(
            format:
                "Speed: students are compared by measured p50; p50s within %.2g× of each other count as equally fast "
                + "(the job's tolerance, or twice the measured spread when wider%@), and only then do FLOPs decide, "
                + "within one family. The recommendation is the smallest qualifying student as fast as the fastest.",
            1 + speed.relativeTolerance, spread)
    }
}

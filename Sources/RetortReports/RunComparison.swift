import Foundation
import RetortData
import RetortEvals
import RetortSearch

/// `retort compare RUN_A RUN_B`: the two frontiers side by side, what joined or left, metric and latency deltas
/// with whether the confidence intervals overlap, and the two recommendations.
public enum RunComparison {
    /// The comparison as Markdown.
    public static func markdown(_ a: RunReport, _ b: RunReport) -> String {
        let metric = a.primaryMetric
        var lines: [String] = []
        lines.append("# Runs compared: A = \(a.job) (\(a.runId)), B = \(b.job) (\(b.runId))")
        lines.append("")
        if a.primaryMetric != b.primaryMetric {
            lines.append(
                "Note: the runs use different primary metrics (A \(a.primaryMetric), B \(b.primaryMetric)); A's is compared."
            )
            lines.append("")
        }
        let ids = a.frontier + b.frontier.filter { !a.frontier.contains($0) }
        lines.append(
            "| candidate | frontier | val \(metric) A [95% CI] | val \(metric) B [95% CI] | Δ B − A | CIs overlap | p50 ms A | p50 ms B | size |"
        )
        lines.append("|---|---|---|---|---|---|---|---|---|")
        for id in ids {
            let trialA = a.candidates.first { $0.id == id }
            let trialB = b.candidates.first { $0.id == id }
            let inA = a.frontier.contains(id)
            let inB = b.frontier.contains(id)
            let membership = inA && inB ? "both" : inA ? "left in B" : "joined in B"
            let valueA = trialA?.metrics[metric]
            let valueB = trialB?.metrics[metric]
            var delta = "—"
            var overlap = "—"
            if let valueA, let valueB {
                delta = String(format: "%+.4f", valueB.value - valueA.value)
                let disjoint =
                    (valueA.ci95.last ?? 0) < (valueB.ci95.first ?? 0)
                    || (valueB.ci95.last ?? 0) < (valueA.ci95.first ?? 0)
                overlap = disjoint ? "no" : "yes"
            }
            let size = (trialB ?? trialA).map { ByteSize.format($0.sizeBytes) } ?? "—"
            lines.append(
                "| \(id) | \(membership) | \(FrontierTable.estimate(valueA))\(status(trialA)) | "
                    + "\(FrontierTable.estimate(valueB))\(status(trialB)) | \(delta) | \(overlap) | "
                    + "\(FrontierTable.number(trialA?.latencyMsP50)) | \(FrontierTable.number(trialB?.latencyMsP50)) | \(size) |"
            )
        }
        lines.append("")
        let joined = b.frontier.filter { !a.frontier.contains($0) }
        let left = a.frontier.filter { !b.frontier.contains($0) }
        lines.append("Joined the frontier in B: \(joined.isEmpty ? "none" : joined.joined(separator: ", ")).")
        lines.append("Left the frontier in B: \(left.isEmpty ? "none" : left.joined(separator: ", ")).")
        lines.append("")
        lines.append("Recommendation A: \(describe(a.recommendation)).")
        lines.append("Recommendation B: \(describe(b.recommendation)).")
        if a.recommendation.candidate == b.recommendation.candidate && a.recommendation.kind == b.recommendation.kind {
            lines.append("The recommendation is the same.")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// " (pruned at fidelity 0.120)" for a candidate that did not complete in that run, else nothing.
    static func status(_ trial: TrialResult?) -> String {
        guard let trial, trial.status != .complete else { return "" }
        return String(format: " (%@ at fidelity %.3f)", trial.status.rawValue, trial.fidelity)
    }

    static func describe(_ recommendation: RunReport.RecommendationRecord) -> String {
        Recommendation.headline(kind: recommendation.kind, candidate: recommendation.candidate) + " — "
            + recommendation.reason
    }
}

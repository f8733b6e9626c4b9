import Foundation
import RetortData
import RetortSearch

/// Re-decides a finished run under new constraints from its stored trial results, without training.
public enum WhatIf {
    /// The outcome of a re-decision.
    public struct Result: Sendable {
        /// The new recommendation.
        public var recommendation: Recommendation
        /// Why it differs from the run's (or that it does not).
        public var change: String
        /// Candidates the new constraints would admit but that were never trained to full fidelity.
        public var untrained: [TrialResult]
        /// The new recommendation's break-even (at `traffic`, or the run's traffic), when the run recorded its costs.
        public var economics: Economics?
    }

    /// The recommendation for `report` under `constraints` and `metric` (nil: the run's primary metric), with the
    /// break-even at `traffic` requests a month (measured at `trafficSource` when it was).
    public static func decide(
        _ report: RunReport, constraints: Constraints, metric: String?, traffic: Double? = nil,
        trafficSource: String? = nil
    ) throws -> Result {
        let metric = metric ?? report.primaryMetric
        guard let teacherValue = report.teacher.validationMetrics[metric]?.value else {
            throw DataError(
                .usage,
                "this run has no validation \(metric) for the teacher; choose from \(report.teacher.validationMetrics.keys.sorted().joined(separator: ", "))"
            )
        }
        var recommendation = Recommender.recommend(
            trials: report.candidates, metric: metric, teacherValue: teacherValue, constraints: constraints,
            selection: metric == report.primaryMetric ? report.selection : nil, speed: report.speed)
        // The break-even of the new answer, from the run's recorded costs: the same one-off cost, this student's
        // serving cost, the traffic asked for (else the run's).
        var economics: Economics?
        if let recorded = report.economics, recorded.teacherCostPerRequestUSD.value > 0,
            recommendation.candidate != nil || report.recommendation.candidate != nil
        {
            let rows = Int((recorded.labelsUSD / recorded.teacherCostPerRequestUSD.value).rounded())
            let current = recommendation.candidate != nil ? recommendation : .distill(candidate: "", reason: "")
            economics =
                recommendation.candidate == report.recommendation.candidate
                ? recorded
                : Economics.of(
                    current, trials: report.candidates, teacherCost: recorded.teacherCostPerRequestUSD, rows: rows,
                    validationRows: report.splits["validation"] ?? 0, traffic: recorded.trafficPerMonth,
                    usdPerVCPUHour: recorded.cpuSeconds > 0 ? recorded.trainingUSD * 3600 / recorded.cpuSeconds : 0,
                    cpuSeconds: recorded.cpuSeconds)
            if let traffic { economics?.setTraffic(traffic, source: trafficSource) }
            if let economics { recommendation = economics.tooLittleTraffic(recommendation) }
        }
        let before = report.recommendation
        let change: String
        let was = Recommendation.headline(kind: before.kind, candidate: before.candidate)
        let now = Recommendation.headline(kind: recommendation.kind, candidate: recommendation.candidate)
        change = was == now ? "unchanged: the run recommended the same (\(was))" : "changed from \(was) to \(now)"
        let untrained = report.candidates.filter { trial in
            guard trial.status != .complete else { return false }
            if let limit = constraints.maxModelBytes, trial.sizeBytes > limit { return false }
            if let limit = constraints.maxFlops, trial.flopsPerExample > limit { return false }
            return true
        }
        return Result(recommendation: recommendation, change: change, untrained: untrained, economics: economics)
    }
}

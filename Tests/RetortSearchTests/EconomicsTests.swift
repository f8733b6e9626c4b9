import Foundation
import RetortData
import RetortEvals
import Testing

@testable import RetortSearch

/// The break-even (issue 24, item 3): one-off cost, saving per request and per month, payback, and "keep the
/// teacher" when the traffic is too small.
@Suite struct EconomicsTests {
    /// A student serving at $0.50 per 1M (p50) and $1 per 1M (p95) against a teacher at $5 per 1k requests.
    static func student() -> TrialResult {
        TrialResult(
            id: "small", family: .linear, config: [:], precision: .int8, params: 10, sizeBytes: 100,
            flopsPerExample: 100, latencyMsP50: 36, latencyMsP95: 72, costPer1MUSD: 0.5, metrics: [:],
            fidelity: 1, status: .complete, onFrontier: true)
    }

    @Test("the arithmetic: labels + CPU once, the saving per request and per month, the payback, by hand")
    func arithmetic() throws {
        let teacher = MetricEstimate(value: 0.005, ci95: 0.004...0.006)
        let economics = try #require(
            Economics.of(
                .distill(candidate: "small", reason: ""), trials: [Self.student()], teacherCost: teacher, rows: 6000,
                validationRows: 1000, traffic: 100_000, usdPerVCPUHour: 0.05, cpuSeconds: 7200))
        // One-off: 6000 rows × $0.005 = $30 of labels, 2 CPU-hours × $0.05 = $0.10 of training.
        #expect(abs(economics.labelsUSD - 30) < 1e-9)
        #expect(abs(economics.trainingUSD - 0.1) < 1e-12)
        #expect(abs(economics.oneOffUSD - 30.1) < 1e-9)
        // Per request: $0.005 − $0.0000005; the interval takes the teacher's interval and the student's p95 cost.
        let saving = economics.savingPerRequestUSD
        #expect(abs(saving.value - (0.005 - 0.5e-6)) < 1e-15)
        #expect(abs(saving.ci95[0] - (0.004 - 1e-6)) < 1e-12 && abs(saving.ci95[1] - (0.006 - 0.5e-6)) < 1e-12)
        #expect(abs((economics.breakEvenRequests ?? 0) - 30.1 / (0.005 - 0.5e-6)) < 1e-6)
        // 100k requests a month: $499.95 a month, paid back in 30.1 / 499.95 months.
        let monthly = try #require(economics.monthlySavingUSD)
        #expect(abs(monthly.value - 499.95) < 1e-9)
        #expect(abs((economics.monthsToPayBack ?? 0) - 30.1 / 499.95) < 1e-12)
        #expect(economics.paysBack == true)
        let range = try #require(economics.monthsToPayBackRange)
        #expect(range.count == 2 && (range[0] ?? 0) < (range[1] ?? 0), "faster with the higher saving")
    }

    @Test("too little traffic to pay back within the horizon: keep the teacher, saying why")
    func tooLittleTraffic() throws {
        let teacher = MetricEstimate(value: 0.005, ci95: 0.005...0.005)
        let student = Recommendation.distill(candidate: "small", reason: "qualifies")
        var economics = try #require(
            Economics.of(
                student, trials: [Self.student()], teacherCost: teacher, rows: 6000, validationRows: 1000,
                traffic: 20, usdPerVCPUHour: 0.05, cpuSeconds: 7200))
        // 20 requests a month save $0.1 a month: $30.10 takes about 301 months.
        let kept = economics.tooLittleTraffic(student)
        #expect(kept.candidate == nil)
        #expect(kept.reason.contains("at 20 requests a month"), "\(kept.reason)")
        #expect(kept.reason.contains("beyond the 24-month horizon; keep the teacher"), "\(kept.reason)")
        economics.setTraffic(2_000_000)
        #expect(economics.tooLittleTraffic(student) == student, "2M a month pays back in hours")
        // Without traffic there is no verdict, only the break-even.
        let plain = try #require(
            Economics.of(
                student, trials: [Self.student()], teacherCost: teacher, rows: 6000, validationRows: 1000,
                traffic: nil, usdPerVCPUHour: 0.05, cpuSeconds: 7200))
        #expect(plain.paysBack == nil && plain.monthlySavingUSD == nil)
        #expect(plain.tooLittleTraffic(student) == student)
    }

    @Test("a cascade saves only on the share it answers, with the coverage's Wilson interval")
    func cascade() throws {
        let point = CascadePoint(
            threshold: 0.9, coverage: 0.8, agreement: nil, metrics: [:], blendedCostPer1MUSD: 1000,
            blendedLatencyMsP50: 0.1)
        let economics = try #require(
            Economics.of(
                .cascade(candidate: "small", point: point, reason: ""), trials: [Self.student()],
                teacherCost: MetricEstimate(value: 0.005, ci95: 0.005...0.005), rows: 6000, validationRows: 400,
                traffic: nil, usdPerVCPUHour: 0.05, cpuSeconds: 0))
        let saving = economics.savingPerRequestUSD
        #expect(abs(saving.value - (0.8 * 0.005 - 0.5e-6)) < 1e-12)
        let wilson = Economics.wilson(0.8, rows: 400)
        #expect(wilson.low < 0.8 && wilson.high > 0.8 && wilson.high - wilson.low < 0.1)
        #expect(abs(saving.ci95[0] - (wilson.low * 0.005 - 1e-6)) < 1e-12)
    }

    @Test("the teacher's cost per request from token usage: the mean and its interval; else the per-request price")
    func teacherCost() throws {
        let usage: [(input: Int, output: Int)?] = [(1000, 100), (2000, 200), nil, (3000, 300)]
        let cost = try #require(
            Economics.teacherCost(usage: usage, inputPerMTok: 3, outputPerMTok: 15, per1kRequests: 99))
        // (3000 + 1500)/1e6, (6000 + 3000)/1e6, (9000 + 4500)/1e6: mean 0.009.
        #expect(abs(cost.value - 0.009) < 1e-12)
        #expect(cost.ci95[0] < 0.009 && cost.ci95[1] > 0.009)
        let flat = try #require(
            Economics.teacherCost(usage: [], inputPerMTok: nil, outputPerMTok: nil, per1kRequests: 2))
        #expect(flat.value == 0.002 && flat.ci95 == [0.002, 0.002])
        #expect(Economics.teacherCost(usage: [], inputPerMTok: nil, outputPerMTok: nil, per1kRequests: nil) == nil)
    }

    @Test("traffic is written as a count per month or per day")
    func parseTraffic() {
        #expect(Job.parseTraffic("2M/month") == 2_000_000)
        #expect(Job.parseTraffic("500k") == 500_000)
        #expect(Job.parseTraffic("2000000") == 2_000_000)
        #expect(abs((Job.parseTraffic("50k/day") ?? 0) - 1_520_000) < 1e-6)
        #expect(Job.parseTraffic("lots") == nil && Job.parseTraffic("-5") == nil && Job.parseTraffic("1e30") == nil)
    }
}

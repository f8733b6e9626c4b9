import Foundation
import RetortEvals

/// The money question (report.json `economics`): distilling costs money once — the teacher's answers on every row
/// (the labelling bill) and the search's CPU time — and saves money on every request the student answers instead of
/// the teacher. Given the expected traffic, when does it pay back?
public struct Economics: Sendable, Codable, Equatable {
    /// Expected requests per month (`--traffic`, `serving.traffic_per_month`, or measured on a gateway route); nil when
    /// not given.
    public var trafficPerMonth: Double?
    /// Where the traffic figure was measured (`--traffic-route`: the route's recent volume in the gateway ledger); nil
    /// when it was given.
    public var trafficSource: String?
    /// The one-off cost, USD: labels + training.
    public var oneOffUSD: Double
    /// The teacher's answers on every row of the task (rows × the teacher's cost per request).
    public var labelsUSD: Double
    /// The search's CPU seconds × the vCPU price.
    public var trainingUSD: Double
    /// The CPU seconds the search used (this process and the trial processes it started).
    public var cpuSeconds: Double
    /// The teacher's cost per request, USD: the mean over the rows' token usage and its 95% interval (exact when the
    /// price is per request).
    public var teacherCostPerRequestUSD: MetricEstimate
    /// Saving per request against the teacher answering it, USD: point and 95% interval (from the spread of the
    /// teacher's per-request cost over the rows' token usage, the student's p50–p95 serving cost, and for a cascade the
    /// Wilson interval of its coverage).
    public var savingPerRequestUSD: MetricEstimate
    /// Requests after which the saving has paid the one-off cost (nil when a request saves nothing).
    public var breakEvenRequests: Double?
    /// With traffic: the monthly saving, point and interval.
    public var monthlySavingUSD: MetricEstimate?
    /// With traffic: months until the saving has paid the one-off cost (nil when it never does).
    public var monthsToPayBack: Double?
    /// With traffic: the fastest and slowest payback the saving's interval gives (nil: never).
    public var monthsToPayBackRange: [Double?]?
    /// The longest payback accepted (a student's useful life); beyond it, keep the teacher.
    public var horizonMonths: Double
    /// With traffic: whether the recommendation pays back within the horizon.
    public var paysBack: Bool?

    /// The default horizon: a distilled model is expected to serve this many months before the task changes.
    public static let defaultHorizonMonths = 24.0

    enum CodingKeys: String, CodingKey {
        case trafficPerMonth = "traffic_per_month"
        case trafficSource = "traffic_source"
        case oneOffUSD = "one_off_usd"
        case labelsUSD = "labels_usd"
        case trainingUSD = "training_usd"
        case cpuSeconds = "cpu_seconds"
        case teacherCostPerRequestUSD = "teacher_cost_per_request_usd"
        case savingPerRequestUSD = "saving_per_request_usd"
        case breakEvenRequests = "break_even_requests"
        case monthlySavingUSD = "monthly_saving_usd"
        case monthsToPayBack = "months_to_pay_back"
        case monthsToPayBackRange = "months_to_pay_back_range"
        case horizonMonths = "horizon_months"
        case paysBack = "pays_back"
    }

    /// What a recommendation saves per request, with its interval.
    public struct PerRequest: Sendable, Equatable {
        /// Saving per request, USD.
        public var value: Double
        /// Its 95% interval.
        public var low: Double
        /// Its 95% interval.
        public var high: Double
    }

    /// The economics of a recommendation: `labelsUSD` and `cpuSeconds` spent, `perRequest` saved, `traffic` requests
    /// a month (when known), at `usdPerVCPUHour`.
    public static func make(
        traffic: Double?, labelsUSD: Double, cpuSeconds: Double, usdPerVCPUHour: Double, perRequest: PerRequest,
        teacherCost: MetricEstimate, horizonMonths: Double = defaultHorizonMonths
    ) -> Economics {
        let training = cpuSeconds / 3600 * usdPerVCPUHour
        let oneOff = labelsUSD + training
        var economics = Economics(
            trafficPerMonth: traffic, oneOffUSD: oneOff, labelsUSD: labelsUSD, trainingUSD: training,
            cpuSeconds: cpuSeconds, teacherCostPerRequestUSD: teacherCost,
            savingPerRequestUSD: MetricEstimate(
                value: perRequest.value,
                ci95: min(perRequest.low, perRequest.value)...max(perRequest.high, perRequest.value)),
            breakEvenRequests: perRequest.value > 0 ? oneOff / perRequest.value : nil, horizonMonths: horizonMonths)
        if let traffic {
            economics.setTraffic(traffic)
        }
        return economics
    }

    /// The same costs and savings at `traffic` requests a month (`retort recommend --traffic`), measured at `source`
    /// when it was (the gateway ledger).
    public mutating func setTraffic(_ traffic: Double, source: String? = nil) {
        trafficPerMonth = traffic
        trafficSource = source
        let perRequest = savingPerRequestUSD
        let saving = MetricEstimate(
            value: perRequest.value * traffic, ci95: (perRequest.ci95[0] * traffic)...(perRequest.ci95[1] * traffic))
        func months(_ monthly: Double) -> Double? { monthly > 0 ? oneOffUSD / monthly : nil }
        monthlySavingUSD = saving
        monthsToPayBack = months(saving.value)
        monthsToPayBackRange = [months(saving.ci95[1]), months(saving.ci95[0])]
        paysBack = monthsToPayBack.map { $0 <= horizonMonths } ?? false
    }

    /// "keep the teacher" when the traffic is too small for the saving to pay the one-off cost within the horizon.
    public func tooLittleTraffic(_ recommendation: Recommendation) -> Recommendation {
        guard recommendation.candidate != nil, paysBack == false, let traffic = trafficPerMonth else {
            return recommendation
        }
        let payback =
            monthsToPayBack.map { String(format: "pays back in %.1f months", $0) }
            ?? "never pays back (the student saves nothing per request)"
        return .noDistillation(
            reason: String(
                format:
                    "%@ meets the bar, but at %@ requests a month it saves $%.2f a month and the one-off $%.2f "
                    + "(teacher labels $%.2f, training $%.2f) %@, beyond the %.0f-month horizon; keep the teacher",
                recommendation.candidate ?? "", Self.formatCount(traffic), monthlySavingUSD?.value ?? 0, oneOffUSD,
                labelsUSD, trainingUSD, payback, horizonMonths))
    }

    /// 2,000,000 → "2M"; 45,000 → "45k".
    public static func formatCount(_ value: Double) -> String {
        if value >= 1e9 { return String(format: "%.3gB", value / 1e9) }
        if value >= 1e6 { return String(format: "%.3gM", value / 1e6) }
        if value >= 1e3 { return String(format: "%.3gk", value / 1e3) }
        return String(format: "%.0f", value)
    }

    /// The saving per request of answering with a student whose serving cost per 1M is `p50Cost` (at its p50
    /// latency) and `p95Cost` (at p95), against a teacher costing `teacher` per request (with its interval); a cascade
    /// answers `coverage` (with its interval) of the requests and pays the teacher on the rest.
    public static func perRequest(
        teacher: (value: Double, low: Double, high: Double), studentPer1M p50Cost: Double, p95Cost: Double?,
        coverage: (value: Double, low: Double, high: Double)? = nil
    ) -> PerRequest {
        let student = p50Cost / 1e6
        let slowStudent = (p95Cost ?? p50Cost) / 1e6
        let share = coverage ?? (1, 1, 1)
        // Saving = coverage × teacher − student (the student runs on every request of a cascade).
        return PerRequest(
            value: share.value * teacher.value - student, low: share.low * teacher.low - slowStudent,
            high: share.high * teacher.high - student)
    }

    /// The teacher's cost per request from the rows' token usage at the given prices (the mean and a normal 95%
    /// interval of the mean), else the per-request price; nil when neither is known.
    public static func teacherCost(
        usage: [(input: Int, output: Int)?], inputPerMTok: Double?, outputPerMTok: Double?, per1kRequests: Double?
    ) -> MetricEstimate? {
        let rows = usage.compactMap { $0 }
        if let inputPrice = inputPerMTok, let outputPrice = outputPerMTok, !rows.isEmpty {
            let costs = rows.map { (Double($0.input) * inputPrice + Double($0.output) * outputPrice) / 1e6 }
            let mean = costs.reduce(0, +) / Double(costs.count)
            let variance =
                costs.count > 1
                ? costs.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(costs.count - 1) : 0
            let half = 1.959964 * (variance / Double(costs.count)).squareRoot()
            return MetricEstimate(value: mean, ci95: max(0, mean - half)...(mean + half))
        }
        return per1kRequests.map { MetricEstimate(value: $0 / 1000, ci95: ($0 / 1000)...($0 / 1000)) }
    }

    /// The economics of `recommendation` among `trials` (nil when it keeps the teacher or no cost is known): the
    /// student's serving cost at p50 and p95, and a cascade's coverage with its Wilson interval on `validationRows`.
    public static func of(
        _ recommendation: Recommendation, trials: [TrialResult], teacherCost: MetricEstimate, rows: Int,
        validationRows: Int, traffic: Double?, usdPerVCPUHour: Double, cpuSeconds: Double
    ) -> Economics? {
        guard let id = recommendation.candidate, let trial = trials.first(where: { $0.id == id }),
            let p50Cost = trial.costPer1MUSD
        else { return nil }
        let p95Cost = trial.latencyMsP95.map { $0 / 1000 * 1e6 * usdPerVCPUHour / 3600 }
        let coverage = recommendation.cascadePoint.map { point -> (Double, Double, Double) in
            let interval = wilson(point.coverage, rows: validationRows)
            return (point.coverage, interval.low, interval.high)
        }
        let perRequest = perRequest(
            teacher: (teacherCost.value, teacherCost.ci95[0], teacherCost.ci95[1]), studentPer1M: p50Cost,
            p95Cost: p95Cost, coverage: coverage)
        return make(
            traffic: traffic, labelsUSD: teacherCost.value * Double(rows), cpuSeconds: cpuSeconds,
            usdPerVCPUHour: usdPerVCPUHour, perRequest: perRequest, teacherCost: teacherCost)
    }

    /// The Wilson 95% interval of a share `p` observed on `n` rows.
    public static func wilson(_ p: Double, rows n: Int) -> (low: Double, high: Double) {
        guard n > 0 else { return (p, p) }
        let z = 1.959964
        let n = Double(n)
        let center = (p + z * z / (2 * n)) / (1 + z * z / n)
        let half = z * ((p * (1 - p) / n + z * z / (4 * n * n)).squareRoot()) / (1 + z * z / n)
        return (max(0, center - half), min(1, center + half))
    }

    /// The CPU seconds this process and its finished children have used (user + system).
    public static func cpuSecondsUsed() -> Double {
        var total = 0.0
        for who in [RUSAGE_SELF, RUSAGE_CHILDREN] {
            var usage = rusage()
            guard getrusage(__rusage_who_t(who.rawValue), &usage) == 0 else { continue }
            total += Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
            total += Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
        }
        return total
    }
}

extension SearchRun {
    /// The break-even of the recommendation (``Economics``): the labelling bill of every row, the CPU seconds so far,
    /// the saving per request. With traffic, a student or cascade that would not pay back within the horizon gives way
    /// to "keep the teacher" (the export and test figures go with it; the economics stay, to say why).
    func economics(_ ranked: inout RankedTrials, figures: inout TestFigures) {
        guard
            let teacherCost = Economics.teacherCost(
                usage: task.train.teacherUsage + task.validation.teacherUsage + task.test.teacherUsage,
                inputPerMTok: task.teacher.inputPerMTokUSD, outputPerMTok: task.teacher.outputPerMTokUSD,
                per1kRequests: task.teacher.costPer1kRequestsUSD),
            let economics = Economics.of(
                ranked.recommendation, trials: ranked.ordered, teacherCost: teacherCost,
                rows: task.train.count + task.validation.count + task.test.count,
                validationRows: task.validation.count, traffic: settings.trafficPerMonth,
                usdPerVCPUHour: settings.usdPerVCPUHour, cpuSeconds: Economics.cpuSecondsUsed())
        else { return }
        var measured = economics
        measured.trafficSource = settings.trafficPerMonth == nil ? nil : settings.trafficSource
        figures.economics = measured
        let decided = economics.tooLittleTraffic(ranked.recommendation)
        if decided.candidate == nil {
            ranked.recommendation = decided
            figures.recommendedBundle = nil
            figures.recommendationTest = nil
            figures.recommendationDifference = nil
        }
    }
}

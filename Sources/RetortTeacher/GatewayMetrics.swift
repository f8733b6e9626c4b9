import Prometheus

/// The gateway's Prometheus metrics (`GET /metrics`).
public final class GatewayMetrics: Sendable {
    /// The registry every metric is made in.
    public let registry = PrometheusCollectorRegistry()
    static let latencyBuckets: [Double] = [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
    ]

    /// A metric's name, `retort_gateway_NAME_UNIT` (or `retort_gateway_NAME` with no unit), and its help text.
    static func named(_ name: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "retort", subsystem: "gateway", metricName: name, unitName: unit, helpText: help)
    }

    /// Metrics in a fresh registry.
    package init() {}

    /// A finished request.
    package func request(route: String, status: Int, seconds: Double, spendUSD: Double) {
        registry.makeCounter(
            descriptor: Self.named("requests", "total", "Requests answered by the gateway, by route and HTTP status."),
            labels: [("route", route), ("status", String(status))]
        ).increment()
        registry.makeValueHistogram(
            descriptor: Self.named(
                "request_duration", "seconds", "Time from a request's arrival to its answer, by route."),
            labels: [("route", route)],
            buckets: GatewayMetrics.latencyBuckets
        ).record(seconds)
        if spendUSD > 0 {
            registry.makeCounter(
                descriptor: Self.named(
                    "spend_usd", "total",
                    "Spend in US dollars as the ledger records it (teacher calls and students), by route."),
                labels: [("route", route)]
            )
            .increment(by: spendUSD)
        }
    }

    /// An upstream attempt on `deployment` with `outcome` (ok, error, timeout...).
    package func attempt(deployment: String, outcome: String, seconds: Double) {
        registry.makeCounter(
            descriptor: Self.named(
                "upstream_attempts", "total", "Upstream attempts, by deployment and outcome (ok, error, timeout, ...)."),
            labels: [("deployment", deployment), ("outcome", outcome)]
        ).increment()
        registry.makeValueHistogram(
            descriptor: Self.named("upstream_duration", "seconds", "Time of an upstream attempt, by deployment."),
            labels: [("deployment", deployment)],
            buckets: GatewayMetrics.latencyBuckets
        ).record(seconds)
    }

    /// A deployment abandoned for the next one.
    package func failover(route: String, deployment: String) {
        registry.makeCounter(
            descriptor: Self.named(
                "failovers", "total", "Deployments abandoned for the next one, by route and deployment."),
            labels: [("route", route), ("deployment", deployment)]
        ).increment()
    }

    /// A ledger write that failed after its retries (`table`: requests, failovers, trips, confirmations, shadows,
    /// captures, deployments).
    package func ledgerWriteFailure(table: String) {
        registry.makeCounter(
            descriptor: Self.named(
                "ledger_write_failures", "total", "Ledger writes that failed after their retries, by table."),
            labels: [("table", table)]
        )
        .increment()
    }

    /// A session-breaker trip.
    package func sessionTrip() {
        registry.makeCounter(descriptor: Self.named("session_trips", "total", "Session-breaker trips.")).increment()
    }

    /// Breaker state per deployment: 0 closed, 1 half-open, 2 open.
    package func breaker(deployment: String, state: BreakerBoard.State) {
        let value: Double =
            switch state {
            case .closed: 0
            case .halfOpen: 1
            case .open: 2
            }
        registry.makeGauge(
            descriptor: Self.named("breaker_state", "", "Breaker state per deployment: 0 closed, 1 half-open, 2 open."),
            labels: [("deployment", deployment)]
        ).set(value)
    }

    /// A request a deployed student answered in-process.
    package func studentAnswer(route: String) {
        registry.makeCounter(
            descriptor: Self.named(
                "student_answers", "total", "Requests a deployed student answered in-process, by route."),
            labels: [("route", route)]
        ).increment()
    }

    /// A shadow check's outcome: agree, disagree, teacher_failed, skipped_budget, skipped_busy.
    package func shadow(route: String, outcome: String) {
        registry.makeCounter(
            descriptor: Self.named(
                "shadow_checks", "total", "Shadow checks of a deployed student, by route and outcome."),
            labels: [("route", route), ("outcome", outcome)]
        ).increment()
    }

    /// A deployment rolled back by its shadow checks.
    package func rollback(route: String) {
        registry.makeCounter(
            descriptor: Self.named("rollbacks", "total", "Deployments rolled back by their shadow checks, by route."),
            labels: [("route", route)]
        ).increment()
    }

    /// The Prometheus text exposition.
    public func text() -> String { registry.emitToString() }
}

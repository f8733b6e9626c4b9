import Prometheus

/// The gateway's Prometheus metrics (`GET /metrics`).
public final class GatewayMetrics: Sendable {
    /// The registry every metric is made in.
    public let registry = PrometheusCollectorRegistry()
    static let latencyBuckets: [Double] = [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
    ]

    /// Metrics in a fresh registry.
    package init() {}

    /// A finished request.
    package func request(route: String, status: Int, seconds: Double, spendUSD: Double) {
        registry.makeCounter(
            name: "retort_gateway_requests_total", labels: [("route", route), ("status", String(status))]
        ).increment()
        registry.makeValueHistogram(
            name: "retort_gateway_request_duration_seconds", labels: [("route", route)],
            buckets: GatewayMetrics.latencyBuckets
        ).record(seconds)
        if spendUSD > 0 {
            registry.makeCounter(name: "retort_gateway_spend_usd_total", labels: [("route", route)])
                .increment(by: spendUSD)
        }
    }

    /// An upstream attempt on `deployment` with `outcome` (ok, error, timeout...).
    package func attempt(deployment: String, outcome: String, seconds: Double) {
        registry.makeCounter(
            name: "retort_gateway_upstream_attempts_total", labels: [("deployment", deployment), ("outcome", outcome)]
        ).increment()
        registry.makeValueHistogram(
            name: "retort_gateway_upstream_duration_seconds", labels: [("deployment", deployment)],
            buckets: GatewayMetrics.latencyBuckets
        ).record(seconds)
    }

    /// A deployment abandoned for the next one.
    package func failover(route: String, deployment: String) {
        registry.makeCounter(
            name: "retort_gateway_failovers_total", labels: [("route", route), ("deployment", deployment)]
        ).increment()
    }

    /// A ledger write that failed after its retries (`table`: requests, failovers, trips, confirmations, shadows,
    /// captures, deployments).
    package func ledgerWriteFailure(table: String) {
        registry.makeCounter(name: "retort_gateway_ledger_write_failures_total", labels: [("table", table)])
            .increment()
    }

    /// A session-breaker trip.
    package func sessionTrip() {
        registry.makeCounter(name: "retort_gateway_session_trips_total").increment()
    }

    /// Breaker state per deployment: 0 closed, 1 half-open, 2 open.
    package func breaker(deployment: String, state: BreakerBoard.State) {
        let value: Double =
            switch state {
            case .closed: 0
            case .halfOpen: 1
            case .open: 2
            }
        registry.makeGauge(name: "retort_gateway_breaker_state", labels: [("deployment", deployment)]).set(value)
    }

    /// A request a deployed student answered in-process.
    package func studentAnswer(route: String) {
        registry.makeCounter(name: "retort_gateway_student_answers_total", labels: [("route", route)]).increment()
    }

    /// A shadow check's outcome: agree, disagree, teacher_failed, skipped_budget, skipped_busy.
    package func shadow(route: String, outcome: String) {
        registry.makeCounter(
            name: "retort_gateway_shadow_checks_total", labels: [("route", route), ("outcome", outcome)]
        ).increment()
    }

    /// A deployment rolled back by its shadow checks.
    package func rollback(route: String) {
        registry.makeCounter(name: "retort_gateway_rollbacks_total", labels: [("route", route)]).increment()
    }

    /// The Prometheus text exposition.
    public func text() -> String { registry.emitToString() }
}

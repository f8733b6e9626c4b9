import ArgumentParser
import Foundation
import RetortData
import RetortTeacher
import RetortUsage

/// The expected traffic behind the break-even, shared by `search` and `recommend`: given (`--traffic 2M/month`) or
/// measured, the recent volume of a gateway route (`--traffic-route NAME --gateway-config gateway.yaml`).
struct TrafficOptions: ParsableArguments {
    @Option(
        help:
            "Expected requests a month (2M/month, 50k/day, 2000000): the break-even, and \"keep the teacher\" when the saving cannot pay the one-off cost within 24 months."
    )
    var traffic: String?
    @Option(
        name: .customLong("traffic-route"),
        help:
            "Take the traffic from this gateway route's answered client requests in the ledger (needs --gateway-config)."
    )
    var trafficRoute: String?
    @Option(name: .customLong("gateway-config"), help: "The gateway config (YAML) whose ledger --traffic-route reads.")
    var gatewayConfig: String?
    @Option(
        name: .customLong("traffic-since"),
        help: "The ledger window --traffic-route counts (7d, 24h; default 30d), scaled to a month.")
    var trafficSince: String?

    /// Requests a month and, when measured, where: nil when no traffic was asked for. Usage errors for a bad count,
    /// both --traffic and --traffic-route, or one of --traffic-route and --gateway-config without the other.
    func resolve() throws(DataError) -> (perMonth: Double, source: String?)? {
        if let traffic {
            guard trafficRoute == nil else {
                throw DataError(.usage, "give --traffic or --traffic-route, not both")
            }
            guard let value = Job.parseTraffic(traffic) else {
                throw DataError(
                    .usage, "--traffic \"\(traffic)\" is not a request count; write 2M/month, 50k/day or 2000000")
            }
            return (value, nil)
        }
        guard let trafficRoute else {
            if gatewayConfig != nil || trafficSince != nil {
                throw DataError(.usage, "--gateway-config and --traffic-since go with --traffic-route NAME")
            }
            return nil
        }
        guard let gatewayConfig else {
            throw DataError(.usage, "--traffic-route needs --gateway-config gateway.yaml (the ledger to read)")
        }
        let config = try GatewayConfig.load(gatewayConfig)
        let start = try UsageReport.start(since: trafficSince ?? "30d")
        do {
            let measured = try RouteTraffic.load(config: config, route: trafficRoute, since: start)
            return (measured.perMonth, measured.source)
        } catch let error as DataError {
            throw error
        } catch {
            throw DataError(.io, "cannot read the ledger: \(error)", file: config.ledgerPath)
        }
    }
}

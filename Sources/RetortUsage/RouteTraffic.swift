import Foundation
import RetortData
import RetortTeacher

/// A route's recent volume in the gateway's ledger, as requests a month: the traffic a distilled student of that
/// route would take over (`retort search --traffic-route NAME --gateway-config gateway.yaml`).
///
/// Counted: the answered client requests of the route (status 200, kind `client`: what callers sent, whether the
/// teacher or a deployed student answered), not the ledger's own labelling (`retort label` sessions `label-…` and
/// batch jobs `batch-…`), shadow calls or errors. The window is `--traffic-since` (default 30 days) or, when the ledger
/// is younger, from its first counted request; the count is scaled to a 30.4-day month.
public struct RouteTraffic: Sendable, Equatable {
    /// The route.
    public var route: String
    /// Requests counted in the window.
    public var requests: Int
    /// The window's length, days.
    public var days: Double
    /// `requests` scaled to a month of 30.4 days.
    public var perMonth: Double { Double(requests) / days * 30.4 }

    /// The shortest window that gives a volume: an hour of traffic.
    public static let minimumDays = 1.0 / 24

    /// Where the figure came from, for reports: "route teacher: 1200 requests in the ledger's last 30 days".
    public var source: String {
        String(format: "route %@ in the gateway ledger: %d requests in %@ days", route, requests, Self.days(days))
    }

    static func days(_ value: Double) -> String {
        value >= 10 ? String(format: "%.0f", value) : String(format: "%.2g", value)
    }

    /// The traffic of `route` in the ledger of `config` from `start` (UNIX seconds) to `now`. Throws when the ledger is
    /// missing, the route unknown to the config, or the ledger holds less than ``minimumDays`` of its traffic.
    public static func load(
        config: GatewayConfig, route: String, since start: Double, now: Double = Date().timeIntervalSince1970
    ) throws -> RouteTraffic {
        guard config.routes[route] != nil else {
            throw DataError(
                .usage,
                "no route \"\(route)\" in \(config.file); routes: \(config.routes.keys.sorted().joined(separator: ", "))"
            )
        }
        guard config.ledger.mayExist else {
            throw DataError(
                .missingInput, "no ledger yet: the gateway has served no traffic to measure; pass --traffic instead",
                file: config.ledgerPath)
        }
        let rows = try Ledger(config: config).rows(since: start).filter {
            $0.route == route && $0.kind == "client" && $0.status == 200 && !$0.session.hasPrefix("label-")
                && !$0.session.hasPrefix("batch-") && $0.time <= now
        }
        let first = rows.map(\.time).min() ?? now
        let days = (now - max(start, first)) / 86_400
        guard !rows.isEmpty, days >= minimumDays else {
            throw DataError(
                .usage,
                "the ledger holds \(rows.count) answered request(s) on route \(route) over less than an hour; "
                    + "pass --traffic (e.g. 2M/month) until it has seen real traffic",
                file: config.ledgerPath)
        }
        return RouteTraffic(route: route, requests: rows.count, days: days)
    }
}

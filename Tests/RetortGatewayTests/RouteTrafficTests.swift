import Foundation
import RetortData
import RetortTeacher
import RetortUsage
import Testing

@Suite struct RouteTrafficTests {
    /// A ledger holding `counted` answered client requests on route `teacher` spread over the last `days` days, and
    /// the rows that must not count: another route, labelling and batch sessions, shadow calls, errors, and a request
    /// older than the window.
    static func ledger(counted: Int, days: Double, now: Double) throws -> GatewayConfig {
        let config = try gatewayConfig(port: 9, ledger: temporaryLedger(), routes: failoverRoute("ok"))
        try FileManager.default.createDirectory(
            atPath: (config.ledgerPath as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let ledger = try Ledger(path: config.ledgerPath)
        func row(
            _ time: Double, route: String = "teacher", session: String = "s", status: Int = 200, kind: String = "client"
        )
            -> LedgerRow
        {
            LedgerRow(
                time: time, keyHash: "k", user: "ana", team: "search", route: route, session: session, status: status,
                kind: kind)
        }
        for index in 0..<counted {
            try ledger.record(row(now - days * 86_400 * Double(index + 1) / Double(counted)))
        }
        for time in [now - 3_600, now - 7_200] {
            try ledger.record(row(time, route: "other"))
            try ledger.record(row(time, session: "label-1764900000"))
            try ledger.record(row(time, session: "batch-abc"))
            try ledger.record(row(time, kind: "shadow"))
            try ledger.record(row(time, status: 502))
        }
        try ledger.record(row(now - 90 * 86_400))
        return config
    }

    @Test("a route's answered client requests over the window, scaled to a month")
    func monthlyVolume() throws {
        let now = 1_800_000_000.0
        let config = try Self.ledger(counted: 600, days: 10, now: now)
        let month = try RouteTraffic.load(config: config, route: "teacher", since: now - 30 * 86_400, now: now)
        // The ledger's oldest counted row in the window is 10 days old: 600 requests in 10 days.
        #expect(month.requests == 600)
        #expect(abs(month.days - 10) < 1e-9)
        #expect(abs(month.perMonth - 600 / 10 * 30.4) < 1e-6)
        #expect(month.source == "route teacher in the gateway ledger: 600 requests in 10 days")
        let week = try RouteTraffic.load(config: config, route: "teacher", since: now - 2 * 86_400, now: now)
        #expect(week.requests == 120 && abs(week.days - 2) < 1e-9, "\(week)")
        let all = try RouteTraffic.load(config: config, route: "teacher", since: 0, now: now)
        #expect(all.requests == 601 && abs(all.days - 90) < 1e-9, "\(all)")
    }

    @Test("an unknown route, a missing ledger and too little traffic are usage errors that say what to do")
    func errors() throws {
        let now = 1_800_000_000.0
        let config = try Self.ledger(counted: 3, days: 0.01, now: now)
        #expect(throws: DataError.self) {
            try RouteTraffic.load(config: config, route: "nope", since: 0, now: now)
        }
        do {
            _ = try RouteTraffic.load(config: config, route: "teacher", since: now - 86_400, now: now)
            Issue.record("under an hour of traffic must not give a volume")
        } catch let error as DataError {
            #expect("\(error)".contains("pass --traffic"), "\(error)")
        }
        let empty = try gatewayConfig(port: 9, ledger: temporaryLedger(), routes: failoverRoute("ok"))
        do {
            _ = try RouteTraffic.load(config: empty, route: "teacher", since: 0, now: now)
            Issue.record("a missing ledger must be an error")
        } catch let error as DataError {
            #expect("\(error)".contains("no ledger yet"), "\(error)")
        }
    }
}

import Foundation
import RetortData
import RetortDeployments
import RetortTeacher

/// The gateway dashboard's views for another page (`retort ui`): the figures, tables and charts of the last 30 days
/// and the deployed students, read from the ledger (breaker states live in the gateway process and are not shown).
public enum SpendView {
    /// The CSS the views need (colours come from `--fg`, `--muted`, `--line`, `--card`).
    public static let style = DashboardPage.sectionStyle

    /// KPIs and sections for the ledger of `config`.
    public static func html(config: GatewayConfig, now: Double = Date().timeIntervalSince1970) throws -> String {
        let ledger = try Ledger(config: config)
        var health: [(deployment: String, state: BreakerBoard.State?, retired: Bool)] = []
        for route in config.routes.values.sorted(by: { $0.name < $1.name }) {
            for deployment in route.deployments where !health.contains(where: { $0.deployment == deployment.id }) {
                health.append((deployment.id, nil, false))
            }
        }
        return try DashboardPage.load(ledger: ledger, health: health, now: now).sections
    }
}

/// The dashboard page: one self-contained HTML document (inline CSS and SVG, no network references).
package struct DashboardPage {
    var rows: [LedgerRow]
    var trips: [SessionTrip]
    var failovers: [(time: Double, route: String, deployment: String, reason: String)]
    var health: [(deployment: String, state: BreakerBoard.State?, retired: Bool)]
    var now: Double

    /// The last 30 days of `ledger`.
    package static func load(
        ledger: Ledger, health: [(deployment: String, state: BreakerBoard.State?, retired: Bool)], now: Double
    ) throws -> DashboardPage {
        let since = now - 30 * 86_400
        var page = DashboardPage(
            rows: try ledger.rows(since: since), trips: try ledger.trips(since: since),
            failovers: try ledger.failovers(since: since), health: health, now: now)
        page.students = try ledger.newestDeployments().map {
            (record: $0, agreement: try ledger.shadowAgreement(deployment: $0.id))
        }
        page.shadows = try ledger.shadows(since: since)
        return page
    }

    static let sectionStyle = """
        .grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(380px,100%),1fr));gap:16px}
        section{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px;overflow-x:auto}
        table{border-collapse:collapse;width:100%}td,th{padding:3px 6px;border-bottom:1px solid var(--line);text-align:left;overflow-wrap:anywhere}
        td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}.muted{color:var(--muted)}
        .kpis{display:flex;gap:24px;flex-wrap:wrap;margin-bottom:16px}.kpi b{display:block;font-size:20px}
        .bar{height:12px;background:#4e79a7;border-radius:2px}.ok{color:#2e7d32}.bad{color:#c62828}.warn{color:#ef6c00}
        svg text{fill:var(--fg);font-size:11px}
        """
    /// The newest deployment per route with its shadow agreement window.
    var students: [(record: DeploymentRecord, agreement: ShadowAgreement)] = []
    /// Shadow checks of the period.
    var shadows: [ShadowRecord] = []

    static func escape(_ text: String) -> String { HTML.escape(text) }

    static func usd(_ value: Double) -> String { String(format: value < 1 ? "$%.4f" : "$%.2f", value) }

    static let palette = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f"]

    package var html: String {
        """
        <!doctype html><html lang="en"><head><meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>Retort gateway</title><style>
        :root{color-scheme:light dark;--fg:#1d1d1f;--bg:#fff;--muted:#6e6e73;--line:#d2d2d7;--card:#f5f5f7}
        @media (prefers-color-scheme:dark){:root{--fg:#f5f5f7;--bg:#161617;--muted:#a1a1a6;--line:#424245;--card:#1d1d1f}}
        body{font:14px/1.4 system-ui,sans-serif;color:var(--fg);background:var(--bg);margin:0;padding:16px}
        h1{font-size:20px;margin:0 0 12px}h2{font-size:16px;margin:0 0 8px}
        \(DashboardPage.sectionStyle)
        </style></head><body>
        <h1>Retort gateway — last 30 days</h1>
        \(sections)</body></html>

        """
    }

    /// The KPIs and the grid of sections.
    var sections: String {
        let spendByDayTeam = spendPerDayByTeam()
        let clientRows = rows.filter { $0.kind == "client" }
        let users = UsageReport(rows: rows, by: .user).groups
        let models = UsageReport(rows: rows, by: .model).groups
        let total = rows.reduce(0) { $0 + $1.costUSD }
        let errors = clientRows.filter { $0.status != 200 }.count
        let sessions = UsageReport(rows: rows, by: .user).longestSessions
        var body = """
            <div class="kpis"><div class="kpi"><b>\(DashboardPage.usd(total))</b><span class="muted">spend</span></div>
            <div class="kpi"><b>\(clientRows.count)</b><span class="muted">requests</span></div>
            <div class="kpi"><b>\(errors)</b><span class="muted">errors</span></div>
            <div class="kpi"><b>\(rows.filter(\.failover).count)</b><span class="muted">failovers served</span></div>
            <div class="kpi"><b>\(trips.count)</b><span class="muted">session trips</span></div></div>
            <div class="grid">
            """
        body += "<section><h2>Spend per day by team</h2>\(spendByDayTeam)</section>"
        body +=
            "<section><h2>Top users by spend</h2>\(barTable(users.prefix(10).map { ($0.group, $0.costUSD, $0.requests) }))</section>"
        body +=
            "<section><h2>Top models by spend</h2>\(barTable(models.prefix(10).map { ($0.group, $0.costUSD, $0.requests) }))</section>"
        body += "<section><h2>Model mix per team</h2>\(modelMix())</section>"
        body += "<section><h2>Sessions that tripped or ran long</h2>\(sessionTable(sessions))</section>"
        body += "<section><h2>Provider health and failovers</h2>\(healthTable())</section>"
        body += "<section style=\"grid-column:1/-1\"><h2>Deployed students</h2>\(studentTable())</section>"
        body += "</div>"
        return body
    }

    func spendPerDayByTeam() -> String {
        var days: [String: [String: Double]] = [:]
        var teams = Set<String>()
        for row in rows {
            let day = UsageReport.dayFormatter.string(from: Date(timeIntervalSince1970: row.time))
            let team = row.team.isEmpty ? "(no team)" : row.team
            days[day, default: [:]][team, default: 0] += row.costUSD
            teams.insert(team)
        }
        guard !days.isEmpty else { return "<p class=\"muted\">No requests yet.</p>" }
        let order = days.keys.sorted().suffix(30)
        let teamOrder = teams.sorted()
        let maximum = max(order.map { (days[$0] ?? [:]).values.reduce(0, +) }.max() ?? 0, 1e-9)
        let width = 360.0
        let height = 160.0
        let barWidth = width / Double(max(order.count, 1))
        var svg =
            "<svg viewBox=\"0 0 \(Int(width)) \(Int(height + 30))\" width=\"100%\" role=\"img\" aria-label=\"spend per day by team\">"
        for (index, day) in order.enumerated() {
            var y = height
            for (teamIndex, team) in teamOrder.enumerated() {
                let value = days[day]?[team] ?? 0
                let h = value / maximum * (height - 10)
                y -= h
                svg += String(
                    format:
                        "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%@\"><title>%@ %@: %@</title></rect>",
                    Double(index) * barWidth + 1, y, max(barWidth - 2, 1), h,
                    DashboardPage.palette[teamIndex % DashboardPage.palette.count], day, DashboardPage.escape(team),
                    DashboardPage.usd(value)
                )
            }
            if index == 0 || index == order.count - 1 {
                svg += String(
                    format: "<text x=\"%.1f\" y=\"%.1f\">%@</text>", Double(index) * barWidth, height + 14,
                    String(day.suffix(5)))
            }
        }
        svg += "<text x=\"\(Int(width) - 80)\" y=\"12\">max \(DashboardPage.usd(maximum))</text></svg>"
        let legend = teamOrder.enumerated().map { index, team in
            "<span style=\"color:\(DashboardPage.palette[index % DashboardPage.palette.count])\">■</span> \(DashboardPage.escape(team))"
        }.joined(separator: " &nbsp; ")
        return svg + "<div>\(legend)</div>"
    }

    func barTable(_ items: [(String, Double, Int)]) -> String {
        guard !items.isEmpty else { return "<p class=\"muted\">No requests yet.</p>" }
        let maximum = max(items.map(\.1).max() ?? 0, 1e-9)
        var html =
            "<table><tr><th>name</th><th class=\"n\">requests</th><th class=\"n\">spend</th><th style=\"width:35%\"></th></tr>"
        for (name, spend, requests) in items {
            html += String(
                format:
                    "<tr><td>%@</td><td class=\"n\">%d</td><td class=\"n\">%@</td><td><div class=\"bar\" style=\"width:%.0f%%\"></div></td></tr>",
                DashboardPage.escape(name), requests, DashboardPage.usd(spend), spend / maximum * 100
            )
        }
        return html + "</table>"
    }

    func modelMix() -> String {
        var mix: [String: [String: Int]] = [:]
        for row in rows {
            mix[row.team.isEmpty ? "(no team)" : row.team, default: [:]][row.deployment ?? "(refused)", default: 0] += 1
        }
        guard !mix.isEmpty else { return "<p class=\"muted\">No requests yet.</p>" }
        var html = "<table><tr><th>team</th><th>model</th><th class=\"n\">share of requests</th></tr>"
        for (team, models) in mix.sorted(by: { $0.key < $1.key }) {
            let total = Double(models.values.reduce(0, +))
            for (model, count) in models.sorted(by: { $0.value > $1.value }) {
                html += String(
                    format: "<tr><td>%@</td><td>%@</td><td class=\"n\">%.0f%% (%d)</td></tr>",
                    DashboardPage.escape(team),
                    DashboardPage.escape(model), Double(count) / total * 100, count
                )
            }
        }
        return html + "</table>"
    }

    func sessionTable(
        _ sessions: [(session: String, user: String, seconds: Double, requests: Int, spendUSD: Double)]
    ) -> String {
        var html =
            "<table><tr><th>session</th><th>user</th><th class=\"n\">duration</th><th class=\"n\">spend</th><th>trip</th></tr>"
        var shown = Set<String>()
        for trip in trips.prefix(10) {
            shown.insert(trip.session)
            html += String(
                format:
                    "<tr><td>%@</td><td>%@</td><td class=\"n\">%.0f s</td><td class=\"n\">%@</td><td class=\"bad\">%@</td></tr>",
                DashboardPage.escape(trip.session), DashboardPage.escape(trip.user), trip.durationSeconds,
                DashboardPage.usd(trip.spendUSD), DashboardPage.escape(trip.reason)
            )
        }
        for session in sessions.prefix(10) where !shown.contains(session.session) {
            html += String(
                format:
                    "<tr><td>%@</td><td>%@</td><td class=\"n\">%.0f s</td><td class=\"n\">%@</td><td class=\"muted\">—</td></tr>",
                DashboardPage.escape(session.session), DashboardPage.escape(session.user), session.seconds,
                DashboardPage.usd(session.spendUSD)
            )
        }
        if trips.isEmpty && sessions.isEmpty { return "<p class=\"muted\">No sessions yet.</p>" }
        return html + "</table>"
    }

    func healthTable() -> String {
        var attempts: [String: (served: Int, failovers: Int)] = [:]
        for row in rows {
            if let deployment = row.deployment { attempts[deployment, default: (0, 0)].served += 1 }
        }
        for failover in failovers { attempts[failover.deployment, default: (0, 0)].failovers += 1 }
        var html =
            "<table><tr><th>deployment</th><th>breaker</th><th class=\"n\">served</th><th class=\"n\">failed over</th></tr>"
        for entry in health {
            let state = entry.retired ? "retired" : entry.state?.rawValue ?? "—"
            let style =
                entry.retired || entry.state == .open
                ? "bad" : entry.state == .halfOpen ? "warn" : entry.state == nil ? "muted" : "ok"
            let counts = attempts[entry.deployment] ?? (0, 0)
            html +=
                "<tr><td>\(DashboardPage.escape(entry.deployment))</td><td class=\"\(style)\">\(state)</td><td class=\"n\">\(counts.served)</td><td class=\"n\">\(counts.failovers)</td></tr>"
        }
        html += "</table>"
        if !failovers.isEmpty {
            html += "<h2 style=\"margin-top:12px\">Recent failovers</h2><table>"
            for event in failovers.prefix(8) {
                let time = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: event.time))
                html +=
                    "<tr><td class=\"muted\">\(time)</td><td>\(DashboardPage.escape(event.route))</td><td>\(DashboardPage.escape(event.deployment))</td><td>\(DashboardPage.escape(event.reason))</td></tr>"
            }
            html += "</table>"
        }
        return html
    }

    /// Per route: the newest deployment, its state (a rollback in red with its reason), shadow agreement, the share of
    /// the last 30 days' client requests it answered and the teacher spend it saved.
    func studentTable() -> String {
        if students.isEmpty {
            return
                "<p class=\"muted\">No student deployed; <code>retort deploy RUN_DIR --config ... --route NAME</code>.</p>"
        }
        let report = UsageReport(rows: rows, by: .route, shadows: shadows)
        var html =
            "<table><tr><th>route</th><th>student</th><th>state</th><th class=\"n\">threshold</th><th class=\"n\">agreement (last 200 shadows)</th><th class=\"n\">floor</th><th class=\"n\">student share</th><th class=\"n\">teacher spend saved</th></tr>"
        for (record, agreement) in students {
            let style = record.state == .serving ? "ok" : record.state == .rolledBack ? "bad" : "muted"
            var state = record.state.rawValue
            if record.state == .rolledBack, let ended = record.endedAt {
                let time = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: ended))
                state += " at \(time): \(record.reason ?? "")"
            }
            let (low, high) = agreement.interval
            let agreementText =
                agreement.count == 0
                ? "no shadow answers yet"
                : String(format: "%.3f [%.3f, %.3f] n=%d", agreement.value, low, high, agreement.count)
            let figures = report.groups.first { $0.group == record.route }?.student
            html +=
                "<tr><td>\(DashboardPage.escape(record.route))</td><td>\(DashboardPage.escape(record.student))</td><td class=\"\(style)\">\(DashboardPage.escape(state))</td><td class=\"n\">\(String(format: "%.4f", record.threshold))</td><td class=\"n\">\(agreementText)</td><td class=\"n\">\(String(format: "%.3f", record.minAgreement))</td><td class=\"n\">\(String(format: "%.1f%%", (figures?.studentShare ?? 0) * 100))</td><td class=\"n\">\(DashboardPage.usd(figures?.teacherUSDSaved ?? 0))</td></tr>"
        }
        return html + "</table>"
    }
}

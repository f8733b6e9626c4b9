import Foundation
import RetortData
import RetortDeployments
import RetortTeacher

/// `retort usage`: the ledger grouped by user, team, route, model or day (FORMATS.md §6).
public struct UsageReport: Sendable {
    /// How rows are grouped.
    public enum Grouping: String, Sendable, CaseIterable {
        case user, team, route, model, day
    }

    /// One group's figures.
    public struct Group: Sendable, Equatable {
        /// The group's name (user, team, route, `provider/model` or UTC day).
        public var group: String
        /// Requests in the group.
        public var requests = 0
        /// Uncached input tokens.
        public var inputTokens = 0
        /// Input tokens read from a cache.
        public var cachedInputTokens = 0
        /// Input tokens written to a cache.
        public var cacheWriteTokens = 0
        /// Output tokens, reasoning included.
        public var outputTokens = 0
        /// Reasoning tokens (inside the output tokens).
        public var reasoningTokens = 0
        /// Cost in USD.
        public var costUSD = 0.0
        /// Median latency in milliseconds.
        public var latencyP50 = 0.0
        /// 95th-percentile latency in milliseconds.
        public var latencyP95 = 0.0
        /// Requests served by a deployment other than the route's first.
        public var failovers = 0
        /// Answers other than 200, failed streams included.
        public var errors = 0
        /// Route groups with a deployed student (FORMATS.md §8): what the student did there.
        public var student: StudentFigures?

        /// The FORMATS.md §6 object.
        public var json: JSON {
            let base: [String: JSON] = [
                "group": .string(group), "requests": .int(requests), "input_tokens": .int(inputTokens),
                "cached_input_tokens": .int(cachedInputTokens), "cache_write_tokens": .int(cacheWriteTokens),
                "output_tokens": .int(outputTokens), "reasoning_tokens": .int(reasoningTokens),
                "cost_usd": .number((costUSD * 1e6).rounded() / 1e6), "latency_ms_p50": .number(latencyP50),
                "latency_ms_p95": .number(latencyP95), "failovers": .int(failovers), "errors": .int(errors),
            ]
            return .object(base.merging(student?.json ?? [:]) { first, _ in first })
        }
    }

    /// A route's student figures: requests it answered, shadow checks, agreement and the teacher spend it saved.
    public struct StudentFigures: Sendable, Equatable {
        /// Client requests the student answered in-process.
        public var studentRequests = 0
        /// Their share of the route's client requests.
        public var studentShare = 0.0
        /// Shadow calls to the teacher.
        public var shadowRequests = 0
        /// Agreement of the shadow answers in the period.
        public var agreement = ShadowAgreement(agreeing: 0, count: 0)
        /// What the teacher would have cost for the student's answers, minus what the student cost.
        public var teacherUSDSaved = 0.0
        /// Where the teacher's cost per request came from: `shadow` (its answers to the very inputs the student
        /// answered), `teacher_requests` (the route's teacher-served requests) or `none`.
        public var teacherCostBasis = "none"

        var json: [String: JSON] {
            [
                "student_requests": .int(studentRequests),
                "student_share": .number((studentShare * 10_000).rounded() / 10_000),
                "shadow_requests": .int(shadowRequests), "agreement": agreement.json,
                "teacher_usd_saved": .number((teacherUSDSaved * 1e6).rounded() / 1e6),
                "teacher_cost_basis": .string(teacherCostBasis),
            ]
        }
    }

    /// Groups, most expensive first.
    public var groups: [Group]
    /// `provider/model` groups, most expensive first (whatever the grouping).
    public var topModels: [Group]
    /// Sessions by duration: (session, user, seconds, requests, spend).
    public var longestSessions: [(session: String, user: String, seconds: Double, requests: Int, spendUSD: Double)]

    /// Groups `rows` by `grouping`; `shadows` (the ledger's shadow checks of the same period) give route groups their
    /// student agreement.
    public init(rows: [LedgerRow], by grouping: Grouping, shadows: [ShadowRecord] = []) {
        var buckets: [String: [LedgerRow]] = [:]
        for row in rows {
            let name: String =
                switch grouping {
                case .user: row.user
                case .team: row.team
                case .route: row.route
                case .model: row.deployment ?? "(none)"
                case .day: UsageReport.dayFormatter.string(from: Date(timeIntervalSince1970: row.time))
                }
            buckets[name, default: []].append(row)
        }
        groups = UsageReport.summarize(buckets)
        if grouping == .route {
            let shadowsByRoute = Dictionary(grouping: shadows, by: \.route)
            for index in groups.indices {
                groups[index].student = UsageReport.studentFigures(
                    rows: buckets[groups[index].group] ?? [], shadows: shadowsByRoute[groups[index].group] ?? [])
            }
        }
        if grouping == .day { groups.sort { $0.group < $1.group } }
        topModels =
            grouping == .model
            ? groups
            : UsageReport.summarize(Dictionary(grouping: rows.filter { $0.deployment != nil }) { $0.deployment ?? "" })
        var sessions: [String: (user: String, first: Double, last: Double, requests: Int, spend: Double)] = [:]
        for row in rows where !row.session.isEmpty && row.kind == "client" {
            var entry = sessions[row.session] ?? (row.user, row.time, row.time, 0, 0)
            entry.first = min(entry.first, row.time)
            entry.last = max(entry.last, row.time + row.latencyMilliseconds / 1000)
            entry.requests += 1
            entry.spend += row.costUSD
            sessions[row.session] = entry
        }
        longestSessions = sessions.map {
            (
                session: $0.key, user: $0.value.user, seconds: $0.value.last - $0.value.first,
                requests: $0.value.requests, spendUSD: $0.value.spend
            )
        }.sorted { $0.seconds > $1.seconds }
    }

    /// One group per bucket, most expensive first.
    static func summarize(_ buckets: [String: [LedgerRow]]) -> [Group] {
        buckets.map { name, rows in
            var group = Group(group: name)
            // Shadow checks are the gateway's own calls: their tokens and spend count, they are not client requests.
            let clientRows = rows.filter { $0.kind == "client" }
            group.requests = clientRows.count
            for row in rows {
                group.inputTokens += row.usage.inputUncached
                group.cachedInputTokens += row.usage.cacheRead
                group.cacheWriteTokens += row.usage.cacheWrite
                group.outputTokens += row.usage.output
                group.reasoningTokens += row.usage.reasoning
                group.costUSD += row.costUSD
            }
            for row in clientRows {
                if row.failover { group.failovers += 1 }
                if row.status != 200 { group.errors += 1 }
            }
            let latencies = clientRows.map(\.latencyMilliseconds).sorted()
            group.latencyP50 = UsageReport.quantile(latencies, 0.5)
            group.latencyP95 = UsageReport.quantile(latencies, 0.95)
            return group
        }.sorted { ($0.costUSD, $1.group) > ($1.costUSD, $0.group) }
    }

    /// A route's student figures, or nil when no student answered or was checked there.
    static func studentFigures(rows: [LedgerRow], shadows: [ShadowRecord]) -> StudentFigures? {
        let clientRows = rows.filter { $0.kind == "client" }
        let studentRows = clientRows.filter { $0.deployment?.hasPrefix("student/") == true }
        let shadowRows = rows.filter { $0.kind == "shadow" }
        guard !studentRows.isEmpty || !shadowRows.isEmpty else { return nil }
        var figures = StudentFigures()
        figures.studentRequests = studentRows.count
        figures.studentShare = clientRows.isEmpty ? 0 : Double(studentRows.count) / Double(clientRows.count)
        figures.shadowRequests = shadowRows.count
        figures.agreement = ShadowAgreement(
            agreeing: shadows.filter(\.agree).count, count: shadows.count)
        let answeredShadows = shadowRows.filter { $0.status == 200 }
        let teacherRows = clientRows.filter {
            $0.status == 200 && $0.deployment != nil && $0.deployment?.hasPrefix("student/") == false
        }
        let perRequest: Double
        if !answeredShadows.isEmpty {
            perRequest = answeredShadows.reduce(0) { $0 + $1.costUSD } / Double(answeredShadows.count)
            figures.teacherCostBasis = "shadow"
        } else if !teacherRows.isEmpty {
            perRequest = teacherRows.reduce(0) { $0 + $1.costUSD } / Double(teacherRows.count)
            figures.teacherCostBasis = "teacher_requests"
        } else {
            perRequest = 0
        }
        let studentCost = studentRows.reduce(0) { $0 + $1.costUSD }
        figures.teacherUSDSaved = perRequest == 0 ? 0 : perRequest * Double(studentRows.count) - studentCost
        return figures
    }

    /// The start of `--since` (`7d`, `24h`, `30m`) before `now`; 0 (the whole ledger) without it.
    public static func start(since: String?, now: Double = Date().timeIntervalSince1970) throws(DataError) -> Double {
        guard let since else { return 0 }
        let text = since.hasSuffix("d") ? String(since.dropLast()) : nil
        if let text, let days = Double(text) { return now - days * 86_400 }
        if let seconds = DurationText.parse(since) { return now - seconds }
        throw DataError(.usage, "--since: write 7d, 24h or 30m")
    }

    /// The report of the ledger of `config` from `start` on, grouped by `grouping` (route groups with their students'
    /// figures).
    public static func load(config: GatewayConfig, by grouping: Grouping, since start: Double) throws -> UsageReport {
        guard config.ledger.mayExist else {
            throw DataError(
                .missingInput, "no ledger yet: start `retort gateway serve` first", file: config.ledgerPath)
        }
        let ledger = try Ledger(config: config)
        return UsageReport(
            rows: try ledger.rows(since: start), by: grouping,
            shadows: grouping == .route ? try ledger.shadows(since: start) : [])
    }

    /// Linear-interpolated quantile of sorted values (0 when empty).
    static func quantile(_ sorted: [Double], _ q: Double) -> Double { Latency.quantile(sorted, q) }

    static let dayFormatter: DateFormatter = {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd"
        return formatter
    }()

    /// The JSON array.
    public var json: JSON { .array(groups.map(\.json)) }

    static let columns = [
        "group", "requests", "input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens",
        "reasoning_tokens", "cost_usd", "latency_ms_p50", "latency_ms_p95", "failovers", "errors",
    ]

    /// CSV with a header line.
    /// With route groups that have a student, the student columns follow (empty for routes without one).
    public var csv: String {
        let students = groups.contains { $0.student != nil }
        let studentColumns = [
            "student_requests", "student_share", "shadow_requests", "agreement", "agreement_ci_low",
            "agreement_ci_high", "agreement_n", "teacher_usd_saved", "teacher_cost_basis",
        ]
        var lines = [(UsageReport.columns + (students ? studentColumns : [])).joined(separator: ",")]
        for group in groups {
            let name = CSV.field(group.group)
            var cells = [
                name, "\(group.requests)", "\(group.inputTokens)", "\(group.cachedInputTokens)",
                "\(group.cacheWriteTokens)", "\(group.outputTokens)", "\(group.reasoningTokens)",
                String(format: "%.6f", group.costUSD), String(format: "%.1f", group.latencyP50),
                String(format: "%.1f", group.latencyP95), "\(group.failovers)", "\(group.errors)",
            ]
            if students {
                if let figures = group.student {
                    let (low, high) = figures.agreement.interval
                    let agreement = figures.agreement.count > 0
                    cells += [
                        "\(figures.studentRequests)", String(format: "%.4f", figures.studentShare),
                        "\(figures.shadowRequests)", agreement ? String(format: "%.4f", figures.agreement.value) : "",
                        agreement ? String(format: "%.4f", low) : "", agreement ? String(format: "%.4f", high) : "",
                        "\(figures.agreement.count)", String(format: "%.6f", figures.teacherUSDSaved),
                        figures.teacherCostBasis,
                    ]
                } else {
                    cells += Array(repeating: "", count: studentColumns.count)
                }
            }
            lines.append(cells.joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// A plain-text table with the top spenders and longest sessions.
    public func table(grouping: Grouping) -> String {
        var lines: [String] = []
        let header = [
            grouping.rawValue, "requests", "input", "cached", "cache_write", "output", "reasoning", "spend $", "p50 ms",
            "p95 ms", "failovers", "errors",
        ]
        var rows = [header]
        for group in groups {
            rows.append([
                group.group, "\(group.requests)", "\(group.inputTokens)", "\(group.cachedInputTokens)",
                "\(group.cacheWriteTokens)", "\(group.outputTokens)", "\(group.reasoningTokens)",
                String(format: "%.4f", group.costUSD), String(format: "%.1f", group.latencyP50),
                String(format: "%.1f", group.latencyP95), "\(group.failovers)", "\(group.errors)",
            ])
        }
        let widths = (0..<header.count).map { column in rows.map { $0[column].count }.max() ?? 0 }
        for (index, row) in rows.enumerated() {
            lines.append(
                row.enumerated().map { column, cell in
                    column == 0
                        ? cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
                        : String(repeating: " ", count: widths[column] - cell.count) + cell
                }.joined(separator: "  ")
            )
            if index == 0 { lines.append(widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")) }
        }
        if groups.isEmpty { lines.append("(no requests in this period)") }
        let total = groups.reduce(0) { $0 + $1.costUSD }
        lines.append("")
        lines.append(String(format: "total: %d requests, $%.4f", groups.reduce(0) { $0 + $1.requests }, total))
        if let top = groups.first, grouping != .day {
            lines.append(String(format: "top spender: %@ ($%.4f)", top.group, top.costUSD))
        }
        if let model = topModels.first {
            lines.append(
                String(
                    format: "most expensive model: %@ ($%.4f over %d requests)", model.group, model.costUSD,
                    model.requests))
        }
        let students = groups.filter { $0.student != nil }
        if grouping == .route, !students.isEmpty {
            lines.append("students:")
            for group in students {
                guard let figures = group.student else { continue }
                let (low, high) = figures.agreement.interval
                var line = String(
                    format: "  %@: %d of %d requests answered by the student (%.1f%%), %d shadow checks", group.group,
                    figures.studentRequests, group.requests, figures.studentShare * 100, figures.shadowRequests)
                if figures.agreement.count > 0 {
                    line += String(format: ", agreement %.3f [%.3f, %.3f]", figures.agreement.value, low, high)
                }
                if figures.teacherCostBasis != "none" {
                    line += String(
                        format: ", teacher spend saved $%.4f (teacher cost from %@)", figures.teacherUSDSaved,
                        figures.teacherCostBasis == "shadow" ? "shadow calls" : "teacher-served requests")
                }
                lines.append(line)
            }
        }
        if !longestSessions.isEmpty {
            lines.append("longest sessions:")
            for session in longestSessions.prefix(5) {
                lines.append(
                    String(
                        format: "  %@ (%@): %.0f s, %d requests, $%.4f", session.session, session.user, session.seconds,
                        session.requests, session.spendUSD
                    )
                )
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

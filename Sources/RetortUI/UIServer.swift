import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import RetortData
import RetortHistory
import RetortReports
import RetortSearch
import RetortTeacher
import RetortUsage

/// The spend views' CSS, from the gateway dashboard.
enum SpendStyle {
    static let css = SpendView.style
}

/// `retort ui`: a local web app over the results folder, the history and (optionally) a gateway's ledger.
public struct UIServer: Sendable {
    /// The results folder searched for run folders.
    public var results: URL
    /// The gateway config whose ledger the spend page reads.
    public var gatewayConfig: String?
    /// The history store.
    public var historyPath: String
    /// How often the event stream looks at a journal for new lines (the runs list's stream: 4× as long).
    public var pollInterval: Duration
    /// How long the runs list's event stream stays open; the browser then reconnects (a stream per open tab, none
    /// left behind by a tab that went away).
    public var listStreamLifetime: Duration

    /// A server over `results`.
    public init(
        results: URL, gatewayConfig: String? = nil, historyPath: String, pollInterval: Duration = .milliseconds(250),
        listStreamLifetime: Duration = .seconds(300)
    ) {
        self.results = results.standardizedFileURL
        self.gatewayConfig = gatewayConfig
        self.historyPath = historyPath
        self.pollInterval = pollInterval
        self.listStreamLifetime = listStreamLifetime
    }

    /// Every page and endpoint.
    public func router() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.get("/") { _, _ in
            html(
                Pages.page(
                    title: "Runs", current: "Runs",
                    body: Pages.runsList(RunIndex.scan(root: results), root: results, now: Date()),
                    script: Pages.runsScript))
        }
        router.get("/runs/events") { _, _ in runEvents() }
        router.get("/run") { request, _ in
            guard let entry = entry(request) else { return notFound("no such run") }
            let (report, pipeline) = load(entry)
            let body = Pages.runPage(
                entry: entry, report: report, pipeline: pipeline, now: Date().timeIntervalSince1970)
            return html(
                Pages.page(
                    title: "\(entry.job) \(entry.runId)", current: "Runs", body: body,
                    script: report == nil ? Pages.liveScript(path: entry.path) : ""))
        }
        router.get("/run/pipeline") { request, _ in
            guard let entry = entry(request) else { return notFound("no such run") }
            let (_, pipeline) = load(entry)
            return html(Pages.pipelineView(pipeline, now: Date().timeIntervalSince1970))
        }
        router.get("/events") { request, _ in
            guard let entry = entry(request) else { return notFound("no such run") }
            return events(entry)
        }
        router.get("/api/runs") { _, _ in
            let runs: [JSON] = RunIndex.scan(root: results).map { entry in
                var object: [String: JSON] = [
                    "path": .string(entry.path), "job": .string(entry.job), "run_id": .string(entry.runId),
                    "finished": .bool(entry.finished),
                ]
                if entry.finished, let report = try? entry.report() {
                    let summary = Pages.summary(report)
                    object["task"] = .string(report.task)
                    object["strategy"] = .string(report.search.strategy)
                    object["recommendation"] = .string(summary.recommendation)
                    object["savings"] = .string(summary.savings)
                }
                return .object(object)
            }
            return json(.array(runs))
        }
        router.get("/api/run") { request, _ in
            guard let entry = entry(request) else { return notFound("no such run") }
            let (_, pipeline) = load(entry)
            let rungs: [JSON] = pipeline.rungs.map { rung in
                [
                    "rung": .int(rung.index), "fidelity": .number(rung.fidelity),
                    "trials": .array(
                        rung.trials.map { ["candidate": .string($0.candidate), "state": .string($0.state.rawValue)] }),
                ]
            }
            let stages: [JSON] = pipeline.stages.map { stage in
                [
                    "name": .string(stage.name), "started": stage.started.map { .number($0) } ?? .null,
                    "ended": stage.ended.map { .number($0) } ?? .null,
                ]
            }
            return json([
                "path": .string(entry.path), "finished": .bool(pipeline.finished), "done": .int(pipeline.done),
                "queued": .int(pipeline.queued), "stages": .array(stages), "rungs": .array(rungs),
            ])
        }
        router.get("/compare") { request, _ in
            let entries = RunIndex.scan(root: results)
            let a = request.uri.queryParameters["a"].flatMap { RunIndex.entry(root: results, path: String($0)) }
            let b = request.uri.queryParameters["b"].flatMap { RunIndex.entry(root: results, path: String($0)) }
            return html(
                Pages.page(title: "Compare", current: "Compare", body: Pages.comparePage(entries: entries, a: a, b: b)))
        }
        router.get("/history") { _, _ in
            var export: HistoryExport?
            var problem: String?
            if FileManager.default.fileExists(atPath: historyPath) {
                do throws(HistoryError) { export = try HistoryStore(path: historyPath).exportAll() } catch {
                    problem = error.description
                }
            }
            return html(
                Pages.page(
                    title: "History", current: "History",
                    body: Pages.historyPage(export, path: historyPath, error: problem)))
        }
        router.get("/spend") { _, _ in
            var body = "<h1>Spend</h1>"
            if let gatewayConfig {
                do {
                    let config = try GatewayConfig.load(gatewayConfig)
                    body +=
                        "<p class=\"meta\">The gateway ledger of <code>\(Pages.escape(gatewayConfig))</code>, last 30 days; "
                    body += "breaker states live in the gateway process (its /dashboard shows them).</p>"
                    body += try SpendView.html(config: config)
                } catch {
                    body += "<section><p>\(Pages.escape("\(error)"))</p></section>"
                }
            } else {
                body +=
                    "<section><p>Start the UI with <code>--gateway-config gateway.yaml</code> to see the gateway's spend, "
                body += "and per route whether a student serves it, its agreement and the savings.</p></section>"
            }
            return html(Pages.page(title: "Spend", current: "Spend", body: body, style: SpendStyle.css))
        }
        return router
    }

    /// Serves until SIGTERM/SIGINT.
    public func serve(host: String, port: Int, onRunning: @escaping @Sendable (Int) async -> Void) async throws {
        var logger = Logger(label: "retort.ui")
        logger.logLevel = .warning
        let app = Application(
            router: router(),
            configuration: .init(address: .hostname(host, port: port), serverName: "retort-ui"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? port) },
            logger: logger)
        try await app.runService()
    }

    // MARK: - Helpers

    func entry(_ request: Request) -> RunEntry? {
        guard let path = request.uri.queryParameters["path"] else { return nil }
        return RunIndex.entry(root: results, path: String(path))
    }

    func load(_ entry: RunEntry) -> (RunReport?, Pipeline) {
        let report = entry.finished ? try? entry.report() : nil
        let records = (try? JournalRecord.read(entry.journal)) ?? []
        let ended =
            report == nil
            ? nil
            : (try? entry.folder.appendingPathComponent("report.json").resourceValues(forKeys: [
                .contentModificationDateKey
            ]))?.contentModificationDate?.timeIntervalSince1970
        let pipeline = Pipeline(
            records: records, started: entry.started?.timeIntervalSince1970, ended: ended, report: report)
        return (report, pipeline)
    }

    /// Server-sent events: one `record` event per journal line (the line as data, its number as id), as the search
    /// appends them, then `done` with the finished run's path once the folder is in place.
    func events(_ entry: RunEntry) -> Response {
        let interval = pollInterval
        let root = results
        let body = ResponseBody { writer in
            guard let handle = FileHandle(forReadingAtPath: entry.journal.path) else {
                try await writer.write(ByteBuffer(string: "event: error\ndata: {\"error\":\"no journal\"}\n\n"))
                try await writer.finish(nil)
                return
            }
            defer { try? handle.close() }
            var pending = Data()
            var line = 0
            var quiet = Duration.zero
            let finalPath = RunIndex.finalPath(of: entry.path)
            let final = root.appendingPathComponent(finalPath)
            while true {
                let chunk = handle.readDataToEndOfFile()
                if !chunk.isEmpty {
                    pending.append(chunk)
                    var text = ""
                    while let newline = pending.firstIndex(of: 0x0A) {
                        let bytes = pending[pending.startIndex..<newline]
                        pending.removeSubrange(pending.startIndex...newline)
                        line += 1
                        text += "id: \(line)\nevent: record\ndata: \(String(decoding: bytes, as: UTF8.self))\n\n"
                    }
                    if !text.isEmpty {
                        try await writer.write(ByteBuffer(string: text))
                        quiet = .zero
                    }
                }
                // Done when the run folder is in place with its report (a partial folder is renamed when it finishes).
                if FileManager.default.fileExists(atPath: final.appendingPathComponent("report.json").path),
                    !FileManager.default.fileExists(atPath: root.appendingPathComponent(entry.path).path)
                        || entry.path == finalPath
                {
                    let data = JSON(dictionaryLiteral: ("path", .string(finalPath)), ("records", .int(line))).text
                    try await writer.write(ByteBuffer(string: "event: done\ndata: \(data)\n\n"))
                    try await writer.finish(nil)
                    return
                }
                try await Task.sleep(for: interval)
                quiet += interval
                if quiet >= .seconds(15) {
                    // Keeps proxies from closing an idle stream and notices a client that went away.
                    try await writer.write(ByteBuffer(string: ": waiting for the search\n\n"))
                    quiet = .zero
                }
            }
        }
        return Response(
            status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
    }
}

extension UIServer {
    /// Server-sent events for the runs list: first a `run` event per run folder, then one whenever a run folder
    /// appears or its row changes (running → finished or interrupted), each with the run's key (where it ends up,
    /// `JOB/RUN-ID`), its id and its table row; `gone` with the key when a folder goes. The stream ends after
    /// `listStreamLifetime`, and `retry` has the browser reconnect a second later.
    func runEvents() -> Response {
        let (root, interval, lifetime) = (results, pollInterval * 4, listStreamLifetime)
        let body = ResponseBody { writer in
            let clock = ContinuousClock()
            let end = clock.now + lifetime
            // Rows sent, by key; details (a report or a journal header, read once) by folder and state.
            var sent: [String: String] = [:]
            var details: [String: Pages.RunDetails] = [:]
            var quiet = Duration.zero
            try await writer.write(ByteBuffer(string: "retry: 1000\n\n"))
            while true {
                let now = Date()
                var rows: [String: String] = [:]
                var text = ""
                for entry in RunIndex.scan(root: root) {
                    let key = RunIndex.finalPath(of: entry.path)
                    let cacheKey = "\(entry.path)#\(entry.finished)"
                    let known = details[cacheKey] ?? Pages.RunDetails(entry)
                    if known.read { details[cacheKey] = known }
                    let row = Pages.runRow(entry, details: known, now: now)
                    rows[key] = row
                    if sent[key] != row {
                        let data: JSON = ["key": .string(key), "id": .string(entry.runId), "row": .string(row)]
                        text += "event: run\ndata: \(data.text)\n\n"
                    }
                }
                for key in sent.keys.sorted() where rows[key] == nil {
                    text += "event: gone\ndata: \(JSON(dictionaryLiteral: ("key", .string(key))).text)\n\n"
                }
                sent = rows
                if !text.isEmpty {
                    try await writer.write(ByteBuffer(string: text))
                    quiet = .zero
                }
                if clock.now >= end {
                    try await writer.finish(nil)
                    return
                }
                try await Task.sleep(for: interval)
                quiet += interval
                if quiet >= .seconds(15) {
                    // Keeps proxies from closing an idle stream and notices a client that went away.
                    try await writer.write(ByteBuffer(string: ": no change\n\n"))
                    quiet = .zero
                }
            }
        }
        return Response(
            status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
    }
}

func html(_ text: String) -> Response {
    Response(
        status: .ok, headers: [.contentType: "text/html; charset=utf-8"],
        body: .init(byteBuffer: ByteBuffer(string: text)))
}

func json(_ value: JSON) -> Response {
    Response(
        status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(data: value.data)))
}

func notFound(_ message: String) -> Response {
    Response(
        status: .notFound, headers: [.contentType: "text/html; charset=utf-8"],
        body: .init(
            byteBuffer: ByteBuffer(
                string: Pages.page(
                    title: "Not found", current: "",
                    body: "<h1>Not found</h1><p>\(Pages.escape(message)); <a href=\"/\">all runs</a>.</p>"))))
}

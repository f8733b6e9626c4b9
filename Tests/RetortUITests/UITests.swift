import Foundation
import Hummingbird
import HummingbirdTesting
import RetortData
import RetortHistory
import RetortReports
import RetortSearch
import RetortTestSupport
import Testing

@testable import RetortUI

/// A results folder with one run in progress, written record by record as a search would.
struct FakeRun {
    let root: URL
    let partial: URL
    let path = "job/20261130-101500.partial"

    init() throws {
        root = SyntheticTasks.temporaryFolder().appendingPathComponent("results")
        partial = root.appendingPathComponent(path)
        try FileManager.default.createDirectory(at: partial, withIntermediateDirectories: true)
        #expect(
            FileManager.default.createFile(atPath: partial.appendingPathComponent("journal.jsonl").path, contents: nil))
    }

    static let start = 1_796_033_700.0

    /// The lines a halving search over three candidates writes, in order.
    static let lines: [String] = [
        #"{"job":"job","options":{"strategy":"halving"},"source":"tasks/intents","type":"header","version":1}"#,
        #"{"phase":"evaluate the teacher","time":1796033700.5,"type":"phase"}"#,
        #"{"phase":"featurize 300/100/100 rows","time":1796033701,"type":"phase"}"#,
        #"{"phase":"halving: 3 feasible candidates in 3 training runs, 2 rung(s), 2 worker(s), budget 600 s","time":1796033702,"type":"phase"}"#,
        #"{"candidates":["a","b","c"],"fidelity":0.333,"rung":0,"time":1796033702.5,"type":"queue"}"#,
        #"{"candidates":["a"],"group":"a","rung":0,"time":1796033702.6,"type":"start"}"#,
        #"{"candidates":["b"],"group":"b","rung":0,"time":1796033702.7,"type":"start"}"#,
        #"{"candidate":"a","finished":false,"metrics":{"accuracy":{"ci95":[0.8,0.9],"value":0.85}},"rung":0,"train_seconds":0.5,"type":"rung"}"#,
        #"{"candidates":["c"],"group":"c","rung":0,"time":1796033703.2,"type":"start"}"#,
        #"{"candidate":"b","finished":false,"metrics":{"accuracy":{"ci95":[0.7,0.8],"value":0.75}},"rung":0,"train_seconds":0.6,"type":"rung"}"#,
        #"{"candidate":"c","finished":false,"metrics":{"accuracy":{"ci95":[0.6,0.7],"value":0.65}},"rung":0,"train_seconds":0.4,"type":"rung"}"#,
        #"{"candidates":["a"],"fidelity":1,"rung":1,"time":1796033704,"type":"queue"}"#,
        #"{"candidates":["a"],"group":"a","rung":1,"time":1796033704.1,"type":"start"}"#,
    ]

    func append(_ lines: ArraySlice<String>) throws {
        let handle = try FileHandle(forWritingTo: partial.appendingPathComponent("journal.jsonl"))
        handle.seekToEndOfFile()
        handle.write(Data(lines.map { $0 + "\n" }.joined().utf8))
        try handle.close()
    }

    var entry: RunEntry? { RunIndex.entry(root: root, path: path) }
}

@Suite struct UITests {
    @Test("the journal's progress records become stages with times and trial tiles: queued, running, done, pruned")
    func pipelineStates() throws {
        let run = try FakeRun()
        try run.append(FakeRun.lines[0..<7])
        var pipeline = Pipeline(
            records: try JournalRecord.read(try #require(run.entry).journal), started: FakeRun.start, ended: nil,
            report: nil)
        #expect(pipeline.rungs.count == 1)
        #expect(pipeline.rungs[0].trials.map(\.state) == [.running, .running, .queued])
        #expect(pipeline.stages.map(\.name).prefix(4) == ["load", "featurize", "candidate space", "train: rungs"])
        #expect(pipeline.stages[1].started == 1_796_033_701 && pipeline.stages[1].ended == 1_796_033_702)
        #expect(pipeline.stages[3].started == 1_796_033_702.5 && pipeline.stages[3].ended == nil, "training runs")
        #expect(pipeline.stages[4].started == nil)

        try run.append(FakeRun.lines[7...])
        pipeline = Pipeline(
            records: try JournalRecord.read(try #require(run.entry).journal), started: FakeRun.start, ended: nil,
            report: nil)
        #expect(pipeline.rungs.map(\.trials.count) == [3, 1])
        #expect(pipeline.rungs[0].trials.map(\.state) == [.done, .pruned, .pruned], "b and c did not go on")
        #expect(pipeline.rungs[0].trials[0].metric == 0.85 && pipeline.rungs[0].trials[0].seconds == 0.5)
        #expect(pipeline.rungs[1].trials.map(\.state) == [.running])
        #expect(pipeline.done == 3 && pipeline.queued == 4)
        let left = try #require(pipeline.remaining(now: FakeRun.start + 5))
        #expect(approximatelyEqual(left, 2.5 / 3, within: 1e-6), "the queued trial at the pace of the finished ones")
    }

    @Test("routes: the runs list, the run's live page, its pipeline fragment and JSON, 404 for other paths")
    func routes() async throws {
        let run = try FakeRun()
        try run.append(FakeRun.lines[...])
        let server = UIServer(results: run.root, historyPath: run.root.appendingPathComponent("none.sqlite").path)
        try await Application(router: server.router()).test(.router) { client in
            let list = try await client.execute(uri: "/", method: .get)
            #expect(list.status == .ok)
            let listHTML = String(buffer: list.body)
            #expect(listHTML.contains("/run?path=job/20261130-101500.partial"))
            #expect(
                listHTML.contains("tasks/intents") == false && listHTML.contains(">intents<"), "task from the header")
            #expect(listHTML.contains("halving"))

            let page = try await client.execute(uri: "/run?path=\(run.path)", method: .get)
            let pageHTML = String(buffer: page.body)
            #expect(pageHTML.contains("data-candidate=\"a\" data-state=\"done\""))
            #expect(pageHTML.contains("data-candidate=\"b\" data-state=\"pruned\""))
            #expect(pageHTML.contains("new EventSource('/events?path='"), "the live page listens to the journal")
            #expect(!pageHTML.contains("http://") && !pageHTML.contains("https://"), "nothing from the network")

            let fragment = try await client.execute(uri: "/run/pipeline?path=\(run.path)", method: .get)
            #expect(String(buffer: fragment.body).hasPrefix("<p><b>3</b> of 4 queued trials done"))

            let state = try await client.execute(uri: "/api/run?path=\(run.path)", method: .get)
            let object = try #require(
                try JSONSerialization.jsonObject(with: Data(buffer: state.body)) as? [String: Any])
            #expect(object["done"] as? Int == 3 && object["queued"] as? Int == 4)
            #expect(object["finished"] as? Bool == false)

            for uri in ["/run?path=job/../../etc", "/run?path=nope", "/events?path="] {
                #expect(try await client.execute(uri: uri, method: .get).status == .notFound, "\(uri)")
            }
            let history = try await client.execute(uri: "/history", method: .get)
            #expect(String(buffer: history.body).contains("The history is empty"))
            let spend = try await client.execute(uri: "/spend", method: .get)
            #expect(String(buffer: spend.body).contains("--gateway-config"))
        }
    }

    @Test("the event stream sends one event per journal record as the search appends them, then done")
    func eventStream() async throws {
        let run = try FakeRun()
        try run.append(FakeRun.lines[0..<3])
        let server = UIServer(
            results: run.root, historyPath: run.root.appendingPathComponent("none.sqlite").path,
            pollInterval: .milliseconds(20))
        try await Application(router: server.router()).test(.live) { client in
            let writer = Task {
                for line in FakeRun.lines[3...] {
                    try await Task.sleep(for: .milliseconds(30))
                    try run.append([line])
                }
                // The search finishes: the folder is renamed into place with its report.
                try await Task.sleep(for: .milliseconds(30))
                let final = run.root.appendingPathComponent("job/20261130-101500")
                try FileManager.default.moveItem(at: run.partial, to: final)
                try Data("{}".utf8).write(to: final.appendingPathComponent("report.json"))
            }
            // A raw reader that waits as long as a starved test process needs (the test client gives up after 20 s
            // without a byte).
            let stream = try EventReader(port: try #require(client.port), path: "/events?path=\(run.path)")
            let response = try #require(await stream.body(through: "event: done\ndata: "), "the stream ends with done")
            try await writer.value
            #expect(response.headers.lowercased().contains("content-type: text/event-stream"))
            let events = response.body.components(separatedBy: "\n\n").filter { !$0.isEmpty }
            let records = events.filter { $0.contains("event: record") }
            #expect(records.count == FakeRun.lines.count, "one event per journal record")
            for (index, event) in records.enumerated() {
                #expect(event == "id: \(index + 1)\nevent: record\ndata: \(FakeRun.lines[index])")
            }
            let done = try #require(events.last)
            #expect(done.hasPrefix("event: done\ndata: "))
            #expect(done.contains("\"path\":\"job/20261130-101500\""))
        }
    }

    @Test(
        "the runs list's stream sends every run, then a run folder that appears (running), the same row again when it finishes, and gone when a folder goes"
    )
    func runsListStream() async throws {
        let run = try FakeRun()
        try run.append(FakeRun.lines[...])
        // A real run, finished in a staging folder; during the stream it appears as a search in progress would (its
        // .partial folder with its journal), then finishes (the folder renamed into place with its report).
        let staging = SyntheticTasks.temporaryFolder().appendingPathComponent("job")
        let finished = try await finishedRun(in: staging)
        let runId = finished.lastPathComponent
        let partial = run.root.appendingPathComponent("job/\(runId).partial")
        let server = UIServer(
            results: run.root, historyPath: run.root.appendingPathComponent("none.sqlite").path,
            pollInterval: .milliseconds(20))
        try await Application(router: server.router()).test(.live) { client in
            // Each change is made once the stream has shown the one before: no step depends on timing.
            let stream = try EventReader(port: try #require(client.port), path: "/runs/events")
            let first = try #require(await stream.next(), "the list as it is, first")
            let fake = "job/20261130-101500"
            #expect(first.name == "run" && first.data["key"] == fake && first.data["row"]?.contains("halving") == true)

            try FileManager.default.createDirectory(at: partial, withIntermediateDirectories: true)
            try FileManager.default.copyItem(
                at: finished.appendingPathComponent("journal.jsonl"),
                to: partial.appendingPathComponent("journal.jsonl"))
            let key = "job/\(runId)"
            let appeared = try #require(await stream.next { $0.data["key"] == key }, "the new run folder shows up")
            #expect(appeared.name == "run" && appeared.data["key"] == "job/\(runId)" && appeared.data["id"] == runId)
            let row = appeared.data["row"] ?? ""
            #expect(row.contains("/run?path=job/\(runId).partial") && row.contains("badge running"), "\(row)")

            // The finished folder first, then the partial one goes (a search renames one into the other at once).
            try FileManager.default.moveItem(at: finished, to: run.root.appendingPathComponent("job/\(runId)"))
            try FileManager.default.removeItem(at: partial)
            let done = try #require(
                await stream.next { $0.data["key"] == key && $0.data["row"]?.contains(">finished<") == true },
                "the run's row changes when it finishes")
            #expect(done.name == "run" && done.data["key"] == "job/\(runId)")
            let doneRow = done.data["row"] ?? ""
            #expect(doneRow.contains("/run?path=job/\(runId)\"") && doneRow.contains(">finished<"), "\(doneRow)")
            #expect(doneRow.contains("student ") || doneRow.contains("keep the teacher"), "its recommendation")

            try FileManager.default.removeItem(at: run.partial)
            let gone = try #require(await stream.next { $0.name == "gone" }, "a folder that goes leaves the list")
            #expect(gone.name == "gone" && gone.data["key"] == fake)
        }
    }

    @Test("the runs page carries the live list's script, and an empty list has its table ready, hidden")
    func runsPageIsLive() async throws {
        let root = SyntheticTasks.temporaryFolder().appendingPathComponent("results")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let server = UIServer(results: root, historyPath: root.appendingPathComponent("none.sqlite").path)
        try await Application(router: server.router()).test(.router) { client in
            let page = String(buffer: try await client.execute(uri: "/", method: .get).body)
            #expect(page.contains("new EventSource('/runs/events')"))
            #expect(page.contains("<section id=\"no-runs\"><p>No runs yet"))
            #expect(page.contains("<section hidden><table class=\"sortable\" id=\"runs\">"))
        }
    }
}

/// A small learnable numeric task (120 / 60 / 60 rows): its folder and the loaded task.
func smallBlobs() throws -> (URL, TaskData) {
    let folder = try SyntheticTasks.writeTask(
        name: "blobs", kind: .numeric,
        train: SyntheticTasks.numericRows(count: 120, learnable: true, seed: 1, idPrefix: "tr"),
        validation: SyntheticTasks.numericRows(count: 60, learnable: true, seed: 2, idPrefix: "va"),
        test: SyntheticTasks.numericRows(count: 60, learnable: true, seed: 3, idPrefix: "te"))
    return (folder, try TaskData.load(Job(task: folder)))
}

/// A small search run to its finished run folder under `root` (as `retort search` leaves it).
func finishedRun(in root: URL) async throws -> URL {
    let (folder, task) = try smallBlobs()
    let catalog = try CandidateCatalog(
        try YAMLValue.parse("numeric:\n  - family: linear\n    precision: [fp32]\n    epochs: 5\n", file: "c.yaml"))
    let run = try RunDirectory.create(root: root)
    try FileManager.default.createDirectory(at: run.checkpoints, withIntermediateDirectories: true)
    let storage = RunStorage(
        journal: try Journal(url: run.partial.appendingPathComponent("journal.jsonl")), checkpoints: run.checkpoints,
        resume: nil, jobName: "job", source: folder.path, options: ["strategy": "exhaustive"])
    let outcome = try await SearchEngine.run(
        task: task, settings: SearchSettings(catalog: catalog, constraints: Constraints(maxDrop: 1), seed: 3),
        storage: storage)
    let report = RunReport(job: "job", runId: run.runId, createdAt: Date(), outcome: outcome)
    return try run.finish(report: report, outcome: outcome)
}

/// Reads a server-sent event stream over a plain socket, event by event (HummingbirdTesting's client returns a body
/// only once the response ends). Non-blocking reads with sleeps between them leave the test's threads free.
final class EventReader: @unchecked Sendable {
    // @unchecked: used by one test task at a time.
    private let socket: Int32
    private var buffer = ""

    struct Event {
        let name: String
        let data: [String: String]
    }

    init(port: Int, path: String) throws {
        socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        try #require(connected == 0, "connected to the test server")
        let request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
        _ = request.withCString { send(socket, $0, strlen($0), 0) }
        _ = fcntl(socket, F_SETFL, fcntl(socket, F_GETFL) | O_NONBLOCK)
    }

    /// The next `run` or `gone` event (its JSON data as strings), or nil after `timeout`. Comments, `retry` and the
    /// chunked encoding's size lines between events are skipped.
    func next(timeout: Duration = .seconds(300)) async -> Event? {
        let end = ContinuousClock.now + timeout
        while ContinuousClock.now < end {
            if let match = buffer.firstMatch(of: /event: (run|gone)\ndata: ([^\n]*)\n\n/) {
                buffer = String(buffer[match.range.upperBound...])
                let object = try? JSONSerialization.jsonObject(with: Data(match.2.utf8)) as? [String: String]
                return Event(name: String(match.1), data: object ?? [:])
            }
            await receive()
        }
        return nil
    }

    /// The response's headers and its de-chunked body once the body holds `marker` followed by a blank line, or
    /// nil after `timeout` (a bound for a starved test process, not a speed check).
    func body(through marker: String, timeout: Duration = .seconds(300)) async -> (headers: String, body: String)? {
        let end = ContinuousClock.now + timeout
        while ContinuousClock.now < end {
            if let split = buffer.range(of: "\r\n\r\n") {
                let headers = String(buffer[..<split.lowerBound])
                var rest = Substring(buffer[split.upperBound...])
                let chunked = headers.lowercased().contains("transfer-encoding: chunked")
                var body = chunked ? "" : String(rest)
                while chunked, let line = rest.range(of: "\r\n"),
                    let size = Int(rest[..<line.lowerBound], radix: 16),
                    rest.utf8.count >= rest.utf8.distance(from: rest.startIndex, to: line.upperBound) + size
                {
                    let start = line.upperBound
                    let stop = rest.utf8.index(start, offsetBy: size)
                    body += rest[start..<stop]
                    rest = rest[stop...].drop { $0 == "\r\n" || $0 == "\r" || $0 == "\n" }
                }
                if let found = body.range(of: marker), body[found.upperBound...].contains("\n\n") {
                    return (headers, body)
                }
            }
            await receive()
        }
        return nil
    }

    /// The next event that `wanted` accepts, skipping the others (rows of other runs change too while a loaded
    /// machine runs the test slowly: a stale `.partial` run turns interrupted), or nil after `timeout`.
    func next(timeout: Duration = .seconds(300), where wanted: (Event) -> Bool) async -> Event? {
        let end = ContinuousClock.now + timeout
        while ContinuousClock.now < end {
            guard let event = await next(timeout: end - ContinuousClock.now) else { return nil }
            if wanted(event) { return event }
        }
        return nil
    }

    /// Appends what the socket has to `buffer`, or waits 20 ms when it has nothing yet.
    private func receive() async {
        var bytes = [UInt8](repeating: 0, count: 65536)
        let count = recv(socket, &bytes, bytes.count, 0)
        if count > 0 {
            buffer += String(decoding: bytes[0..<count], as: UTF8.self)
        } else {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    deinit { Glibc.close(socket) }
}

@Suite struct HistoryCalibrationPageTests {
    /// A history export of `runs`, as `retort history export` writes one.
    static func export(_ runs: [HistoryRun]) throws -> HistoryExport {
        let encoded = try JSONSerialization.jsonObject(with: try JSONEncoder().encode(runs))
        return try JSONDecoder().decode(
            HistoryExport.self,
            from: try JSONSerialization.data(withJSONObject: [
                "format": HistoryStore.format, "version": HistoryStore.version, "runs": encoded,
            ]))
    }

    @Test(
        "the history page shows each past search's coverage of ± 2 sd and MAE, from report.json or, for older reports, from its candidates"
    )
    func coverageAndErrorPerRun() async throws {
        let (_, task) = try smallBlobs()
        var settings = SearchSettings(
            catalog: try CandidateCatalog(
                try YAMLValue.parse(
                    "numeric:\n  - {family: linear, precision: [fp32], epochs: 5}\n"
                        + "  - {family: mlp, hidden: [[16]], precision: [fp32], epochs: 5}\n", file: "c.yaml")),
            seed: 3, strategy: .exhaustive)
        // One prediction on the mark (wide), one far off (tight): one inside, one outside.
        let exhaustive = try await SearchEngine.run(task: task, settings: settings, storage: nil)
        for trial in exhaustive.trials {
            let gap = try #require(trial.differenceToTeacher?.value)
            settings.predictions[trial.id] = CandidatePrediction(
                gap: trial.family == .linear ? gap : gap + 0.5, gapSD: 0.01, latencyMsP50: nil, neighbours: 8)
        }
        let outcome = try await SearchEngine.run(task: task, settings: settings, storage: nil)
        let report = RunReport(job: "job", runId: "r1", createdAt: Date(timeIntervalSince1970: 0), outcome: outcome)
        let calibration = try #require(report.search.calibration)
        #expect(calibration.predicted == 2 && calibration.inside == 1)
        var older = RunReport(job: "job", runId: "r2", createdAt: Date(timeIntervalSince1970: 60), outcome: outcome)
        older.search.calibration = nil
        let meta = try MetaFeatures(task: task)
        let runs = [
            HistoryRun(id: "job/r1", taskId: "t", meta: meta, report: report, rungs: []),
            HistoryRun(id: "job/r2", taskId: "t", meta: meta, report: older, rungs: []),
        ]
        let export = try Self.export(runs)
        let page = Pages.historyPage(export, path: "h.sqlite", error: nil)
        #expect(page.contains("<th>MAE (mean |error|)</th><th>coverage (inside ± 2 sd)</th>"))
        let row = String(format: "<td>2</td><td>%.4f</td><td>50%%</td></tr>", calibration.mae)
        #expect(page.components(separatedBy: row).count == 3, "both runs, the older computed the same way")
        #expect(page.contains("Over all runs: 2 of 4 measured gaps inside the predicted ± 2 sd (50%"))
    }

    @Test("label and structured tasks get a table each, with their own meta-features")
    func structuredTasksTable() async throws {
        let (_, task) = try smallBlobs()
        let settings = SearchSettings(
            catalog: try CandidateCatalog(
                try YAMLValue.parse("numeric:\n  - {family: linear, precision: [fp32], epochs: 3}\n", file: "c.yaml")),
            seed: 3, strategy: .exhaustive)
        let outcome = try await SearchEngine.run(task: task, settings: settings, storage: nil)
        let labelReport = RunReport(
            job: "blobs", runId: "r1", createdAt: Date(timeIntervalSince1970: 0), outcome: outcome)
        var structuredReport = labelReport
        structuredReport.task = "extract-mini"
        let structured = try StructuredTaskData.load(folder: try SyntheticStructured.writeTask(sizes: (120, 40, 40)))
        let structuredMeta = MetaFeatures(structured: structured)
        let keys = try #require(structuredMeta.structured?.keys)
        let runs = [
            HistoryRun(id: "blobs/r1", taskId: "t", meta: try MetaFeatures(task: task), report: labelReport, rungs: []),
            HistoryRun(id: "extract/r1", taskId: "s", meta: structuredMeta, report: structuredReport, rungs: []),
        ]
        let export = try Self.export(runs)
        let page = Pages.historyPage(export, path: "h.sqlite", error: nil)
        let tables = page.components(separatedBy: "<h2>Structured tasks</h2>")
        #expect(tables.count == 2, "one structured table")
        #expect(
            tables[0].contains("<th>classes</th>") && !tables[0].contains("extract-mini"), "label table: labels only")
        #expect(tables[1].contains("<th>copied values</th>") && tables[1].contains("<td>extract-mini</td>"))
        #expect(tables[1].contains("<td>\(keys)</td>"), "the key count")
    }
}

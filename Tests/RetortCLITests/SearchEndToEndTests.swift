import Foundation
import RetortTestSupport
import Testing

#if canImport(FoundationXML)
    import FoundationXML
#endif

/// One search on a learnable numeric task, shared by the tests that inspect its outputs.
struct LearnableRun: Sendable {
    let workspace: Workspace
    let result: CommandResult
    let runFolder: URL

    static let shared = Task { () async throws -> LearnableRun in
        let workspace = try Workspace.numeric()
        workspace.removeAtExit()
        try workspace.write(Jobs.numeric(name: "learnable", task: "blobs"), to: "job.yaml")
        let result = try await workspace.retort("search", "job.yaml")
        guard result.exitCode == 0 else { throw SearchFailed(result: result) }
        return LearnableRun(workspace: workspace, result: result, runFolder: try workspace.runFolder(job: "learnable"))
    }

    struct SearchFailed: Error, CustomStringConvertible {
        let result: CommandResult
        var description: String { "retort search failed: \(result)" }
    }
}

/// `retort search` end to end: exit codes, stdout, the run folder and the exported model.
@Suite struct SearchEndToEndTests {
    @Test("a learnable task: exit 0, the frontier table, a student recommendation and every output file")
    func learnableTask() async throws {
        let run = try await LearnableRun.shared.value
        #expect(run.result.exitCode == 0)
        #expect(run.result.stdout.contains("| candidate |"), "\(run.result)")
        #expect(run.result.stdout.contains("Recommendation: distill"), "\(run.result)")
        #expect(run.result.stdout.contains("run: results/learnable/\(run.runFolder.lastPathComponent)"))

        let report = try Report(runFolder: run.runFolder)
        #expect(report.kind == "student", "reason: \(report.reason)")
        let candidate = try #require(report.candidate)
        let trial = try #require(report.candidates.first { $0["id"] as? String == candidate })
        #expect(trial["status"] as? String == "complete")
        #expect(report.candidates.count == 3)
        #expect(report.recommendationTestValue("accuracy") != nil)

        let files = [
            "report.json", "frontier.md", "candidates.csv", "journal.jsonl", "model/model.safetensors",
            "model/model.json",
        ]
        for file in files {
            #expect(FileManager.default.fileExists(atPath: run.runFolder.appendingPathComponent(file).path), "\(file)")
        }
        let journal = try String(contentsOf: run.runFolder.appendingPathComponent("journal.jsonl"), encoding: .utf8)
        let journalLines = journal.split(separator: "\n")
        #expect(journalLines.first?.contains(#""type":"header""#) == true, "the journal starts with its header")
        #expect(journalLines.filter { $0.contains(#""type":"rung""#) }.count == 3, "one rung record per candidate")
        #expect(!FileManager.default.fileExists(atPath: run.runFolder.appendingPathComponent("checkpoints").path))
        let csv = try String(contentsOf: run.runFolder.appendingPathComponent("candidates.csv"), encoding: .utf8)
        let csvLines = csv.split(separator: "\n")
        #expect(csvLines.count == 4, "a header and one row per candidate")
        #expect(csvLines.first?.hasPrefix("id,family,precision,status") == true)
        let frontier = try String(contentsOf: run.runFolder.appendingPathComponent("frontier.md"), encoding: .utf8)
        #expect(frontier.contains("\(candidate) ★"))

        let results = run.workspace.url("results/learnable")
        let latest = results.appendingPathComponent("latest")
        #expect(latest.resolvingSymlinksInPath().path == run.runFolder.resolvingSymlinksInPath().path)
        #expect(FileManager.default.fileExists(atPath: latest.appendingPathComponent("report.json").path))
        let entries = try FileManager.default.contentsOfDirectory(atPath: results.path)
        #expect(!entries.contains { $0.hasSuffix(".partial") }, "left over: \(entries)")
    }

    @Test("retort recommend re-decides a finished run under new constraints, without training")
    func whatIf() async throws {
        let run = try await LearnableRun.shared.value
        let folder = run.runFolder.path
        let tiny = try await run.workspace.retort("recommend", folder, "--max-size", "10")
        #expect(tiny.exitCode == 0, "\(tiny)")
        #expect(tiny.stdout.contains("Recommendation: no distillation. no student fits in 10 B"), "\(tiny.stdout)")
        #expect(tiny.stdout.contains("changed from distill into `"), "\(tiny.stdout)")
        #expect(tiny.stdout.contains("to no distillation"), "\(tiny.stdout)")
        let same = try await run.workspace.retort("recommend", folder)
        #expect(same.stdout.contains("Compared with the run: unchanged"), "\(same.stdout)")
        let bad = try await run.workspace.retort("recommend", folder, "--metric", "f2")
        #expect(bad.exitCode == 64, "\(bad)")
        let device = try await run.workspace.retort(
            "recommend", folder, "--device", "edge-cpu", "--max-latency-ms", "0.000001")
        #expect(device.exitCode == 0, "\(device)")
        #expect(device.stdout.contains("no student meets the estimated edge-cpu p50"), "\(device.stdout)")
        let unknown = try await run.workspace.retort("recommend", folder, "--device", "toaster")
        #expect(unknown.exitCode == 64, "\(unknown)")
    }

    @Test("report.html is one well-formed, self-contained file with one plot point per candidate per plot")
    func htmlReport() async throws {
        let run = try await LearnableRun.shared.value
        let data = try Data(contentsOf: run.runFolder.appendingPathComponent("report.html"))
        let parser = XMLParser(data: data)
        let counter = PointCounter()
        parser.delegate = counter
        #expect(parser.parse(), "report.html must parse: \(parser.parserError.map { "\($0)" } ?? "")")
        let report = try Report(runFolder: run.runFolder)
        let trained = report.candidates.filter { ($0["metrics"] as? [String: Any])?.isEmpty == false }.count
        #expect(trained == 3)
        #expect(counter.points == 2 * trained, "one point per candidate in each of the two plots")
        #expect(counter.plots == 2)
        let text = String(decoding: data, as: UTF8.self)
        // Nothing loaded from anywhere: the only URLs are the XHTML and SVG namespace names.
        let withoutNamespaces = text.replacingOccurrences(of: "http://www.w3.org/", with: "")
        #expect(!withoutNamespaces.contains("http") && !text.contains("src=\""))
        #expect(text.contains("Recommendation: distill into"))
    }

    @Test("--json prints parseable JSON on stdout for every command, progress on stderr")
    func jsonOutputs() async throws {
        let run = try await LearnableRun.shared.value
        let folder = run.runFolder.path
        func object(_ result: CommandResult) throws -> Any {
            try JSONSerialization.jsonObject(with: Data(result.stdout.utf8))
        }
        let frontier = try await run.workspace.retort("frontier", folder, "--json")
        #expect((try object(frontier) as? [String: Any])?["recommendation"] != nil, "\(frontier)")
        let recommend = try await run.workspace.retort("recommend", folder, "--json", "--max-size", "10")
        #expect((try object(recommend) as? [String: Any])?["kind"] as? String == "no-distillation", "\(recommend)")
        let compare = try await run.workspace.retort("compare", folder, folder, "--json")
        #expect(((try object(compare) as? [String: Any])?["joined"] as? [String]) == [], "\(compare)")
        let candidates = try await run.workspace.retort("candidates", "job.yaml", "--json")
        #expect((try object(candidates) as? [[String: Any]])?.count == 3, "\(candidates)")
        let predict = try await run.workspace.retort(
            "predict", "\(folder)/model", "--input", "blobs/test.jsonl", "--json")
        #expect((try object(predict) as? [String: Any])?["accuracy"] != nil, "\(predict)")
        let search = try await run.workspace.retort("search", "job.yaml", "--json", "--out", "results/json")
        #expect(search.exitCode == 0)
        let report = try object(search) as? [String: Any]
        #expect((report?["candidates"] as? [Any])?.count == 3, "stdout must be the report alone")
        #expect(search.stderr.contains("[phase]"), "progress goes to stderr with --json")
    }

    @Test("model.safetensors is an 8-byte little-endian header length, a JSON header, and tensors covering the rest")
    func safetensorsLayout() async throws {
        let run = try await LearnableRun.shared.value
        let data = try Data(contentsOf: run.runFolder.appendingPathComponent("model/model.safetensors"))
        try #require(data.count > 8)
        let bytes = [UInt8](data)
        let headerLength = (0..<8).reduce(0) { $0 | Int(bytes[$1]) << (8 * $1) }
        try #require(headerLength > 0 && 8 + headerLength <= bytes.count, "header length \(headerLength)")
        let headerData = Data(bytes[8..<(8 + headerLength)])
        let header = try #require(try JSONSerialization.jsonObject(with: headerData) as? [String: Any])
        let bodyLength = bytes.count - 8 - headerLength
        var ranges: [(begin: Int, end: Int)] = []
        for (name, value) in header where name != "__metadata__" {
            let entry = try #require(value as? [String: Any], "\(name)")
            let offsets = try #require(entry["data_offsets"] as? [Int], "\(name)")
            let shape = try #require(entry["shape"] as? [Int], "\(name)")
            let dtype = try #require(entry["dtype"] as? String, "\(name)")
            try #require(offsets.count == 2)
            let width = try #require(["F32": 4, "I8": 1, "F16": 2, "BF16": 2, "I32": 4][dtype], "dtype \(dtype)")
            #expect(offsets[1] - offsets[0] == shape.reduce(1, *) * width, "\(name): bytes match shape and dtype")
            ranges.append((offsets[0], offsets[1]))
        }
        #expect(!ranges.isEmpty)
        ranges.sort { $0.begin < $1.begin }
        var position = 0
        for range in ranges {
            #expect(range.begin == position, "tensors are contiguous, without gaps or overlaps")
            position = range.end
        }
        #expect(position == bodyLength, "the tensors cover the file exactly")
    }

    @Test("retort predict on the test rows prints the accuracy report.json gives for the recommendation")
    func predictMatchesReport() async throws {
        let run = try await LearnableRun.shared.value
        let report = try Report(runFolder: run.runFolder)
        let expected = try #require(report.recommendationTestValue("accuracy"))
        let model = "results/learnable/\(run.runFolder.lastPathComponent)/model"
        let result = try await run.workspace.retort("predict", model, "--input", "blobs/test.jsonl")
        #expect(result.exitCode == 0, "\(result)")
        let line = try #require(result.stdout.split(separator: "\n").first { $0.hasPrefix("accuracy: ") }, "\(result)")
        let printed = try #require(Double(line.dropFirst("accuracy: ".count).prefix { $0 != " " }))
        #expect(String(format: "%.4f", printed) == String(format: "%.4f", expected), "\(line) vs \(expected)")
        #expect(line.hasSuffix("/150 rows with gold)"))
        #expect(result.stdout.contains("agreement: "))
    }

    @Test("retort frontier on a finished run prints the same table as frontier.md")
    func frontierOfFinishedRun() async throws {
        let run = try await LearnableRun.shared.value
        let result = try await run.workspace.retort("frontier", "results/learnable/latest")
        #expect(result.exitCode == 0, "\(result)")
        #expect(result.stdout.contains("| candidate |"))
        let frontier = try String(contentsOf: run.runFolder.appendingPathComponent("frontier.md"), encoding: .utf8)
        #expect(result.stdout.trimmingCharacters(in: .newlines) == frontier.trimmingCharacters(in: .newlines))
    }

    @Test("an unlearnable task (teacher = gold = random): no distillation, the drop named, no model")
    func unlearnableTask() async throws {
        let workspace = try Workspace.numeric(name: "noise", learnable: false)
        try workspace.write(Jobs.linearOnly(name: "noise", task: "noise"), to: "job.yaml")
        let result = try await workspace.retort("search", "job.yaml")
        #expect(result.exitCode == 0, "\(result)")
        #expect(result.stdout.contains("Recommendation: no distillation"), "\(result)")
        let runFolder = try workspace.runFolder(job: "noise")
        let report = try Report(runFolder: runFolder)
        #expect(report.kind == "no-distillation")
        #expect(report.recommendation["candidate"] is NSNull, "candidate is null")
        #expect(report.reason.contains("drop"), "\(report.reason)")
        #expect(!FileManager.default.fileExists(atPath: runFolder.appendingPathComponent("model").path))
    }

    @Test("--max-size 10 skips every candidate: no distillation because nothing fits")
    func maxSizeSkipsEverything() async throws {
        let workspace = try Workspace.numeric(name: "tiny")
        try workspace.write(Jobs.numeric(name: "tiny", task: "tiny"), to: "job.yaml")
        let result = try await workspace.retort("search", "job.yaml", "--max-size", "10")
        #expect(result.exitCode == 0, "\(result)")
        let runFolder = try workspace.runFolder(job: "tiny")
        let report = try Report(runFolder: runFolder)
        #expect(report.kind == "no-distillation")
        #expect(report.candidates.count == 3)
        #expect(report.candidates.allSatisfy { $0["status"] as? String == "skipped" })
        #expect(report.reason.contains("fits") && report.reason.contains("10 B"), "\(report.reason)")
        #expect(!FileManager.default.fileExists(atPath: runFolder.appendingPathComponent("model").path))
    }

    @Test("a text task with an inline text catalog recommends a student")
    func textTask() async throws {
        let workspace = try Workspace.intents()
        try workspace.write(Jobs.text(name: "intents", task: "intents"), to: "job.yaml")
        let result = try await workspace.retort("search", "job.yaml")
        #expect(result.exitCode == 0, "\(result)")
        #expect(result.stdout.contains("Recommendation: distill"), "\(result)")
        let runFolder = try workspace.runFolder(job: "intents")
        let report = try Report(runFolder: runFolder)
        #expect(report.kind == "student", "\(report.reason)")
        #expect(report.candidate?.hasPrefix("linear") == true)
        let weights = runFolder.appendingPathComponent("model/model.safetensors")
        #expect(FileManager.default.fileExists(atPath: weights.path))
        let predict = try await workspace.retort(
            "predict", "results/intents/latest/model", "--input", "intents/test.jsonl")
        #expect(predict.exitCode == 0, "\(predict)")
        #expect(predict.stdout.contains("accuracy: "))
    }
}

/// Counts plot points and plots in an XHTML report.
final class PointCounter: NSObject, XMLParserDelegate {
    var points = 0
    var plots = 0

    func parser(
        _ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?, qualifiedName: String?,
        attributes: [String: String] = [:]
    ) {
        if elementName == "circle" && attributes["class"] == "point" { points += 1 }
        if elementName == "svg" && attributes["class"] == "plot" { plots += 1 }
    }
}

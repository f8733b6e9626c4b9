import Foundation
import RetortTeacher
import RetortTestSupport
import Testing

/// `retort search` and `retort predict` on a structured task (FORMATS.md §9), end to end through the binary.
@Suite struct StructuredCommandTests {
    /// A workspace holding the synthetic structured task `structured-synthetic` and a job with a small catalog.
    static func workspace(maxDrop: Double = 0.2) throws -> Workspace {
        let task = try SyntheticStructured.writeTask()
        let workspace = Workspace(folder: task.deletingLastPathComponent())
        try workspace.write(
            """
            name: ha-mini
            data:
              task: structured-synthetic
            objective: {max_drop: \(maxDrop)}
            candidates:
              structured:
                - family: nearest
                  buckets_log2: [12, 14]
            """, to: "job.yaml")
        return workspace
    }

    @Test("search writes a structured run; predict answers {id, output} lines and reproduces the test figures")
    func searchAndPredict() async throws {
        let workspace = try Self.workspace()
        let result = try await workspace.retort("search", "job.yaml")
        #expect(result.exitCode == 0, "\(result)")
        #expect(result.stdout.contains("[load] structured task structured-synthetic"), "\(result)")
        #expect(result.stdout.contains("| candidate |") && result.stdout.contains("Recommendation: distill"))
        let run = try workspace.runFolder(job: "ha-mini")
        let report = try Report(runFolder: run)
        #expect(report.json["task_kind"] as? String == "structured")
        let teacher = try #require(report.json["teacher"] as? [String: Any])
        #expect((teacher["invalid_rows"] as? Int ?? 0) > 0)
        for file in ["frontier.md", "candidates.csv", "report.html", "model/model.json", "model/model.safetensors"] {
            #expect(FileManager.default.fileExists(atPath: run.appendingPathComponent(file).path), "\(file)")
        }
        let testMatch = try #require(report.recommendationTestValue("exact_match"))

        let predicted = try await workspace.retort(
            "predict", run.appendingPathComponent("model").path, "--input", "structured-synthetic/test.jsonl",
            "--out", "predictions.jsonl", "--json")
        #expect(predicted.exitCode == 0, "\(predicted)")
        let summary = try #require(
            try JSONSerialization.jsonObject(with: Data(predicted.stdout.utf8)) as? [String: Any])
        let exactMatch = try #require(summary["exact_match"] as? Double)
        #expect(abs(exactMatch - testMatch) < 1e-9, "predict \(exactMatch) vs report \(testMatch)")
        let lines = try workspace.text("predictions.jsonl").split(separator: "\n")
        #expect(lines.count == 300)
        let first = try #require(
            try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        #expect(first["id"] as? String == "te-0")
        #expect((first["output"] as? [String: Any])?["intent"] is String)
    }

    /// Halving in two rungs (three fields runs race), and a nearest run that goes straight to the last rung.
    static let executorCatalog = """
        structured:
          - family: nearest
            buckets_log2: 12
          - family: fields
            buckets_log2: [8, 10, 12]
            epochs: 3
            precision: [fp32, int8]
        """
    static let executorSearch = [
        "search", "job.yaml", "--candidates", "catalog.yaml", "--strategy", "halving", "--workers", "2",
    ]

    /// The same answers in two structured runs: frontier and candidates (latency aside), recommendation, test figure.
    static func expectSameAnswers(_ a: URL, _ b: URL, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let csvA = try DeterminismTests.expectSameTables(a, b, sourceLocation: sourceLocation)
        #expect(
            csvA.contains("pruned"), "halving pruned after a screening rung: \(csvA)", sourceLocation: sourceLocation)
        let (reportA, reportB) = (try Report(runFolder: a), try Report(runFolder: b))
        #expect(reportA.kind == reportB.kind && reportA.candidate == reportB.candidate, sourceLocation: sourceLocation)
        #expect(
            reportA.recommendationTestValue("exact_match") == reportB.recommendationTestValue("exact_match"),
            sourceLocation: sourceLocation)
    }

    @Test("--executor process: every training run (halving's screens too) is a `trial run`; the answers are local's")
    func processExecutor() async throws {
        let workspace = try Self.workspace()
        try workspace.write(Self.executorCatalog, to: "catalog.yaml")
        let common = Self.executorSearch
        let local = try await RetortBinary.run(common + ["--out", "results/local"], in: workspace.folder, timeout: 300)
        #expect(local.exitCode == 0, "\(local)")
        let process = try await RetortBinary.run(
            common + ["--out", "results/process", "--executor", "process"], in: workspace.folder, timeout: 300)
        #expect(process.exitCode == 0, "\(process)")
        #expect(process.stdout.contains("trial run"), "\(process)")
        let (a, b) = (workspace.url("results/local/latest"), workspace.url("results/process/latest"))
        try Self.expectSameAnswers(a, b)
        let reportB = try Report(runFolder: b)
        let search = try #require(reportB.json["search"] as? [String: Any])
        #expect((search["executor"] as? [String: Any])?["kind"] as? String == "process", "\(search)")
        #expect(FileManager.default.fileExists(atPath: b.appendingPathComponent("model/model.json").path))
    }

    /// A nearest run and an `slm` run on a tiny random decoder (its GGUF written by the test), every candidate
    /// trained whole (exhaustive).
    static func slmCatalog() throws -> String {
        """
        structured:
          - family: nearest
            buckets_log2: 12
          - family: slm
            rank: 2
            depth: 1
            epochs: 1
            train_rows: 16
            precision: [fp32, fp16]
            model: \(try tinySlmFile().path)
        """
    }

    /// Expects runs `a` and `b` of ``slmCatalog()`` to give the same candidates (candidates.csv without the latency
    /// columns and without `on_frontier`) and the same recommendation; returns a's table. The slm's fp32 and fp16
    /// students tie on quality and FLOPs, so whether fp32 is on the frontier depends on whether it measured clearly
    /// faster than fp16 (the speed tolerance): a timing, not an answer (frontier.md lists it or not, with its cascade).
    @discardableResult
    static func expectSameSlmAnswers(_ a: URL, _ b: URL, sourceLocation: SourceLocation = #_sourceLocation) throws
        -> String
    {
        func table(_ run: URL) throws -> String {
            let csv = DeterminismTests.csvWithoutLatency(
                try String(contentsOf: run.appendingPathComponent("candidates.csv"), encoding: .utf8))
            let rows = csv.split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false) }
            guard let header = rows.first else { return csv }
            let kept = header.indices.filter { header[$0] != "on_frontier" }
            return rows.map { row in kept.map { $0 < row.count ? String(row[$0]) : "" }.joined(separator: ",") }
                .joined(separator: "\n")
        }
        let tableA = try table(a)
        #expect(tableA == (try table(b)), sourceLocation: sourceLocation)
        let (reportA, reportB) = (try Report(runFolder: a), try Report(runFolder: b))
        #expect(reportA.kind == reportB.kind && reportA.candidate == reportB.candidate, sourceLocation: sourceLocation)
        #expect(
            reportA.recommendationTestValue("exact_match") == reportB.recommendationTestValue("exact_match"),
            sourceLocation: sourceLocation)
        return tableA
    }

    @Test("--executor process with an slm: its students come back from the trial, are timed and answer test here")
    func processExecutorSlm() async throws {
        let workspace = try Self.workspace()
        try workspace.write(try Self.slmCatalog(), to: "catalog.yaml")
        let common = ["search", "job.yaml", "--candidates", "catalog.yaml", "--strategy", "exhaustive"]
        let local = try await RetortBinary.run(common + ["--out", "results/local"], in: workspace.folder, timeout: 600)
        #expect(local.exitCode == 0, "\(local)")
        let process = try await RetortBinary.run(
            common + ["--out", "results/process", "--executor", "process"], in: workspace.folder, timeout: 600)
        #expect(process.exitCode == 0, "\(process)")
        let (a, b) = (workspace.url("results/local/latest"), workspace.url("results/process/latest"))
        let csv = try Self.expectSameSlmAnswers(a, b)
        #expect(csv.contains("slm-r2-d1-e1-n16-fp16,slm,fp16,complete"), "\(csv)")
        let slm = try #require(
            (try Report(runFolder: b).json["candidates"] as? [[String: Any]])?.first {
                $0["id"] as? String == "slm-r2-d1-e1-n16-fp16"
            })
        #expect((slm["latency_ms_p50"] as? Double ?? 0) > 0, "timed in the driver: \(slm)")
    }

    @Test("a structured trial spec for other rows, or without a key, is a one-line error and writes nothing")
    func structuredTrialSpecErrors() async throws {
        let workspace = try Self.workspace()
        let task = workspace.url("structured-synthetic").path
        let candidate =
            #"{"family": "nearest", "bucketsLog2": 10, "hidden": 0, "precision": "fp32", "epochs": 30, "#
            + #""rank": 8, "depth": 2, "trainRows": 512, "model": "m.gguf"}"#
        let wrongRows =
            #"{"version": 1, "kind": "structured", "task": "\#(task)", "taskHash": "0000", "#
            + #""candidates": [\#(candidate)], "fidelity": 1, "seed": 1}"#
        let missing = #"{"version": 1, "kind": "structured", "task": "\#(task)", "candidates": [], "seed": 1}"#
        for (text, expected) in [(wrongRows, "differ from the search's"), (missing, "\"taskHash\" is missing")] {
            try workspace.write(text, to: "spec.json")
            let result = try await workspace.retort("trial", "run", "--spec", "spec.json", "--out", "out")
            #expect(result.exitCode == 65, "\(result)")
            #expect(result.stderrLines.count == 1 && result.stderr.hasPrefix("spec.json: error: "), "\(result)")
            #expect(result.stderr.contains(expected), "\(result)")
            #expect(!workspace.exists("out"), "nothing is written for a bad spec")
        }
    }

    @Test("a killed structured run resumes with --resume RUN_DIR alone and finishes like an uninterrupted one")
    func resume() async throws {
        let workspace = try Self.workspace()
        let reference = try await workspace.retort("search", "job.yaml", "--out", "results/ref")
        #expect(reference.exitCode == 0, "\(reference)")
        let refRun = try workspace.runFolder(job: "ref")
        // The folder a crash after the first candidate leaves: the journal up to its record and half a line, and no
        // checkpoint (a crash between the two; the candidate then trains again, seeded, to the same student).
        let journal = try String(contentsOf: refRun.appendingPathComponent("journal.jsonl"), encoding: .utf8)
        let lines = journal.split(separator: "\n")
        let rung = try #require(lines.firstIndex { $0.contains(#""type":"rung""#) })
        #expect(lines[rung].contains("nearest-b12"))
        let partial = try workspace.interruptedRun(journal: lines[...rung])
        let resumed = try await workspace.retort("search", "--resume", "results/cut/20260101-000000.partial")
        #expect(resumed.exitCode == 0, "\(resumed)")
        #expect(resumed.stdout.contains("[resume]") && resumed.stdout.contains("[load] structured task"), "\(resumed)")
        let finished = workspace.url("results/cut/20260101-000000")
        #expect(!FileManager.default.fileExists(atPath: partial.path))
        let before = try Report(runFolder: refRun)
        let after = try Report(runFolder: finished)
        #expect(after.recommendationTestValue("exact_match") == before.recommendationTestValue("exact_match"))
        let candidates = { (report: Report) in
            (report.json["candidates"] as? [[String: Any]] ?? []).map {
                "\($0["id"] ?? "") \((($0["metrics"] as? [String: Any])?["exact_match"] as? [String: Any])?["value"] ?? "")"
            }.sorted()
        }
        #expect(candidates(after) == candidates(before))
        #expect(candidates(after).count == 2)
        let again = try await workspace.retort("search", "--resume", "results/cut/20260101-000000")
        #expect(again.exitCode == 64, "a finished run cannot be resumed: \(again)")
    }

    @Test("frontier.md shows every student class: the frontier, and the best of each class off it marked dominated")
    func everyClassShown() async throws {
        let workspace = try Self.workspace()
        try workspace.write(
            """
            name: classes
            data:
              task: structured-synthetic
            objective: {max_drop: 0.2}
            candidates:
              structured:
                - family: nearest
                  buckets_log2: [12, 14]
                - family: fields
                  buckets_log2: 10
                  epochs: 3
                  precision: [fp32, int8]
            """, to: "classes.yaml")
        let result = try await workspace.retort("search", "classes.yaml")
        #expect(result.exitCode == 0, "\(result)")
        let report = try Report(runFolder: try workspace.runFolder(job: "classes"))
        let frontierIds = Set(report.json["frontier"] as? [String] ?? [])
        let frontier = try workspace.text("results/classes/latest/frontier.md")
        let rows = frontier.split(separator: "\n").filter { $0.hasPrefix("| ") && !$0.hasPrefix("| candidate") }
        for family in ["nearest", "fields"] {
            let shown = rows.filter { $0.hasPrefix("| \(family)-") }
            #expect(!shown.isEmpty, "\(family) is in frontier.md:\n\(frontier)")
            if !frontierIds.contains(where: { $0.hasPrefix(family) }) {
                #expect(shown.count == 1 && shown[0].contains("(dominated; best \(family))"), "\(shown)")
            }
        }
        // The best dominated class member is shown with its test figure (leaders are tested).
        for row in rows where row.contains("(dominated; best") {
            #expect(row.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }[4] != "—", "\(row)")
        }
    }

    @Test("predict with a damaged structured model folder names the file")
    func damagedModel() async throws {
        let workspace = try Self.workspace()
        try FileManager.default.createDirectory(at: workspace.url("model"), withIntermediateDirectories: true)
        try workspace.write(
            #"{"format": "retort-structured", "version": 1, "family": "nearest", "answers": []}"#,
            to: "model/model.json")
        try workspace.write("not safetensors", to: "model/model.safetensors")
        let result = try await workspace.retort(
            "predict", "model", "--input", "structured-synthetic/test.jsonl")
        #expect(result.exitCode != 0)
        #expect(result.stderr.contains("model/model.json"), "\(result)")
        #expect(result.stderr.split(separator: "\n").count == 1, "\(result)")
    }

    @Test("the money: report.json economics, and too little traffic keeps the teacher; recommend re-decides on traffic")
    func economics() async throws {
        let workspace = try Self.workspace()
        let result = try await workspace.retort("search", "job.yaml", "--traffic", "10/month")
        #expect(result.exitCode == 0, "\(result)")
        let run = try workspace.runFolder(job: "ha-mini")
        let report = try Report(runFolder: run)
        #expect(report.kind == "no-distillation", "\(report.reason)")
        #expect(report.reason.contains("at 10 requests a month"), "\(report.reason)")
        let economics = try #require(report.json["economics"] as? [String: Any])
        // 1,200 rows answered by a teacher at $3 per 1k requests: $3.60 of labels.
        #expect(abs((economics["labels_usd"] as? Double ?? 0) - 3.6) < 1e-9)
        #expect(economics["pays_back"] as? Bool == false)
        #expect(!workspace.exists("results/ha-mini/\(run.lastPathComponent)/model"), "nothing is exported")
        let frontier = try String(contentsOf: run.appendingPathComponent("frontier.md"), encoding: .utf8)
        #expect(frontier.contains("Money: one-off $"), "\(frontier)")
        let busy = try await workspace.retort("recommend", run.path, "--traffic", "2M/month")
        #expect(busy.exitCode == 0, "\(busy)")
        #expect(busy.stdout.contains("Recommendation: distill into"), "\(busy)")
        #expect(busy.stdout.contains("At 2M requests a month"), "\(busy)")

        // The traffic measured on a gateway route: 3000 answered client requests over the last 10 days.
        try workspace.write(
            """
            listen: 127.0.0.1:0
            ledger: var/gateway.sqlite
            keys:
              - {sha256: \(String(repeating: "0", count: 64)), user: ana, team: search}
            providers:
              nowhere: {kind: openai, base_url: "http://127.0.0.1:9/v1"}
            routes:
              teacher:
                deployments:
                  - {provider: nowhere, model: teacher, price: {input_per_mtok: 3, output_per_mtok: 15}}
            """, to: "gateway.yaml")
        try FileManager.default.createDirectory(at: workspace.url("var"), withIntermediateDirectories: true)
        let ledger = try Ledger(path: workspace.url("var/gateway.sqlite").path)
        let now = Date().timeIntervalSince1970
        for index in 0..<3000 {
            try ledger.record(
                LedgerRow(
                    time: now - 10 * 86_400 * Double(index) / 3000, keyHash: "k", user: "ana", team: "search",
                    route: "teacher", session: "s", status: 200))
        }
        let measured = try await workspace.retort(
            "recommend", run.path, "--traffic-route", "teacher", "--gateway-config", "gateway.yaml", "--json")
        #expect(measured.exitCode == 0, "\(measured)")
        let answer = try #require(
            try JSONSerialization.jsonObject(with: Data(measured.stdout.utf8)) as? [String: Any], "\(measured)")
        let money = try #require(answer["economics"] as? [String: Any], "\(answer.keys)")
        #expect(abs((money["traffic_per_month"] as? Double ?? 0) - 3000.0 / 10 * 30.4) < 50)
        #expect((money["traffic_source"] as? String)?.contains("route teacher in the gateway ledger: 3000") == true)
        let lonely = try await workspace.retort("recommend", run.path, "--traffic-route", "teacher")
        #expect(lonely.exitCode != 0 && lonely.stderr.contains("--gateway-config"), "\(lonely)")
        #expect(lonely.stderr.split(separator: "\n").count == 1, "\(lonely)")
    }
}

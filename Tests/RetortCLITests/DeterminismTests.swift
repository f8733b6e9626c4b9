import Foundation
import RetortTestSupport
import Testing

/// Same job and seed ⇒ the same frontier.md and candidates.csv, byte for byte, but for the measured latency columns.
/// (The job's speed tolerance is wide: these students answer in 0.3–1 µs, and what is tested here is seeds and workers,
/// not the clock; `make bench-speed` checks that a second run of a real job recommends the same.)
@Suite struct DeterminismTests {
    static let job = """
        name: same
        data: {task: blobs}
        candidates:
          numeric:
            - {family: linear, precision: [fp32, int8], epochs: 9}
            - {family: mlp, hidden: [[4], [8], [16]], precision: [fp32, int8], epochs: 9}
        objective: {max_drop: 0.05, speed_tolerance: 4}
        search: {budget_seconds: 120, seed: 5, strategy: halving}
        """

    /// frontier.md without the p50, p95 and cost columns of its table.
    static func frontierWithoutLatency(_ text: String) -> String {
        // The line saying where trials trained (executor process or ray) is not an answer; the money line carries the
        // search's measured CPU seconds and the student's measured serving cost; the speed line the measured spread.
        text.split(separator: "\n", omittingEmptySubsequences: false).filter {
            !$0.hasPrefix("Trials trained") && !$0.hasPrefix("Money:") && !$0.hasPrefix("Speed:")
        }.map {
            line in
            guard line.hasPrefix("|") else { return String(line) }
            let cells = line.split(separator: "|", omittingEmptySubsequences: false)
            // cells: "", candidate, val, Δ, test, p50, p95, size, FLOPs, $, ""
            return cells.enumerated().filter { ![5, 6, 9].contains($0.offset) }.map(\.element).joined(separator: "|")
        }.joined(separator: "\n")
    }

    /// candidates.csv without the latency-derived columns.
    static func csvWithoutLatency(_ text: String) -> String {
        let rows = text.split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false) }
        guard let header = rows.first else { return "" }
        let dropped: Set<Substring> = ["latency_ms_p50", "latency_ms_p95", "throughput_per_s", "cost_per_1m_usd"]
        let keep = header.indices.filter { !dropped.contains(header[$0]) }
        return rows.map { row in keep.map { $0 < row.count ? String(row[$0]) : "" }.joined(separator: ",") }.joined(
            separator: "\n")
    }

    /// Expects the same frontier.md and candidates.csv in runs `a` and `b`, latency columns aside; returns a's
    /// candidates.csv.
    @discardableResult
    static func expectSameTables(_ a: URL, _ b: URL, sourceLocation: SourceLocation = #_sourceLocation) throws
        -> String
    {
        let frontierA = try String(contentsOf: a.appendingPathComponent("frontier.md"), encoding: .utf8)
        let frontierB = try String(contentsOf: b.appendingPathComponent("frontier.md"), encoding: .utf8)
        #expect(frontierA.contains("| candidate |"), sourceLocation: sourceLocation)
        #expect(frontierWithoutLatency(frontierA) == frontierWithoutLatency(frontierB), sourceLocation: sourceLocation)
        let csvA = try String(contentsOf: a.appendingPathComponent("candidates.csv"), encoding: .utf8)
        let csvB = try String(contentsOf: b.appendingPathComponent("candidates.csv"), encoding: .utf8)
        #expect(csvWithoutLatency(csvA) == csvWithoutLatency(csvB), sourceLocation: sourceLocation)
        return csvA
    }

    @Test("two runs with the same seed, on 1 and 2 workers, write identical frontier.md and candidates.csv")
    func identicalOutputs() async throws {
        let workspace = try Workspace.numeric()
        try workspace.write(Self.job, to: "job.yaml")
        let one = try await workspace.retort("search", "job.yaml", "--out", "results/one", "--workers", "1")
        #expect(one.exitCode == 0, "\(one)")
        let two = try await workspace.retort("search", "job.yaml", "--out", "results/two", "--workers", "2")
        #expect(two.exitCode == 0, "\(two)")
        let a = workspace.url("results/one/latest")
        let b = workspace.url("results/two/latest")
        let frontierA = try String(contentsOf: a.appendingPathComponent("frontier.md"), encoding: .utf8)
        let frontierB = try String(contentsOf: b.appendingPathComponent("frontier.md"), encoding: .utf8)
        #expect(frontierA.contains("| candidate |"))
        #expect(Self.frontierWithoutLatency(frontierA) == Self.frontierWithoutLatency(frontierB))
        let csvA = try String(contentsOf: a.appendingPathComponent("candidates.csv"), encoding: .utf8)
        let csvB = try String(contentsOf: b.appendingPathComponent("candidates.csv"), encoding: .utf8)
        #expect(csvA.contains("pruned"), "halving prunes some of the 8 candidates")
        #expect(Self.csvWithoutLatency(csvA) == Self.csvWithoutLatency(csvB))

        let compared = try await workspace.retort("compare", "results/one/latest", "results/two/latest")
        #expect(compared.exitCode == 0, "\(compared)")
        #expect(compared.stdout.contains("Joined the frontier in B: none."))
        #expect(compared.stdout.contains("Left the frontier in B: none."))
        #expect(compared.stdout.contains("The recommendation is the same."))
        #expect(compared.stdout.contains("| both |"))
        let missing = try await workspace.retort("compare", "results/one/latest", "nowhere")
        #expect(missing.exitCode == 66 && missing.stderr.contains("nowhere: error: no report.json"), "\(missing)")
    }

    @Test("a killed run resumes with --resume RUN_DIR alone and finishes like an uninterrupted one")
    func resumeFromTheCommandLine() async throws {
        let workspace = try Workspace.numeric()
        try workspace.write(Self.job, to: "job.yaml")
        let reference = try await workspace.retort("search", "job.yaml", "--out", "results/ref")
        #expect(reference.exitCode == 0, "\(reference)")
        // An interrupted run: its folder as a crash leaves it, built from the reference run's journal.
        let journal = try String(
            contentsOf: try workspace.runFolder(job: "ref").appendingPathComponent("journal.jsonl"), encoding: .utf8)
        let header = try #require(journal.split(separator: "\n").first)
        let partial = try workspace.interruptedRun(journal: [header])
        let resumed = try await workspace.retort("search", "--resume", "results/cut/20260101-000000.partial")
        #expect(resumed.exitCode == 0, "\(resumed)")
        #expect(resumed.stdout.contains("[resume]"))
        let finished = workspace.url("results/cut/20260101-000000")
        #expect(FileManager.default.fileExists(atPath: finished.appendingPathComponent("report.json").path))
        #expect(!FileManager.default.fileExists(atPath: partial.path))
        let frontierRef = try String(contentsOf: workspace.url("results/ref/latest/frontier.md"), encoding: .utf8)
        let frontierResumed = try String(contentsOf: finished.appendingPathComponent("frontier.md"), encoding: .utf8)
        #expect(Self.frontierWithoutLatency(frontierRef) == Self.frontierWithoutLatency(frontierResumed))
        let again = try await workspace.retort("search", "--resume", "results/cut/20260101-000000")
        #expect(again.exitCode == 64, "a finished run cannot be resumed: \(again)")
    }

    @Test("recommend on stored results decides as a fresh search under the same constraints")
    func whatIfEqualsFreshSearch() async throws {
        let workspace = try Workspace.numeric()
        try workspace.write(
            Self.job.replacingOccurrences(of: "strategy: halving", with: "strategy: exhaustive"), to: "job.yaml")
        let open = try await workspace.retort("search", "job.yaml", "--out", "results/open")
        #expect(open.exitCode == 0, "\(open)")
        let report = try Report(runFolder: workspace.url("results/open/latest"))
        // A limit between the smallest and the largest trained candidate, so it bites.
        let sizes = report.candidates.compactMap { $0["size_bytes"] as? Int }.sorted()
        let limit = sizes[sizes.count / 2]
        let whatIf = try await workspace.retort(
            "recommend", "results/open/latest", "--max-size", "\(limit)", "--max-drop", "0.2")
        #expect(whatIf.exitCode == 0, "\(whatIf)")
        let fresh = try await workspace.retort(
            "search", "job.yaml", "--out", "results/fresh", "--max-size", "\(limit)", "--max-drop", "0.2")
        #expect(fresh.exitCode == 0, "\(fresh)")
        let freshReport = try Report(runFolder: workspace.url("results/fresh/latest"))
        let expected =
            freshReport.candidate.map { "Recommendation: distill into `\($0)`." } ?? "Recommendation: no distillation."
        #expect(whatIf.stdout.contains(expected), "what-if: \(whatIf.stdout)\nfresh: \(expected)")
    }
}

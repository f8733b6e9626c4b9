import Foundation
import RetortTestSupport
import Testing

/// Structured runs in the history, end to end through the binary: a structured search records itself, `history`
/// lists, shows, exports and imports it, and `suggest` predicts a structured task from past structured tasks.
@Suite struct StructuredHistoryCommandTests {
    @Test("a structured search records into the history; history and suggest read it back")
    func structuredHistory() async throws {
        let workspace = try StructuredCommandTests.workspace()
        let before = try await workspace.retort("suggest", "job.yaml")
        #expect(before.exitCode == 66 && before.stderr.contains("no history yet"), "\(before)")
        let search = try await workspace.retort("search", "job.yaml")
        #expect(search.exitCode == 0, "\(search)")
        #expect(
            search.stdout.contains("history: recorded in results/history.sqlite (1 structured task(s) so far)"),
            "\(search)")

        let list = try await workspace.retort("history", "list", "--json")
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: String]])
        #expect(rows.count == 1 && rows.first?["kind"] == "structured" && rows.first?["task"] == "structured-synthetic")
        let show = try await workspace.retort("history", "show", "structured-synthetic")
        #expect(
            show.exitCode == 0 && show.stdout.contains("4 keys") && show.stdout.contains("copied values"), "\(show)")

        let suggest = try await workspace.retort("suggest", "job.yaml")
        #expect(suggest.exitCode == 0, "\(suggest)")
        #expect(suggest.stdout.contains("Predicted from 1 past structured task(s), nothing trained"), "\(suggest)")
        #expect(suggest.stdout.contains("| nearest-b12 |") && suggest.stdout.contains("predicted size"))
        #expect(suggest.stdout.contains("Predicted recommendation:"))
        #expect(suggest.stdout.contains("Most similar past tasks: structured-synthetic (student: "), "\(suggest)")
        #expect(suggest.stdout.contains("Confirm with: retort search job.yaml --strategy learned\n"), "\(suggest)")
        // The confirmation runs the learned strategy on the predictions.
        let learned = try await workspace.retort("search", "job.yaml", "--strategy", "learned", "--out", "results/l")
        #expect(learned.exitCode == 0, "\(learned)")
        #expect(
            learned.stdout.contains(
                "[history] learned strategy: predictions for 2 candidates from 1 past structured task(s)"),
            "\(learned)")
        let learnedReport = try Report(runFolder: try workspace.runFolder(job: "l"))
        #expect((learnedReport.json["search"] as? [String: Any])?["strategy"] as? String == "learned")
        let noHistory = try await workspace.retort("search", "job.yaml", "--strategy", "learned", "--no-history")
        #expect(noHistory.exitCode == 64 && noHistory.stderr.contains("drop --no-history"), "\(noHistory)")
        let json = try await workspace.retort("suggest", "job.yaml", "--json")
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let candidates = try #require(parsed["candidates"] as? [[String: Any]])
        #expect(candidates.count == 2 && candidates.allSatisfy { $0["predicted"] != nil }, "\(json)")
        #expect(parsed["metric"] as? String == "exact_match" && parsed["history_tasks"] as? Int == 1)

        // Refresh fills in label tasks' meta-features; a structured task folder is counted as skipped.
        let refresh = try await workspace.retort("history", "refresh", "structured-synthetic")
        #expect(
            refresh.exitCode == 0
                && refresh.stdout.contains(
                    "refreshed 0 of 0 recorded task(s) in results/history.sqlite; 0 folder(s) hold tasks the history does not; 1 structured task(s) skipped"
                ), "\(refresh)")

        let export = try await workspace.retort("history", "export", "--out", "h.json")
        #expect(export.exitCode == 0, "\(export)")
        let imported = try await workspace.retort("history", "import", "h.json", "--history", "team.sqlite")
        #expect(imported.stdout.contains("imported 2 new run(s) of 2"), "\(imported)")
        let teamList = try await workspace.retort("history", "list", "--history", "team.sqlite")
        #expect(teamList.stdout.contains("| structured |"), "\(teamList)")

        // A history without structured tasks says so.
        let empty = try await workspace.retort("history", "list", "--history", "empty.sqlite")
        #expect(empty.exitCode == 0, "\(empty)")
        let none = try await workspace.retort("suggest", "job.yaml", "--history", "empty.sqlite")
        #expect(
            none.exitCode == 66 && none.stderr.contains("holds no structured task scored by exact_match"), "\(none)")
        #expect(none.stderrLines.count == 1, "\(none)")
    }

    @Test("--no-history records no structured run")
    func noHistory() async throws {
        let workspace = try StructuredCommandTests.workspace()
        let search = try await workspace.retort("search", "job.yaml", "--no-history")
        #expect(search.exitCode == 0 && !search.stdout.contains("history:"), "\(search)")
        #expect(!workspace.exists("results/history.sqlite"))
    }
}

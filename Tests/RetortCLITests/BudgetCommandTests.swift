import Foundation
import RetortTestSupport
import Testing

/// `--budget` is a hard limit, checked in a process of its own: in the test process, other suites' synchronous
/// training holds the two threads of the shared cooperative pool for tens of seconds, which no real `retort search`
/// ever meets; a process of its own meets only the machine's load, as a user's search does.
@Suite struct BudgetCommandTests {
    @Test("the budget is a hard limit: the run ends near it and reports what was cut")
    func budgetRespected() async throws {
        let workspace = try Workspace(
            taskName: "blobs", kind: .numeric,
            train: SyntheticTasks.numericRows(count: 3000, learnable: true, seed: 1, idPrefix: "tr"),
            validation: SyntheticTasks.numericRows(count: 1500, learnable: true, seed: 2, idPrefix: "va"),
            test: SyntheticTasks.numericRows(count: 1500, learnable: true, seed: 3, idPrefix: "te"))
        try workspace.write(
            """
            numeric:
              - family: mlp
                hidden: [[32], [64], [96], [128]]
                epochs: 2000
                patience: 1000
            """, to: "catalog.yaml")
        let budget = 8.0
        let result = try await workspace.retort(
            "search", "--task", "blobs", "--candidates", "catalog.yaml", "--budget", "8s", "--seed", "1",
            "--workers", "2", "--no-history", "--json", "--out", "results/budget",
            timeout: 600)
        #expect(result.exitCode == 0, "\(result)")
        let data = Data(result.stdout.utf8)
        let report = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any], "\(result)")
        let search = try #require(report["search"] as? [String: Any], "\(result.stdout)")
        let candidates = report["candidates"] as? [[String: Any]] ?? []
        #expect(
            candidates.contains { ($0["reason"] as? String ?? "").contains("cut by the budget") },
            "\(result.stdout)")
        // Training stops at the next epoch boundary after the budget and nothing starts after it, so the run may
        // overrun by the epoch in flight and by the work that follows it, each measured by the run whatever the
        // load: the cut runs' validation evaluation (1500 rows, the suite's bootstrap). What remains is fixed and
        // small: the scheduler's bookkeeping and an empty frontier (nothing is complete: no latency, no test-set
        // evaluation), measured at 0.06 s or less (`after_training_seconds`) beside two busy loops on two cores;
        // the bound allows 0.5 s.
        let inFlight = try #require(search["epoch_in_flight_seconds"] as? Double, "\(search)")
        let evaluation = try #require(search["cut_evaluation_seconds"] as? Double, "\(search)")
        let overrun = try #require(search["overrun_seconds"] as? Double, "\(search)")
        #expect(search["budget_seconds"] as? Double == budget, "\(search)")
        #expect(inFlight > 0 && evaluation > 0, "\(search)")
        #expect(overrun <= inFlight + evaluation + 0.5, "\(search)")
    }
}

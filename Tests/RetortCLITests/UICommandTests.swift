import Foundation
import RetortTestSupport
import Testing

@Suite struct UICommandTests {
    @Test("retort ui serves the runs a search made: the list, the run page with its report and pipeline, compare")
    func finishedRuns() async throws {
        let workspace = try Workspace.intents()
        workspace.removeAtExit()
        try workspace.write(Jobs.text(name: "intents", task: "intents"), to: "job.yaml")
        for _ in 0..<2 {
            let search = try await workspace.retort("search", "job.yaml")
            #expect(search.exitCode == 0, "\(search)")
            try await Task.sleep(for: .seconds(1.1))  // run ids are timestamps to the second
        }
        let ui = try ServerProcess(arguments: ["ui", "--results", "results", "--port", "0"], in: workspace.folder)
        defer { ui.process.terminate() }

        let (status, listing) = try await ui.get("/api/runs")
        #expect(status == 200)
        let runs = try #require(try JSONSerialization.jsonObject(with: Data(listing.utf8)) as? [[String: Any]])
        #expect(runs.count == 2)
        let run = try #require(runs.first)
        #expect(run["finished"] as? Bool == true && run["task"] as? String == "intents")
        #expect((run["recommendation"] as? String)?.hasPrefix("student linear") == true, "\(run)")
        let path = try #require(run["path"] as? String)
        #expect(path.hasPrefix("intents/"))

        let page = try await ui.get("/run?path=\(path)").body
        #expect(page.contains("Recommendation: distill into"))
        #expect(page.contains("<table class=\"sortable\">"), "the candidates table")
        for stage in ["load", "featurize", "candidate space", "train: rungs", "test evaluation", "export"] {
            #expect(page.contains("data-stage=\"\(stage)\""), "stage \(stage)")
        }
        #expect(!page.contains("class=\"stage pending\""), "every stage of a finished run ran")
        let state = try await ui.get("/api/run?path=\(path)").body
        let pipeline = try #require(try JSONSerialization.jsonObject(with: Data(state.utf8)) as? [String: Any])
        #expect(pipeline["finished"] as? Bool == true)
        #expect((pipeline["done"] as? Int ?? 0) > 0 && pipeline["done"] as? Int == pipeline["queued"] as? Int)

        let other = try #require(runs.last?["path"] as? String)
        let compare = try await ui.get("/compare?a=\(other)&b=\(path)").body
        #expect(compare.contains("Runs compared") && compare.contains("B: \(path)"))
        let history = try await ui.get("/history").body
        #expect(history.contains("<td>intents</td>"), "the history the searches recorded")
        #expect(try await ui.get("/run?path=../etc").status == 404)
    }
}

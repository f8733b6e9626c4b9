import Foundation
import RetortTestSupport
import Testing

@Suite struct HistoryCommandTests {
    @Test(
        "searches record into results/history.sqlite, --no-history records nothing, history list/show/export/import/forget work"
    )
    func historyCommands() async throws {
        let workspace = try Workspace.numeric()
        let plain = try await workspace.retort("search", "--task", "blobs", "--no-history")
        #expect(plain.exitCode == 0, "\(plain)")
        #expect(!workspace.exists("results/history.sqlite"))
        let recorded = try await workspace.retort("search", "--task", "blobs")
        #expect(recorded.exitCode == 0, "\(recorded)")
        #expect(recorded.stdout.contains("history: recorded in results/history.sqlite (1 numeric task(s) so far)"))
        let list = try await workspace.retort("history", "list", "--json")
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: String]])
        #expect(rows.count == 1 && rows.first?["task"] == "blobs")
        let suggest = try await workspace.retort("suggest", "--task", "blobs")
        #expect(suggest.exitCode == 0, "\(suggest)")
        #expect(suggest.stdout.contains("Predicted recommendation:") && suggest.stdout.contains("nothing trained"))
        #expect(suggest.stdout.contains("Confirm with: retort search --task blobs --strategy learned"))
        #expect(suggest.stdout.contains("Most similar past tasks: blobs (student: "), "\(suggest)")
        let suggestJSON = try await workspace.retort("suggest", "--task", "blobs", "--json")
        let parsed = try JSONSerialization.jsonObject(with: Data(suggestJSON.stdout.utf8)) as? [String: Any]
        #expect((parsed?["candidates"] as? [[String: Any]])?.first?["predicted"] != nil, "\(suggestJSON)")
        let noHistory = try await workspace.retort("suggest", "--task", "blobs", "--history", "none.sqlite")
        #expect(noHistory.exitCode == 66 && noHistory.stderr.contains("no history yet"), "\(noHistory)")
        let show = try await workspace.retort("history", "show", "blobs")
        #expect(show.exitCode == 0 && show.stdout.contains("meta-features:"), "\(show)")
        let export = try await workspace.retort("history", "export", "--out", "h.json")
        #expect(export.exitCode == 0, "\(export)")
        // Printed, the export is the same sorted-key JSON as the file.
        let printed = try await workspace.retort("history", "export")
        let file = try String(contentsOf: workspace.url("h.json"), encoding: .utf8)
        #expect(printed.exitCode == 0 && printed.stdout.trimmingCharacters(in: .newlines) == file)
        for expected in ["imported 1 new run(s) of 1", "imported 0 new run(s) of 1"] {
            let imported = try await workspace.retort("history", "import", "h.json", "--history", "team.sqlite")
            #expect(imported.stdout.contains(expected), "\(imported)")
        }
        let forget = try await workspace.retort("history", "forget", "blobs")
        #expect(forget.stdout.contains("forgot 1 run(s)"), "\(forget)")
        let missing = try await workspace.retort("history", "show", "blobs")
        #expect(missing.exitCode == 66 && missing.stderr.contains("no run, task name or fingerprint"))
    }

    @Test(
        "task.json's dataset reaches report.json and the history; a compact .gz export is the starter of a default history, imported once"
    )
    func starterHistory() async throws {
        let workspace = try Workspace.numeric()
        let taskJSON = workspace.url("blobs/task.json")
        var task = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: taskJSON)) as? [String: Any])
        task["dataset"] = 3
        try JSONSerialization.data(withJSONObject: task).write(to: taskJSON)
        let bad = try await workspace.retort("search", "--task", "blobs", "--history", "team.sqlite")
        #expect(bad.exitCode == 65 && bad.stderrLines.count == 1, "\(bad)")
        #expect(bad.stderr.contains("task.json: error: \"dataset\" must be a non-empty string"), "\(bad)")
        task["dataset"] = "synthetic:blobs"
        try JSONSerialization.data(withJSONObject: task).write(to: taskJSON)
        let searched = try await workspace.retort("search", "--task", "blobs", "--history", "team.sqlite")
        #expect(searched.exitCode == 0, "\(searched)")
        let report = try Report(runFolder: try workspace.runFolder(job: "blobs"))
        #expect(report.json["task_dataset"] as? String == "synthetic:blobs")
        let export = try await workspace.retort(
            "history", "export", "--history", "team.sqlite", "--compact", "--out", "starter.json.gz")
        #expect(export.exitCode == 0 && export.stdout.contains("exported 1 run(s) to starter.json.gz"), "\(export)")
        #expect(try Data(contentsOf: workspace.url("starter.json.gz")).prefix(2) == Data([0x1f, 0x8b]))

        // Without --history or RETORT_HISTORY, the starter goes into results/history.sqlite, once.
        let starter = ["RETORT_STARTER_HISTORY": "starter.json.gz"]
        let first = try await workspace.retort(environment: starter, "history", "list", "--json")
        #expect(first.exitCode == 0, "\(first)")
        #expect(first.stderr.contains("[history] imported the starter history (1 runs"), "\(first)")
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(first.stdout.utf8)) as? [[String: String]])
        #expect(rows.map { $0["dataset"] } == ["synthetic:blobs"])
        let forget = try await workspace.retort(environment: starter, "history", "forget", "synthetic:blobs")
        #expect(forget.stdout.contains("forgot 1 run(s)") && !forget.stderr.contains("imported"), "\(forget)")
        let again = try await workspace.retort(environment: starter, "history", "list")
        #expect(again.stdout.contains("0 run(s) in results/history.sqlite"), "\(again)")
        // An explicit history never gets the starter; a broken starter is one line naming it.
        let explicit = try await workspace.retort(environment: starter, "history", "list", "--history", "x.sqlite")
        #expect(explicit.stdout.contains("0 run(s) in x.sqlite") && explicit.stderr.isEmpty, "\(explicit)")
        try workspace.write("not gzip, not json", to: "broken.json.gz")
        try FileManager.default.removeItem(at: workspace.url("results/history.sqlite"))
        let broken = try await workspace.retort(
            environment: ["RETORT_STARTER_HISTORY": "broken.json.gz"], "search", "--task", "blobs")
        #expect(broken.exitCode == 65 && broken.stderrLines.count == 1, "\(broken)")
        #expect(
            broken.stderr.hasPrefix("broken.json.gz") && broken.stderr.contains("error: not a Retort history export"),
            "\(broken)")
    }

    @Test("--strategy learned needs a history; --confidence-z must be a number ≥ 0")
    func learnedUsageErrors() async throws {
        let workspace = try Workspace.numeric()
        let noHistory = try await workspace.retort("search", "--task", "blobs", "--strategy", "learned", "--no-history")
        #expect(noHistory.exitCode == 64 && noHistory.stderr.contains("learns from the history"), "\(noHistory)")
        let badZ = try await workspace.retort("search", "--task", "blobs", "--confidence-z", "-1")
        #expect(badZ.exitCode == 64 && badZ.stderr.contains("--confidence-z"), "\(badZ)")
        #expect(!workspace.exists("results/blobs"))
    }

    @Test("a corrupt history file stops the search before it starts, with one line naming the file")
    func corruptHistory() async throws {
        let workspace = try Workspace.numeric()
        try workspace.write(String(repeating: "not sqlite ", count: 400), to: "bad.sqlite")
        let result = try await workspace.retort("search", "--task", "blobs", "--history", "bad.sqlite")
        #expect(result.exitCode == 65 && !result.crashed, "\(result)")
        #expect(result.stderrLines.count == 1 && result.stderr.hasPrefix("bad.sqlite: error:"), "\(result)")
        #expect(!workspace.exists("results/blobs"))
    }

    @Test("history refresh fills in the gold-probe headroom a record made before it lacks, from the task folder, once")
    func refreshFillsIn() async throws {
        let workspace = try Workspace.numeric()
        let searched = try await workspace.retort("search", "--task", "blobs", "--history", "team.sqlite")
        #expect(searched.exitCode == 0, "\(searched)")
        #expect(
            try await workspace.retort("history", "export", "--history", "team.sqlite", "--out", "h.json").exitCode == 0
        )
        func exportedMeta(_ file: String) throws -> [String: Any] {
            let export = try JSONSerialization.jsonObject(with: Data(contentsOf: workspace.url(file))) as? [String: Any]
            let runs = try #require(export?["runs"] as? [[String: Any]])
            return try #require(runs.first?["meta"] as? [String: Any])
        }
        let meta = try exportedMeta("h.json")
        let headroom = try #require(meta["gold_probe_headroom"] as? Double)
        // The same run as an older Retort recorded it: no gold_probe_headroom.
        var export = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: workspace.url("h.json"))) as? [String: Any])
        var runs = try #require(export["runs"] as? [[String: Any]])
        var oldMeta = meta
        oldMeta["gold_probe_headroom"] = nil
        runs[0]["meta"] = oldMeta
        export["runs"] = runs
        try JSONSerialization.data(withJSONObject: export).write(to: workspace.url("old.json"))
        #expect(try await workspace.retort("history", "import", "old.json", "--history", "old.sqlite").exitCode == 0)
        #expect(
            try await workspace.retort("history", "export", "--history", "old.sqlite", "--out", "o.json").exitCode == 0)
        #expect(try exportedMeta("o.json")["gold_probe_headroom"] == nil)

        let refreshed = try await workspace.retort("history", "refresh", "blobs", "--history", "old.sqlite")
        #expect(refreshed.exitCode == 0, "\(refreshed)")
        #expect(
            refreshed.stdout.contains("refreshed 1 of 1 recorded task(s) in old.sqlite; 0 folder(s)"), "\(refreshed)")
        #expect(
            try await workspace.retort("history", "export", "--history", "old.sqlite", "--out", "n.json").exitCode == 0)
        #expect(try exportedMeta("n.json")["gold_probe_headroom"] as? Double == headroom)
        #expect(NSDictionary(dictionary: try exportedMeta("n.json")).isEqual(to: meta), "the other fields stay")
        // A folder of task folders works too; what is filled in stays.
        let again = try await workspace.retort("history", "refresh", ".", "--history", "old.sqlite")
        #expect(again.stdout.contains("refreshed 0 of 1 recorded task(s)"), "\(again)")
        let nowhere = try await workspace.retort("history", "refresh", "nowhere", "--history", "old.sqlite")
        #expect(nowhere.exitCode == 66 && nowhere.stderrLines.count == 1 && !nowhere.crashed, "\(nowhere)")
        #expect(nowhere.stderr.hasPrefix("nowhere: error: neither a task folder"), "\(nowhere)")
    }

    @Test(
        "a search and suggest whose teacher is wrong on a third of the rows warn that a model on the gold labels beats it"
    )
    func teacherWarning() async throws {
        func rows(_ count: Int, _ seed: UInt64, _ prefix: String) -> [[String: Any]] {
            SyntheticTasks.numericRows(
                count: count, separation: 4, seed: seed, idPrefix: prefix, teacherWrongEvery: 3)
        }
        let noisy = try Workspace(
            taskName: "noisy", kind: .numeric, train: rows(300, 31, "tr"), validation: rows(150, 32, "va"),
            test: rows(150, 33, "te"))
        let warned = try await noisy.retort("search", "--task", "noisy", "--history", "h.sqlite")
        #expect(warned.exitCode == 0, "\(warned)")
        #expect(
            warned.stdout.contains("[teacher] warning: a logistic regression trained on the gold labels scores 3"),
            "\(warned)")
        #expect(warned.stdout.contains("points above the teacher on validation (gold-probe headroom +0.3"), "\(warned)")
        let suggested = try await noisy.retort("suggest", "--task", "noisy", "--history", "h.sqlite")
        #expect(
            suggested.stdout.contains("Teacher warning: a logistic regression trained on the gold labels"),
            "\(suggested)")
        let json = try await noisy.retort("suggest", "--task", "noisy", "--history", "h.sqlite", "--json")
        let parsed = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        #expect((parsed?["teacher_warning"] as? String)?.hasPrefix("a logistic regression") == true, "\(json)")
        let clean = try Workspace.numeric()
        let quiet = try await clean.retort("search", "--task", "blobs", "--history", "h.sqlite")
        #expect(quiet.exitCode == 0 && !quiet.stdout.contains("[teacher] warning"), "\(quiet)")
        let calm = try await clean.retort("suggest", "--task", "blobs", "--history", "h.sqlite", "--json")
        let calmJSON = try JSONSerialization.jsonObject(with: Data(calm.stdout.utf8)) as? [String: Any]
        #expect(calmJSON?["candidates"] != nil && calmJSON?["teacher_warning"] == nil, "\(calm)")
    }
}

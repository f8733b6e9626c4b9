import Foundation
import RetortData
import RetortNumerics
import RetortTestSupport
import Testing

/// Loading a task folder: all splits, task.json, the label set and full teacher distributions.
@Suite struct TaskDataTests {
    @Test("partial top-k probs spread the missing mass evenly over the unlisted labels")
    func partialProbsSpreadEvenly() throws {
        let labels = ["a", "b", "c", "d", "e"]
        let train = [
            #"{"id": "p", "input": [1, 2], "teacher": {"probs": {"b": 0.6, "d": 0.1}}, "gold": "b"}"#,
            #"{"id": "q", "input": [2, 1], "teacher": "a", "gold": "e"}"#,
            #"{"id": "r", "input": [0, 1], "teacher": {"probs": {"a": 0.5, "b": 0.2, "c": 0.1, "d": 0.1, "e": 0.05}}}"#,
        ]
        let task = try RawTask(
            train: train, validation: [#"{"input": [1, 1], "teacher": "c"}"#],
            test: [#"{"input": [1, 1], "teacher": "c"}"#]
        ).load()
        #expect(task.vocabulary.labels == labels)
        let matrix = task.train.teacherProbabilities
        #expect(matrix.rows == 3)
        #expect(matrix.columns == labels.count)
        let partial = matrix.row(0)
        #expect(approximatelyEqual(partial.reduce(0, +), 1))
        #expect(approximatelyEqual(partial[1], 0.6))
        #expect(approximatelyEqual(partial[3], 0.1))
        for unlisted in [0, 2, 4] { #expect(approximatelyEqual(partial[unlisted], 0.1), "label \(labels[unlisted])") }
        #expect(task.train.teacherLabels[0] == 1)
        #expect(matrix.row(1) == [1, 0, 0, 0, 0])
        let full = matrix.row(2)
        #expect(approximatelyEqual(full.reduce(0, +), 1))
        #expect(approximatelyEqual(full[0], 0.5 / 0.95))
        #expect(approximatelyEqual(full[4], 0.05 / 0.95))
        #expect(task.train.gold == [1, 4, nil])
    }

    @Test("logprobs become a distribution over every label that sums to 1")
    func logprobsInMatrix() throws {
        let train = [
            #"{"input": [1], "teacher": {"logprobs": {"a": -0.35667494, "b": -1.60943791}}}"#,
            #"{"input": [2], "teacher": "c"}"#,
        ]
        let task = try RawTask(train: train, validation: [train[1]], test: [train[1]]).load()
        let row = task.train.teacherProbabilities.row(0)
        #expect(task.vocabulary.labels == ["a", "b", "c"])
        #expect(approximatelyEqual(row[0], 0.7))
        #expect(approximatelyEqual(row[1], 0.2))
        #expect(approximatelyEqual(row[2], 0.1))
        #expect(task.train.teacherLabels == [0, 2])
    }

    @Test("the label set is the sorted union of teacher and gold labels across all splits")
    func vocabularyIsSortedUnion() throws {
        let task = try RawTask(
            train: [#"{"input": "x", "teacher": "zeta"}"#, #"{"input": "y", "teacher": "beta", "gold": "alpha"}"#],
            validation: [#"{"input": "x", "teacher": {"probs": {"mu": 0.9}}, "gold": "omega"}"#],
            test: [#"{"input": "x", "teacher": {"label": "Gamma", "probs": {"Gamma": 0.5, "delta": 0.5}}}"#],
            taskJSON: #"{"name": "labels", "kind": "text", "teacher": {"name": "big", "latency_ms_p50": 900}}"#
        ).load()
        #expect(task.vocabulary.labels == ["Gamma", "alpha", "beta", "delta", "mu", "omega", "zeta"])
        #expect(task.kind == .text)
        #expect(task.name == "labels")
        #expect(task.teacher.name == "big")
        #expect(task.teacher.latencyMsP50 == 900)
        #expect(task.inputDimension == 0)
        #expect(task.validation.gold == [task.vocabulary.index(of: "omega")])
        #expect(task.validation.teacherLabels == [task.vocabulary.index(of: "mu")])
    }

    @Test("a synthetic numeric task loads with its dimension, split sizes and labels")
    func syntheticNumericTask() throws {
        let folder = try SyntheticTasks.writeTask(
            name: "blobs", kind: .numeric, train: SyntheticTasks.numericRows(count: 40, seed: 1),
            validation: SyntheticTasks.numericRows(count: 20, seed: 2, idPrefix: "v"),
            test: SyntheticTasks.numericRows(count: 10, seed: 3, idPrefix: "t"))
        defer { try? FileManager.default.removeItem(at: folder.deletingLastPathComponent()) }
        var job = Job(task: folder)
        job.teacher.name = "override"
        let task = try TaskData.load(job)
        #expect(task.kind == .numeric)
        #expect(task.inputDimension == 4)
        #expect([task.train.count, task.validation.count, task.test.count] as [Int] == [40, 20, 10])
        #expect(task.vocabulary.labels == ["c0", "c1", "c2"])
        #expect(task.teacher.name == "override")
        #expect(task.teacher.costPer1kRequestsUSD == 2)
        for index in 0..<task.train.count {
            #expect(approximatelyEqual(task.train.teacherProbabilities.row(index).reduce(0, +), 1, relative: 1e-3))
        }
    }

    @Test("a bad row in validation.jsonl is reported against that file")
    func badRowInValidation() {
        let good = numericLines(prefix: "r")
        guard let task = try? RawTask(train: good, validation: good + ["{oops"], test: good) else {
            Issue.record("could not write the task")
            return
        }
        expectDataError(file: task.path("validation.jsonl"), line: 5, mentions: ["not valid JSON"]) {
            _ = try task.load()
        }
    }

    @Test("problems in several splits are all reported together")
    func problemsInSeveralSplits() throws {
        let good = numericLines(prefix: "r")
        let task = try RawTask(train: ["[]"] + good, validation: good, test: good + [#"{"input": [1, 2]}"#])
        let error = try #require(
            expectDataError(file: task.path("train.jsonl"), line: 1, mentions: ["expected a JSON object"]) {
                _ = try task.load()
            })
        #expect(error.more.count == 1)
        #expect(error.more.first?.file == task.path("test.jsonl"))
        #expect(error.more.first?.line == 5)
        #expect(error.more.first?.message.contains(#"missing "teacher""#) == true)
    }

    @Test("a missing split file is a missing-input error naming the file")
    func missingSplitFile() throws {
        let good = numericLines(prefix: "r")
        let task = try RawTask(train: good, validation: good, test: good)
        try FileManager.default.removeItem(at: task.url("test.jsonl"))
        expectDataError(code: .missingInput, file: task.path("test.jsonl"), line: nil, mentions: ["no such file"]) {
            _ = try task.load()
        }
    }

    @Test("a task folder without task.json is a missing-input error naming task.json")
    func missingTaskJSON() throws {
        let good = numericLines(prefix: "r")
        let task = try RawTask(train: good, validation: good, test: good, taskJSON: nil)
        expectDataError(code: .missingInput, file: task.path("task.json"), line: nil, mentions: ["no task.json"]) {
            _ = try task.load()
        }
    }

    @Test("task.json that is not a JSON object is rejected")
    func taskJSONNotAnObject() throws {
        let good = numericLines(prefix: "r")
        let task = try RawTask(train: good, validation: good, test: good, taskJSON: #"["name", "kind"]"#)
        expectDataError(file: task.path("task.json"), line: nil, mentions: ["not a valid JSON object"]) {
            _ = try task.load()
        }
    }

    @Test("a missing task folder is a missing-input error")
    func missingTaskFolder() {
        let root = SyntheticTasks.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: root) }
        let folder = root.appendingPathComponent("nope")
        expectDataError(code: .missingInput, file: folder.relativePath, line: nil, mentions: ["no such task folder"]) {
            _ = try TaskData.load(Job(task: folder))
        }
    }

    @Test("an unknown key in task.json is named with the allowed keys")
    func unknownTaskJSONKey() throws {
        let good = numericLines(prefix: "r")
        let task = try RawTask(
            train: good, validation: good, test: good,
            taskJSON: #"{"name": "t", "kind": "numeric", "labels": ["a", "b"]}"#)
        expectDataError(file: task.path("task.json"), line: nil, mentions: [#"unknown key "labels""#, "kind, name"]) {
            _ = try task.load()
        }
    }

    @Test("an unknown teacher key in task.json is named")
    func unknownTaskJSONTeacherKey() throws {
        let good = numericLines(prefix: "r")
        let task = try RawTask(
            train: good, validation: good, test: good,
            taskJSON: #"{"kind": "numeric", "teacher": {"name": "t", "cost_per_request": 1}}"#)
        expectDataError(file: task.path("task.json"), line: nil, mentions: [#""teacher.cost_per_request""#]) {
            _ = try task.load()
        }
    }

    @Test("a kind in task.json that does not match the rows says to fix kind")
    func kindMismatch() throws {
        let good = numericLines(prefix: "r")
        let task = try RawTask(train: good, validation: good, test: good, taskJSON: #"{"name": "t", "kind": "text"}"#)
        expectDataError(file: task.path("task.json"), line: nil, mentions: [#"kind "text""#, "numeric", "fix"]) {
            _ = try task.load()
        }
    }

    @Test("splits of different kinds are rejected, naming the odd split")
    func splitsOfDifferentKinds() throws {
        let good = numericLines(prefix: "r")
        let task = try RawTask(train: good, validation: good, test: [#"{"input": "text", "teacher": "a"}"#])
        expectDataError(file: task.path("test.jsonl"), line: 1, mentions: ["rows are text", "all splits must match"]) {
            _ = try task.load()
        }
    }

    @Test("splits whose numeric inputs differ in length are rejected")
    func splitsOfDifferentDimensions() throws {
        let good = numericLines(prefix: "r")
        let task = try RawTask(
            train: good, validation: ["", #"{"input": [1, 2, 3], "teacher": "a"}"#], test: good)
        expectDataError(file: task.path("validation.jsonl"), line: 2, mentions: ["3 numbers", "have 2"]) {
            _ = try task.load()
        }
    }

    @Test("a task with a single label is rejected")
    func singleLabel() throws {
        let row = #"{"input": [1, 2], "teacher": "a", "gold": "a"}"#
        let task = try RawTask(train: [row], validation: [row], test: [row])
        expectDataError(file: task.path("train.jsonl"), line: nil, mentions: ["at least 2"]) {
            _ = try task.load()
        }
    }

    @Test("past 20 findings across splits the summary still counts the hidden problems")
    func hiddenProblemCountAcrossSplits() throws {
        let good = numericLines(prefix: "r")
        let task = try RawTask(train: (0..<30).map { _ in "{" }, validation: good, test: good)
        let error = try #require(
            expectDataError(file: task.path("train.jsonl"), line: 1, mentions: ["not valid JSON"]) {
                _ = try task.load()
            })
        // 30 bad rows: 20 are listed, so the last line must say 10 more.
        #expect(error.more.last?.message.contains("10 more problems") == true, "\(error.more.last?.message ?? "")")
    }
}

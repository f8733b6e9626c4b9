import Foundation
import RetortData
import RetortTestSupport
import Testing

/// Job files (FORMATS.md §3): values, relative paths, and `FILE:LINE` errors for bad keys and values.
@Suite final class JobTests {
    let folder = SyntheticTasks.temporaryFolder()

    deinit {
        try? FileManager.default.removeItem(at: folder)
    }

    /// Writes `text` as `job.yaml` (or `name`) in this test's folder.
    func write(_ text: String, name: String = "job.yaml") throws -> URL {
        let url = folder.appendingPathComponent(name)
        try Data(text.utf8).write(to: url)
        return url
    }

    @Test("a full job file is read, with paths relative to the job file")
    func fullJob() throws {
        let url = try write(
            """
            name: support-intents
            data:
              task: tasks/support
            teacher:
              name: big-llm
              cost_per_1k_requests_usd: 2.0
              latency_ms: 900
              price: {input_per_mtok_usd: 15, output_per_mtok_usd: 75}
            candidates:
              numeric:
                - {family: linear, precision: [fp32, int8]}
            constraints:
              max_model_bytes: 1.5MB
              max_latency_ms: 0.5
            objective:
              metric: agreement
              max_drop: 0.02
              speed_tolerance: 0.5
            search:
              budget_seconds: 2m
              seed: 11
            serving:
              usd_per_vcpu_hour: 0.04
            out: results/here
            """)
        let job = try Job.load(url)
        let base = url.deletingLastPathComponent()
        #expect(job.name == "support-intents")
        #expect(job.data == .task(base.appendingPathComponent("tasks/support")))
        #expect(job.teacher.name == "big-llm")
        #expect(job.teacher.costPer1kRequestsUSD == 2)
        #expect(job.teacher.latencyMs == 900)
        #expect(job.teacher.inputPerMTokUSD == 15)
        #expect(job.teacher.outputPerMTokUSD == 75)
        #expect(job.candidates != nil)
        #expect(job.maxModelBytes == 1_500_000)
        #expect(job.maxLatencyMs == 0.5)
        #expect(job.metric == "agreement")
        #expect(job.maxDrop == 0.02)
        #expect(job.speedTolerance == 0.5)
        #expect(job.budgetSeconds == 120)
        #expect(job.seed == 11)
        #expect(job.usdPerVCPUHour == 0.04)
        #expect(job.out == base.appendingPathComponent("results/here"))
    }

    @Test("a JSON job with split files and only data gets the defaults and its file name")
    func minimalJSONJob() throws {
        let url = try write(
            #"{"data": {"train": "a.jsonl", "validation": "b.jsonl", "test": "/abs/c.jsonl"}}"#, name: "mini.json")
        let job = try Job.load(url)
        let base = url.deletingLastPathComponent()
        #expect(job.name == "mini")
        #expect(job.speedTolerance == 1, "p50s within 2× are as fast by default")
        #expect(
            job.data
                == .files(
                    train: base.appendingPathComponent("a.jsonl"), validation: base.appendingPathComponent("b.jsonl"),
                    test: URL(fileURLWithPath: "/abs/c.jsonl")))
        #expect(job.maxDrop == 0.01)
        #expect(job.maxModelBytes == nil)
        #expect(job.budgetSeconds == 600)
        #expect(job.seed == 7)
    }

    @Test("an unknown top-level key is reported at the key's line")
    func unknownTopLevelKey() throws {
        let url = try write(
            """
            name: x
            data:
              task: t

            constraint:
              max_model_bytes: 2MB
            """)
        expectDataError(file: url.relativePath, line: 5, mentions: [#"unknown key "constraint""#, "constraints"]) {
            _ = try Job.load(url)
        }
    }

    @Test("an unknown nested key is reported with its dotted path at its line")
    func unknownNestedKey() throws {
        let url = try write(
            """
            data:
              task: t
            search:
              seed: 3
              budget: 10
            """)
        let mentions = [#"unknown key "search.budget""#, "budget_seconds"]
        expectDataError(file: url.relativePath, line: 5, mentions: mentions) {
            _ = try Job.load(url)
        }
    }

    @Test("a file that is not valid YAML is reported at the offending line")
    func invalidYAML() throws {
        let url = try write(
            """
            name: x
            data:
              task: t: u
            """)
        expectDataError(file: url.relativePath, line: 3, mentions: ["not valid YAML"]) {
            _ = try Job.load(url)
        }
    }

    @Test("a key given twice is an error naming the key, with a line")
    func duplicatedKey() throws {
        let url = try write(
            """
            name: x
            data: {task: t}
            data: {task: u}
            """)
        let error = #expect(throws: DataError.self) { _ = try Job.load(url) }
        #expect(error?.file == url.relativePath)
        #expect(error?.message.contains("\"data\"") == true, "\(error?.message ?? "")")
        #expect(error?.line != nil)
    }

    @Test("a job without data says data is missing")
    func missingData() throws {
        let url = try write(
            """
            name: x
            search: {seed: 1}
            """)
        expectDataError(file: url.relativePath, line: 1, mentions: [#"missing key "data""#]) {
            _ = try Job.load(url)
        }
    }

    @Test("data without task or all three files says what it needs")
    func incompleteData() throws {
        let url = try write(
            """
            name: x
            data:
              train: a.jsonl
            """)
        expectDataError(file: url.relativePath, line: 3, mentions: ["task: FOLDER", "train, validation and test"]) {
            _ = try Job.load(url)
        }
    }

    @Test("a size that is not a size is reported at its line with the accepted forms")
    func badSize() throws {
        let url = try write(
            """
            data:
              task: t
            constraints:
              max_latency_ms: 1
              max_model_bytes: lots
            """)
        expectDataError(
            file: url.relativePath, line: 5,
            mentions: ["constraints.max_model_bytes", #""lots" is not a size"#, "500KB"]
        ) {
            _ = try Job.load(url)
        }
    }

    @Test("a strategy or metric that is not one of the choices is reported at its line with the choices")
    func badChoices() throws {
        let strategy = try write(
            """
            data:
              task: t
            search:
              strategy: fancy
            """)
        expectDataError(
            file: strategy.relativePath, line: 4,
            mentions: [#"unknown strategy "fancy""#, "exhaustive, halving, learned"]
        ) {
            _ = try Job.load(strategy)
        }
        let metric = try write(
            """
            data:
              task: t
            objective:
              metric: f1
            """, name: "metric.yaml")
        expectDataError(file: metric.relativePath, line: 4, mentions: [#"unknown metric "f1""#, "macro_f1"]) {
            _ = try Job.load(metric)
        }
    }

    @Test("every bad value of a job is reported, not only the first")
    func allBadValuesReported() throws {
        let url = try write(
            """
            data:
              task: t
            constraints:
              max_model_bytes: lots
            objective:
              max_drop: 2
            search:
              budget_seconds: soon
            """)
        let error = try #require(
            expectDataError(file: url.relativePath, line: 4, mentions: ["is not a size"]) { _ = try Job.load(url) })
        #expect(error.more.map(\.line) == [6, 8])
        #expect(error.more.first?.message.contains("max_drop must be in [0, 1], got 2") == true)
        #expect(error.more.last?.message.contains(#""soon" is not a duration"#) == true)
    }

    @Test("a job file that does not exist is a missing-input error")
    func missingJobFile() {
        let url = folder.appendingPathComponent("absent.yaml")
        expectDataError(code: .missingInput, file: url.relativePath, line: nil, mentions: ["no such file"]) {
            _ = try Job.load(url)
        }
    }
}

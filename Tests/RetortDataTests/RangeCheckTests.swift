import Foundation
import RetortData
import RetortTestSupport
import Testing

/// Every number a job, device, task.json, duration or size gives is range-checked where it is read: a value that
/// would overflow or trap downstream is a `FILE:LINE` error naming the key, the allowed range and the value.
@Suite final class RangeCheckTests {
    let folder = SyntheticTasks.temporaryFolder()

    deinit {
        try? FileManager.default.removeItem(at: folder)
    }

    func write(_ text: String, name: String = "job.yaml") throws -> URL {
        let url = folder.appendingPathComponent(name)
        try Data(text.utf8).write(to: url)
        return url
    }

    @Test(
        "job values outside their range are rejected at their line, with the range and the value",
        arguments: [
            ("search:\n  budget_seconds: 99999999999999999999h", 4, "budget_seconds must be in (0, 315576000] seconds"),
            ("search:\n  eta: 1000", 4, "eta must be a whole number in [2, 100], got 1000"),
            ("search:\n  rungs: 0", 4, "rungs must be a whole number in [1, 20], got 0"),
            ("search:\n  seed: 99999999999999999999", 4, "seed must be a whole number in [0, "),
            ("constraints:\n  max_model_bytes: 1e30MB", 4, "max_model_bytes must be in [1 B, "),
            ("constraints:\n  max_flops: 1e30", 4, "max_flops must be a whole number in [1, 1000000000000000]"),
            ("constraints:\n  max_latency_ms: 1e300", 4, "max_latency_ms must be in (0, 86400000] ms, got 1e300"),
            ("teacher:\n  latency_ms: -1", 4, "latency_ms must be in [0, 86400000] ms, got -1"),
            ("serving:\n  usd_per_vcpu_hour: 1e300", 4, "usd_per_vcpu_hour must be in [0, 1000000] USD, got 1e300"),
        ])
    func jobValues(section: String, line: Int, message: String) throws {
        let url = try write("data:\n  task: t\n" + section + "\n")
        expectDataError(file: url.relativePath, line: line, mentions: [message]) { _ = try Job.load(url) }
    }

    @Test("the largest values in range are accepted and read exactly")
    func jobEdgeValues() throws {
        let url = try write(
            """
            data:
              task: t
            constraints:
              max_flops: 1e15
              max_model_bytes: 1125899906842624
            search:
              budget_seconds: 87660h
              eta: 100
              rungs: 20
            """)
        let job = try Job.load(url)
        #expect(job.maxFlops == 1_000_000_000_000_000)
        #expect(job.maxModelBytes == ByteSize.maximum)
        #expect(job.budgetSeconds == DurationText.maximum)
        #expect(job.eta == 100 && job.rungs == 20)
    }

    @Test(
        "device values outside their range are rejected with the range",
        arguments: [
            ("flops_per_second: 1e30\nmemory_bytes: 8MB", 2, "flops_per_second must be in (0, 1e+18] FLOP/s, got 1e30"),
            ("flops_per_second: 0\nmemory_bytes: 8MB", 2, "flops_per_second must be in (0, 1e+18] FLOP/s, got 0"),
            ("flops_per_second: 4e9\nmemory_bytes: 1e30MB", 3, "memory_bytes must be in [1 B, "),
            ("flops_per_second: 4e9\nmemory_bytes: 0", 3, "memory_bytes must be in [1 B, "),
            ("flops_per_second: 4e9\nmemory_bytes: 8MB\nusd_per_hour: -2", 4, "usd_per_hour must be in [0, 1000000]"),
        ])
    func deviceValues(body: String, line: Int, message: String) throws {
        let url = try write("name: bad\n" + body + "\n", name: "device.yaml")
        expectDataError(file: url.relativePath, line: line, mentions: [message]) {
            _ = try DeviceProfile.named(url.path)
        }
    }

    @Test("durations beyond 10 years and sizes beyond 1 PiB are out of range, never a trap")
    func hugeDurationAndSizeStrings() throws {
        let duration = try YAMLValue.parse("idle: 99999999999999999999h\n", file: "d.yaml").mapping(allowed: ["idle"])
        let durationError = #expect(throws: DataError.self) { try duration["idle"]?.seconds() }
        #expect(durationError?.line == 1)
        #expect(durationError?.message.contains("idle must be in [0, 315576000] seconds") == true, "\(durationError!)")
        #expect(durationError?.message.contains("got 99999999999999999999h") == true)

        let size = try YAMLValue.parse("cap: 1e30MB\n", file: "s.yaml").mapping(allowed: ["cap"])
        let sizeError = #expect(throws: DataError.self) { try size["cap"]?.byteSize() }
        #expect(sizeError?.message.contains("cap must be in [0 B, ") == true, "\(sizeError!)")
        #expect(sizeError?.message.contains("got 1e30MB") == true)

        #expect(ByteSize.parse("1e30MB") == nil)
        #expect(ByteSize.parse("1e30") == nil)
        #expect(ByteSize.parse("2MiB") == 2_097_152)
        #expect(ByteSize.value(of: "1e30MB") == 1e36)
        #expect(DurationText.parse("99999999999999999999h") == 1e20 * 3600)
    }

    @Test("whole numbers: too large for an integer, fractional, or outside the range")
    func wholeNumbers() throws {
        let entries = try YAMLValue.parse(
            "a: 99999999999999999999\nb: 2.5\nc: 1e3\nd: 7\n", file: "n.yaml"
        ).mapping(allowed: ["a", "b", "c", "d"])
        let tooLarge = #expect(throws: DataError.self) { try entries["a"]?.int(in: 0...1000) }
        #expect(tooLarge?.message == "a: a must be a whole number in [0, 1000], got 99999999999999999999")
        let fraction = #expect(throws: DataError.self) { try entries["b"]?.int(in: 0...1000) }
        #expect(fraction?.message.contains("expected a whole number in [0, 1000]") == true)
        #expect(try entries["c"]?.int(in: 0...1000) == 1000)
        let outside = #expect(throws: DataError.self) { try entries["d"]?.int(in: 8...22) }
        #expect(outside?.message == "d: d must be a whole number in [8, 22], got 7")
        #expect(outside?.line == 4)
    }

    @Test("number ranges print with open and closed ends")
    func rangeDescriptions() {
        #expect(NumberRange.positive(upTo: 86_400).description(unit: "seconds") == "(0, 86400] seconds")
        #expect(NumberRange.nonNegative(upTo: 600_000).description() == "[0, 600000]")
        #expect(NumberRange(0.5, 1, excludingLower: true, excludingUpper: true).description() == "(0.5, 1)")
        #expect(!NumberRange.positive(upTo: 1).contains(0))
        #expect(!NumberRange.positive(upTo: 1).contains(.nan))
        #expect(NumberRange.positive(upTo: 1).contains(1))
    }

    @Test("task.json teacher.params beyond 10^15 is a data error, not a trap")
    func taskParams() throws {
        let url = try write(#"{"name": "t", "teacher": {"params": 1e30}}"#, name: "task.json")
        let error = #expect(throws: DataError.self) { try TaskFile.load(url) }
        #expect(error?.message.contains(#""teacher.params" must be a number in [0, 1e+15]"#) == true, "\(error!)")
        let fine = try write(#"{"name": "t", "teacher": {"params": 7e9}}"#, name: "task2.json")
        #expect(try TaskFile.load(fine).teacher.params == 7_000_000_000)
    }
}

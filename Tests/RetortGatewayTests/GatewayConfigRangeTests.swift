import Foundation
import RetortData
import RetortTeacher
import Testing

/// What `retort gateway check` accepts, `serve` can honour: every number in a gateway config is range-checked by
/// ``GatewayConfig/load(_:)`` (the loader both commands use), with `FILE:LINE`, the key, the range and the value.
@Suite final class GatewayConfigRangeTests {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("retort-gwrange-\(UUID().uuidString)")

    init() throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(at: folder)
    }

    /// A valid config with `deployment` as the one deployment's extra keys and `extra` as top-level sections.
    func config(deployment: String = "", extra: String = "") -> String {
        """
        listen: 127.0.0.1:0
        providers:
          up: {kind: openai, base_url: "http://127.0.0.1:9/v1"}
        routes:
          chat:
            deployments:
              - provider: up
                model: m
                price: {input_per_mtok: 1, output_per_mtok: 2}
        \(deployment.isEmpty ? "" : "        " + deployment)
        \(extra)
        """
    }

    /// Loads `text` from a file the way `gateway check` and `gateway serve` do; returns the error.
    func loadError(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> DataError? {
        let url = folder.appendingPathComponent("gateway.yaml")
        try Data(text.utf8).write(to: url)
        return #expect(throws: DataError.self, sourceLocation: sourceLocation) { try GatewayConfig.load(url.path) }
    }

    @Test("the issue's three configs are rejected with the line and the allowed range")
    func issueConfigs() throws {
        let timeout = try loadError(config(deployment: "timeout_s: 1e19"))
        #expect(timeout?.line == 10, "\(String(describing: timeout))")
        #expect(timeout?.message.hasSuffix("timeout_s must be in (0, 86400] seconds, got 1e19") == true, "\(timeout!)")
        #expect(timeout?.file?.hasSuffix("gateway.yaml") == true)

        let backoff = try loadError(config(extra: "retry: {backoff_ms: 1e29, max_backoff_ms: 1e30}"))
        #expect(backoff?.line == 11, "\(String(describing: backoff))")
        #expect(backoff?.message.contains("backoff_ms must be in [0, 600000] ms, got 1e29") == true, "\(backoff!)")

        let session = try loadError(config(extra: "session:\n  max_duration: 99999999999999999999h"))
        #expect(session?.line == 12, "\(String(describing: session))")
        #expect(
            session?.message.contains("max_duration must be in (0, 315576000] seconds, got 99999999999999999999h")
                == true, "\(session!)")
    }

    @Test(
        "other numbers outside their range are rejected too",
        arguments: [
            ("", "retry: {attempts: 0}", "attempts must be a whole number in [1, 100] (1 = no retry), got 0"),
            ("", "retry: {max_backoff_ms: 1e30}", "max_backoff_ms must be in [0, 600000] ms, got 1e30"),
            ("", "retry: {backoff_ms: 500, max_backoff_ms: 100}", "need backoff_ms ≤ max_backoff_ms, got 500 > 100"),
            ("", "breaker: {window_s: -1}", "window_s must be in (0, 86400] seconds, got -1"),
            ("", "breaker: {cooldown_s: 1e300}", "cooldown_s must be in (0, 86400] seconds, got 1e300"),
            ("", "breaker: {failures: 99999999999999999999}", "failures must be a whole number in [1, 1000000]"),
            ("", "session: {idle_gap: 0}", "idle_gap must be in (0, 315576000] seconds, got 0"),
            ("", "session: {max_usd: 1e300}", "max_usd must be in [0, 1000000000] USD, got 1e300"),
            ("", "users:\n  ana: {budgets: {usd_per_day: -1}}", "usd_per_day must be in [0, 1000000000] USD, got -1"),
            ("", "teams:\n  t: {budgets: {tokens_per_month: 1e30}}", "tokens_per_month must be in [0, 1e+15] tokens"),
            ("concurrency: 0", "", "concurrency must be a whole number in [1, 100000], got 0"),
            ("rate_limit: {rpm: 0}", "", "rpm must be a whole number in [1, 1000000000] requests per minute, got 0"),
            ("rate_limit: {tpm: -5}", "", "tpm must be a whole number in [1, 1000000000000] tokens per minute"),
            ("timeout_s: 0", "", "timeout_s must be in (0, 86400] seconds, got 0"),
        ])
    func otherRanges(deployment: String, extra: String, message: String) throws {
        let error = try loadError(config(deployment: deployment, extra: extra))
        #expect(error?.message.contains(message) == true, "\(String(describing: error))")
        #expect(error?.line != nil)
    }

    @Test("a price beyond a million USD per million tokens is rejected")
    func hugePrice() throws {
        let text = config().replacingOccurrences(of: "output_per_mtok: 2", with: "output_per_mtok: 1e300")
        let error = try loadError(text)
        #expect(
            error?.message.contains("output_per_mtok must be in [0, 1000000] USD per million tokens, got 1e300")
                == true,
            "\(String(describing: error))")
    }

    @Test("the largest values in range load, so serve can honour what check accepts")
    func edgeValuesLoad() throws {
        let url = folder.appendingPathComponent("edge.yaml")
        let text = config(
            deployment: "timeout_s: 86400",
            extra: """
                retry: {attempts: 100, backoff_ms: 600000, max_backoff_ms: 600000}
                breaker: {failures: 1000000, window_s: 86400, cooldown_s: 86400}
                session: {idle_gap: 87660h, max_duration: 87660h, max_usd: 1e9}
                """)
        try Data(text.utf8).write(to: url)
        let loaded = try GatewayConfig.load(url.path)
        #expect(loaded.routes["chat"]?.deployments.first?.timeoutSeconds == 86_400)
        #expect(loaded.retry.maxBackoffMilliseconds == 600_000)
        #expect(loaded.session.maxDurationSeconds == DurationText.maximum)
        #expect(Int64(exactly: (loaded.routes["chat"]?.deployments.first?.timeoutSeconds ?? 0) * 1000) != nil)
    }
}

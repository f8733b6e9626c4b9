import Foundation
import RetortTestSupport
import Testing

@Suite struct GatewayCommandTests {
    static let config = """
        ledger: var/gateway.sqlite
        keys:
          - {sha256: 0000000000000000000000000000000000000000000000000000000000000000, user: ana, team: search}
        providers:
          p: {kind: openai, base_url: "http://127.0.0.1:9/v1", api_key_env: P_KEY}
        routes:
          teacher:
            fallback: same-model
            deployments:
              - {provider: p, model: m, price: {input_per_mtok: 1, output_per_mtok: 2}}
        """

    @Test("gateway key prints a key once with the entry that holds only its SHA-256")
    func key() async throws {
        let workspace = Workspace()
        let result = try await workspace.retort("gateway", "key", "--user", "ana", "--team", "search")
        #expect(result.exitCode == 0, "\(result)")
        let token = try #require(result.stdout.split(separator: "\n").first?.split(separator: " ").last)
        #expect(token.hasPrefix("rk-") && token.count == 67)
        let hash = try #require(
            result.stdout.split(separator: "\n").first { $0.contains("sha256:") }?.split(separator: " ").last
        )
        #expect(hash.count == 64 && !result.stdout.contains("sha256: \(token)"))
        try workspace.write(
            GatewayCommandTests.config.replacingOccurrences(of: String(repeating: "0", count: 64), with: String(hash)),
            to: "gateway.yaml"
        )
        let check = try await workspace.retort("gateway", "check", "--config", "gateway.yaml")
        #expect(check.exitCode == 0 && check.stdout.contains("teacher (fallback same-model): p/m"), "\(check)")
    }

    @Test("a bad config, a missing ledger and an unknown session are one-line errors with a non-zero exit")
    func errors() async throws {
        let workspace = Workspace()
        try workspace.write(GatewayCommandTests.config + "\nretires: 3\n", to: "gateway.yaml")
        let bad = try await workspace.retort("gateway", "serve", "--config", "gateway.yaml")
        #expect(bad.exitCode == 65 && !bad.crashed, "\(bad)")
        #expect(bad.stderrLines.count == 1 && bad.stderr.hasPrefix("gateway.yaml:11: error:"), "\(bad)")
        #expect(bad.stderr.contains("retires"), "\(bad)")
        try workspace.write(GatewayCommandTests.config, to: "gateway.yaml")
        let usage = try await workspace.retort("usage", "--config", "gateway.yaml")
        #expect(usage.exitCode == 66 && usage.stderr.contains("no ledger yet"), "\(usage)")
        let by = try await workspace.retort("usage", "--config", "gateway.yaml", "--by", "planet")
        #expect(by.exitCode == 64, "\(by)")
        let confirm = try await workspace.retort("gateway", "confirm", "nope", "--config", "gateway.yaml")
        #expect(confirm.exitCode == 64 && confirm.stderr.contains("no session nope has tripped"), "\(confirm)")
    }
}

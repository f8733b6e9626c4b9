import Foundation
import RetortTestSupport
import Testing

/// The PostgreSQL server `make test-postgres` starts, nil when none is set.
private let replicaPostgresURL = ProcessInfo.processInfo.environment["RETORT_TEST_POSTGRES_URL"]

@Suite struct PostgresReplicaTests {
    /// A new database on the test server (`createdb`), so the test starts from an empty ledger; returns its URL.
    static func freshDatabase() throws -> String {
        let url = try #require(replicaPostgresURL)
        let address = try #require(url.range(of: #"@[^/]+"#, options: .regularExpression))
        let hostPort = url[address].dropFirst().split(separator: ":")
        let name = "retort_replicas_\(UUID().uuidString.prefix(8).lowercased())"
        let createdb = Process()
        createdb.executableURL = URL(fileURLWithPath: "/usr/lib/postgresql/15/bin/createdb")
        createdb.arguments = [
            "-h", String(hostPort[0]), "-p", String(hostPort.count > 1 ? hostPort[1] : "5432"), "-U", "retort", name,
        ]
        try createdb.run()
        createdb.waitUntilExit()
        #expect(createdb.terminationStatus == 0)
        return String(url[..<url.index(after: address.upperBound)]) + name
    }

    @Test("a bad postgres:// ledger or an unset password variable stops serve and check with one line and exit 65")
    func badLedgerConfig() async throws {
        let workspace = Workspace()
        for (ledger, line, fix) in [
            ("ledger: postgres://db.internal/retort", 1, "names no user"),
            (
                "ledger: postgres://retort@db.internal/retort\nledger_password_env: RETORT_TEST_UNSET_PASSWORD", 2,
                "export RETORT_TEST_UNSET_PASSWORD"
            ),
        ] {
            try workspace.write(
                GatewayCommandTests.config.replacingOccurrences(of: "ledger: var/gateway.sqlite", with: ledger),
                to: "gateway.yaml")
            for command in ["serve", "check"] {
                let result = try await workspace.retort("gateway", command, "--config", "gateway.yaml")
                #expect(result.exitCode == 65 && !result.crashed, "\(result)")
                #expect(result.stderrLines.count == 1, "\(result)")
                #expect(
                    result.stderr.hasPrefix("gateway.yaml:\(line): error:") && result.stderr.contains(fix), "\(result)")
            }
        }
    }

    @Test(
        "two gateway processes on one PostgreSQL ledger: a deploy and a rollback reach both within a second, unsignalled",
        .enabled(if: replicaPostgresURL != nil, "needs `make test-postgres` (RETORT_TEST_POSTGRES_URL)"))
    func deploymentsReachEveryReplica() async throws {
        let (workspace, runFolder, token) = try await DeployCommandTests.workspace()
        let database = try Self.freshDatabase()
        let yaml = try String(contentsOf: workspace.url("gateway.yaml"), encoding: .utf8)
        try workspace.write(
            yaml.replacingOccurrences(of: "ledger: var/gateway.sqlite", with: "ledger: \(database)"), to: "gateway.yaml"
        )
        let first = try await ServerProcess.start(config: "gateway.yaml", in: workspace.folder)
        let second = try await ServerProcess.start(config: "gateway.yaml", in: workspace.folder)
        defer {
            first.process.terminate()
            second.process.terminate()
        }
        let input = "please word1x2 the order word1x0 help"
        for replica in [first, second] {
            #expect(try await replica.chat(route: "teacher", text: input, token: token).status == 503)
        }
        // No replica gets a SIGHUP: each must find the deployment in the shared ledger by itself.
        try? FileManager.default.removeItem(at: workspace.url("var/gateway-postgres.pid"))
        let deploy = try await workspace.retort(
            "deploy", runFolder.path, "--config", "gateway.yaml", "--route", "teacher", "--shadow", "0")
        #expect(deploy.exitCode == 0, "\(deploy)")
        let deployed = ContinuousClock.now
        for replica in [first, second] {
            let served = try await replica.until(seconds: 1.5) {
                try await replica.chat(route: "teacher", text: input, token: token).servedModel
                    == "student/linear-b10-fp32.1"
            }
            #expect(served, "replica on port \(replica.port) serves the student")
        }
        #expect(ContinuousClock.now - deployed < .seconds(3))

        let rollback = try await workspace.retort(
            "deploy", "rollback", "--config", "gateway.yaml", "--route", "teacher", "--reason", "replica test")
        #expect(rollback.exitCode == 0, "\(rollback)")
        for replica in [first, second] {
            let onTeacher = try await replica.until(seconds: 1.5) {
                try await replica.chat(route: "teacher", text: input, token: token).servedModel == nil
            }
            #expect(onTeacher, "replica on port \(replica.port) is back on the teacher")
        }
        let usage = try await workspace.retort("usage", "--config", "gateway.yaml", "--by", "route", "--json")
        #expect(usage.exitCode == 0, "\(usage)")
        let groups = try #require(try JSONSerialization.jsonObject(with: Data(usage.stdout.utf8)) as? [[String: Any]])
        let requests = groups.first { $0["group"] as? String == "teacher" }?["requests"] as? Int ?? 0
        #expect(requests >= 6, "both replicas' requests are in the one ledger: \(usage.stdout)")
    }
}

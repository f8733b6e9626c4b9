import Foundation
import HTTPTypes
import NIOCore
import RetortGateway
import RetortTeacher
import Synchronization
import Testing

@Suite struct PostgresGatewayTests {
    @Test(
        "three gateways on one PostgreSQL ledger admit exactly the 10 requests a budget holds, of 100 sent to all three",
        .enabled(if: postgresUp, needsPostgres))
    func replicasNeverOverspendABudget() async throws {
        // Each request reserves (41 prompt bytes + 1000 max tokens) × $40/Mtok = $0.04164; the team's budget holds 10.
        // The upstream holds every answer until the other 90 requests have been refused, so the 10 reservations are
        // all held, on whichever replica took them, while the rest arrive.
        let location = try freshPostgresDatabase()
        let upstream = GatedUpstream()
        try await withLoopbackServer(upstream.router()) { port in
            let config = try GatedUpstream.budgetConfig(port: port, ledger: location.description)
            let replicas = try (0..<3).map { _ in try Gateway(config: config) }
            try await withLiveGateway(replicas[0]) { first in
                try await withLiveGateway(replicas[1]) { second in
                    try await withLiveGateway(replicas[2]) { third in
                        let clients = try [first, second, third].map {
                            ConcurrentClient(port: try #require($0.port), connections: 64)
                        }
                        defer { for client in clients { client.shutdown() } }
                        let statuses = try await upstream.flood(count: 100, admitted: 10) { index in
                            try await clients[index % 3].post(chatBody("teacher", maxTokens: 1000))
                        }
                        #expect(statuses.filter { $0.0 == 200 }.count == 10, "\(statuses.map { $0.0 })")
                        #expect(statuses.filter { $0.1 == "budget_exceeded" }.count == 90)
                        #expect(await upstream.calls == 10)
                    }
                }
            }
            // One ledger holds every replica's rows: each answer and each refusal, and no reservation is left held.
            let ledger = try Ledger(postgres: location, path: temporaryLedger())
            defer { ledger.close() }
            let rows = try ledger.rows()
            #expect(rows.count == 100)
            #expect(rows.filter { $0.status == 200 }.count == 10)
            #expect(rows.reduce(0) { $0 + $1.costUSD } <= 0.42)
            #expect(try ledger.liveReservations(now: Date().timeIntervalSince1970).count == 0)
            for replica in replicas { await replica.shutdown() }
        }
    }

    /// A flag one task sets and others read.
    final class Flag: Sendable {
        private let value = Mutex(false)
        var isSet: Bool { value.withLock { $0 } }
        func set() { value.withLock { $0 = true } }
    }

    /// Runs `scripts/postgres_cluster.sh ARGUMENTS` on a cluster of its own in `folder`; returns its last output line.
    /// (Waits through a termination handler: `waitUntilExit` can hang on a test thread once the script's server runs.)
    @discardableResult
    static func cluster(_ arguments: [String], folder: String) async throws -> String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let output = URL(fileURLWithPath: folder + ".out")
        try Data().write(to: output)
        defer { try? FileManager.default.removeItem(at: output) }
        let handle = try FileHandle(forWritingTo: output)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [root.appendingPathComponent("scripts/postgres_cluster.sh").path] + arguments
        var environment = ProcessInfo.processInfo.environment
        environment["RETORT_PG_DIR"] = folder
        process.environment = environment
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = handle
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
            do { try process.run() } catch {
                process.terminationHandler = nil
                continuation.resume(throwing: error)
            }
        }
        try? handle.close()
        #expect(status == 0, "postgres_cluster.sh \(arguments)")
        let text = String(decoding: try Data(contentsOf: output), as: UTF8.self)
        return text.split(separator: "\n").last.map(String.init) ?? ""
    }

    @Test(
        "PostgreSQL restarted under load: unrecordable requests get 503 ledger_unavailable, traffic recovers by itself, and every answer the clients got is in the ledger",
        .enabled(if: postgresUp, needsPostgres))
    func serverRestartUnderLoad() async throws {
        // A cluster of its own, so restarting it disturbs no other test.
        let folder = "/tmp/retort-pg-restart-\(UUID().uuidString.prefix(8))"
        let url = try await Self.cluster(["up"], folder: folder)
        do {
            guard case .success(let location) = PostgresLedgerLocation.parse(url) else {
                Issue.record("postgres_cluster.sh printed no URL: \(url)")
                return
            }
            try await withFakeProvider { port, _, _ in
                let config = try gatewayConfig(port: port, ledger: url, routes: failoverRoute("ok"))
                let gateway = try Gateway(config: config)
                try await withLiveGateway(gateway) { client in
                    let restarted = Flag()
                    let statuses = try await withThrowingTaskGroup(of: [(Int, String?)].self) { group in
                        for _ in 0..<4 {
                            group.addTask {
                                var seen: [(Int, String?)] = []
                                var okSinceRestart = 0
                                let deadline = ContinuousClock.now + .seconds(60)
                                while okSinceRestart < 5, ContinuousClock.now < deadline {
                                    let response = try await client.chat(chatBody("teacher"))
                                    let code = try? body(response)["error"]?["code"]?.string
                                    seen.append((Int(response.status.code), code))
                                    if restarted.isSet, response.status == .ok { okSinceRestart += 1 }
                                }
                                return seen
                            }
                        }
                        try await Task.sleep(for: .milliseconds(300))
                        try await Self.cluster(["restart"], folder: folder)
                        restarted.set()
                        var all: [(Int, String?)] = []
                        for try await seen in group { all += seen }
                        return all
                    }
                    let answered = statuses.filter { $0.0 == 200 }.count
                    let unavailable = statuses.filter { $0.0 == 503 && $0.1 == "ledger_unavailable" }.count
                    #expect(
                        answered + unavailable == statuses.count, "only answers and ledger_unavailable: \(statuses)")
                    #expect(unavailable > 0, "requests during the restart were refused, not answered unrecorded")
                    #expect(answered >= 20, "traffic recovered on every client without a gateway restart")
                    let ledger = try Ledger(postgres: location, path: temporaryLedger())
                    defer { ledger.close() }
                    #expect(try ledger.rows().filter { $0.status == 200 }.count == answered)
                }
                await gateway.shutdown()
            }
        } catch {
            _ = try? await Self.cluster(["down"], folder: folder)
            throw error
        }
        try await Self.cluster(["down"], folder: folder)
    }
}

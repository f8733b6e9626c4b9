import AsyncHTTPClient
import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import RetortTestSupport
import Testing

@testable import RetortGateway
@testable import RetortTeacher
@testable import RetortUsage

let price = "price: {input_per_mtok: 10, cached_input_per_mtok: 1, output_per_mtok: 40}"

/// Two-deployment route `teacher`: `first` at the OpenAI-style fake, then `ok` at `second`'s kind.
func failoverRoute(_ first: String, second: String = "fake-openai", fallback: String = "any", timeout: Double = 600)
    -> String
{
    """
      teacher:
        fallback: \(fallback)
        deployments:
          - {provider: fake-openai, model: \(first), timeout_s: \(timeout), \(price)}
          - {provider: \(second), model: ok, \(price)}
      other:
        deployments:
          - {provider: fake-openai, model: ok, \(price)}
    """
}

func header(_ response: TestResponse, _ name: String) -> String? {
    response.headers[HTTPField.Name(name) ?? .contentType]
}

func body(_ response: TestResponse) throws -> JSON { try JSON.parse(Data(response.body.readableBytesView)) }

func header(_ response: LiveResponse, _ name: String) -> String? {
    response.headers[HTTPField.Name(name) ?? .contentType]
}

func body(_ response: LiveResponse) throws -> JSON { try JSON.parse(Data(response.body.readableBytesView)) }

@Suite struct GatewayTests {
    @Test func plainAnswerCarriesHeadersLogprobsAndALedgerRow() async throws {
        try await withGateway(routes: failoverRoute("ok")) { client, gateway, _, bodies in
            let response = try await client.chat(chatBody("teacher"))
            #expect(response.status == .ok)
            #expect(header(response, "x-retort-served-model") == "ok")
            #expect(header(response, "x-retort-deployment") == "fake-openai/ok")
            #expect(header(response, "x-retort-attempts") == "1")
            let answer = try body(response)
            #expect(answer["choices"]?[0]?["logprobs"]?["content"]?[0]?["top_logprobs"]?.array?.count == 2)
            #expect(await bodies.last?["model"]?.string == "ok")
            let rows = try gateway.ledger.rows()
            #expect(rows.count == 1)
            #expect(rows[0].usage == TokenUsage(inputUncached: 20, cacheRead: 100, output: 30, reasoning: 20))
            #expect(approximatelyEqual(rows[0].costUSD, 0.0015, within: 1e-12))
            #expect(rows[0].route == "teacher" && rows[0].user == "ana" && rows[0].team == "search")
            #expect(rows[0].status == 200 && rows[0].attempts == 1 && !rows[0].failover)
        }
    }

    @Test func anthropicDeploymentAnswersInOpenAIShapeWithoutLogprobs() async throws {
        let routes = """
              teacher:
                deployments:
                  - {provider: fake-anthropic, model: claude, price: {input_per_mtok: 15, cached_input_per_mtok: 1.5, cache_write_per_mtok: 18.75, output_per_mtok: 75}}
            """
        try await withGateway(routes: routes) { client, gateway, _, bodies in
            let response = try await client.chat(chatBody("teacher"))
            #expect(response.status == .ok)
            let answer = try body(response)
            #expect(answer["choices"]?[0]?["message"]?["content"]?.string == "refund_request")
            #expect(answer["choices"]?[0]?["logprobs"] == .null)
            #expect(await bodies.last?["system"]?.string == "Answer with one label.")
            let row = try #require(try gateway.ledger.rows().first)
            #expect(row.usage == TokenUsage(inputUncached: 20, cacheRead: 100, cacheWrite: 50, output: 30))
            #expect(approximatelyEqual(row.costUSD, 0.0036375, within: 1e-12))
        }
    }

    @Test(arguments: [
        ("e500", 4, true), ("garbage", 4, true), ("reset", 4, true), ("gone", 2, true), ("retired410", 2, true),
        ("r429long", 2, true), ("e503once", 2, false), ("r429", 2, false),
    ])
    func faultsRetryOrFailOver(model: String, attempts: Int, failover: Bool) async throws {
        try await withGateway(routes: failoverRoute(model)) { client, gateway, calls, _ in
            let response = try await client.chat(chatBody("teacher"))
            #expect(response.status == .ok, "\(model)")
            #expect(header(response, "x-retort-attempts") == String(attempts), "\(model)")
            #expect(header(response, "x-retort-deployment") == (failover ? "fake-openai/ok" : "fake-openai/\(model)"))
            let row = try #require(try gateway.ledger.rows().first)
            #expect(row.failover == failover && row.attempts == attempts && row.status == 200)
            if model == "gone" {
                // Retired until reload: the next request does not try it again.
                let again = try await client.chat(chatBody("teacher"))
                #expect(header(again, "x-retort-attempts") == "1")
                #expect(await calls.count("gone") == 1)
            }
        }
    }

    @Test func slowFirstByteTimesOutAndFailsOver() async throws {
        let routes = failoverRoute("slow", timeout: 0.3)
        try await withGateway(routes: routes, extra: "") { client, _, _, _ in
            let response = try await client.chat(chatBody("teacher"))
            #expect(response.status == .ok)
            #expect(header(response, "x-retort-deployment") == "fake-openai/ok")
            #expect(header(response, "x-retort-attempts") == "4")
        }
    }

    @Test func upstreamClientErrorsPassBackWithoutFailover() async throws {
        try await withGateway(routes: failoverRoute("bad400")) { client, gateway, calls, _ in
            let response = try await client.chat(chatBody("teacher"))
            #expect(response.status == .badRequest)
            #expect(try body(response)["error"]?["message"]?.string?.contains("max_tokens is too large") == true)
            #expect(await calls.count("ok") == 0)
            #expect(try gateway.ledger.rows().first?.status == 400)
        }
    }

    @Test func sameModelFallbackNeverSwitchesModels() async throws {
        let routes = """
              teacher:
                fallback: same-model
                deployments:
                  - {provider: fake-openai, model: e500, \(price)}
                  - {provider: fake-anthropic, model: e500, \(price)}
                  - {provider: fake-openai, model: ok, \(price)}
            """
        try await withGateway(routes: routes) { client, gateway, calls, _ in
            let response = try await client.chat(chatBody("teacher"))
            #expect(response.status == .serviceUnavailable)
            #expect(try body(response)["error"]?["code"]?.string == "no_deployment_available")
            #expect(header(response, "x-retort-attempts") == "6")
            #expect(await calls.count("ok") == 0)
            #expect(try gateway.ledger.rows().first?.status == 503)
        }
    }

    @Test func breakerOpensAfterFailuresSoAnOutageCostsOneAttempt() async throws {
        // A window and a cool-down longer than any test run: a starved test process can take minutes between requests.
        let extra = "breaker: {failures: 3, window_s: 600, cooldown_s: 600}"
        try await withGateway(routes: failoverRoute("e500"), extra: extra) { client, _, calls, _ in
            let first = try await client.chat(chatBody("teacher"))
            #expect(header(first, "x-retort-attempts") == "4")
            let second = try await client.chat(chatBody("teacher"))
            #expect(second.status == .ok)
            #expect(header(second, "x-retort-attempts") == "1")
            #expect(await calls.count("e500") == 3)
        }
    }

    @Test func authRoutesAndModels() async throws {
        let keyExtra = """
              - sha256: \(Gateway.hash(token: "rk-limited"))
                user: bo
                team: search
                routes: [other]
            """
        try await withGateway(routes: failoverRoute("ok"), keyExtra: keyExtra) { client, gateway, _, _ in
            let unknown = try await client.chat(chatBody("teacher"), token: "rk-nope")
            #expect(unknown.status == .unauthorized)
            #expect(try body(unknown)["error"]?["code"]?.string == "invalid_api_key")
            let forbidden = try await client.chat(chatBody("teacher"), token: "rk-limited")
            #expect(forbidden.status == .forbidden)
            #expect(try body(forbidden)["error"]?["code"]?.string == "route_not_allowed")
            let missing = try await client.chat(chatBody("nope"))
            #expect(missing.status == .notFound)
            #expect(try body(missing)["error"]?["code"]?.string == "model_not_found")
            let models = try await client.execute(
                uri: "/v1/models", method: .get, headers: [.authorization: "Bearer rk-limited"]
            )
            #expect(try body(models)["data"]?.array?.compactMap { $0["id"]?.string } == ["other"])
            // Every answer, a refusal included, names its request: a fresh id, or the client's own when usable.
            let requestID = try #require(HTTPField.Name("x-request-id"))
            let fresh = [unknown, forbidden, missing, models].compactMap { $0.headers[requestID] }
            #expect(fresh.count == 4 && Set(fresh).count == 4 && fresh.allSatisfy { $0.hasPrefix("req-") })
            let mine = try await client.execute(
                uri: "/v1/models", method: .get, headers: [.authorization: "Bearer rk-limited", requestID: "trace-42"])
            #expect(mine.headers[requestID] == "trace-42")
            let unusable = try await client.execute(
                uri: "/v1/models", method: .get,
                headers: [.authorization: "Bearer rk-limited", requestID: String(repeating: "x", count: 129)])
            #expect(unusable.headers[requestID]?.hasPrefix("req-") == true)
            // Refusals with a valid key have ledger rows; the unknown key has none.
            #expect(try gateway.ledger.rows().map(\.status) == [403, 404])
        }
    }

    @Test func openAIStreamRelaysChunksAndUsageOnlyWhenAsked() async throws {
        try await withGateway(routes: failoverRoute("ok")) { client, gateway, _, bodies in
            let plain = try await client.chat(chatBody("teacher", stream: true))
            let text = String(buffer: plain.body)
            #expect(plain.status == .ok)
            #expect(text.hasSuffix("data: [DONE]\n\n"))
            #expect(!text.contains("\"usage\""))
            #expect(await bodies.last?["stream_options"]?["include_usage"]?.bool == true)
            let withUsage = try await client.chat(chatBody("teacher", stream: true, includeUsage: true))
            #expect(String(buffer: withUsage.body).contains("\"prompt_tokens\":120"))
            let rows = try gateway.ledger.rows()
            #expect(rows.count == 2 && rows.allSatisfy { $0.stream && $0.status == 200 && $0.usage.total == 150 })
        }
    }

    @Test(arguments: ["fake-openai", "fake-anthropic"])
    func streamCutAfterFirstByteEndsWithAnErrorEvent(provider: String) async throws {
        let routes = """
              teacher:
                deployments:
                  - {provider: \(provider), model: cut, \(price)}
                  - {provider: fake-openai, model: ok, \(price)}
            """
        try await withGateway(routes: routes) { client, gateway, _, _ in
            let response = try await client.chat(chatBody("teacher", stream: true, includeUsage: true))
            let text = String(buffer: response.body)
            #expect(text.contains("refund"))
            #expect(text.contains("event: error\ndata: {\"error\""))
            #expect(!text.contains("[DONE]"))
            #expect(!text.contains("\"finish_reason\":\"stop\""))
            let row = try #require(try gateway.ledger.rows().first)
            #expect(row.status == 502 && row.errorCode == "stream_failed" && row.deployment == "\(provider)/cut")
            if provider == "fake-anthropic" {
                // The input usage arrived with message_start and is kept.
                #expect(row.usage.inputUncached == 20 && row.usage.cacheRead == 100)
            }
        }
    }

    @Test func anthropicStreamBecomesOpenAIEvents() async throws {
        let routes = """
              teacher:
                deployments:
                  - {provider: fake-anthropic, model: claude, \(price)}
            """
        try await withGateway(routes: routes) { client, gateway, _, _ in
            let response = try await client.chat(chatBody("teacher", stream: true, includeUsage: true))
            let text = String(buffer: response.body)
            let events = text.components(separatedBy: "\n\n").filter { $0.hasPrefix("data: {") }
            let content = try events.compactMap {
                try JSON.parse(String($0.dropFirst(6)))["choices"]?[0]?["delta"]?["content"]?.string
            }.joined()
            #expect(content == "refund_request")
            #expect(text.hasSuffix("data: [DONE]\n\n"))
            #expect(
                try gateway.ledger.rows().first?.usage
                    == TokenUsage(inputUncached: 20, cacheRead: 100, cacheWrite: 50, output: 30))
        }
    }

    @Test func concurrentRequestsNeverOverspendABudget() async throws {
        // Each request reserves (41 prompt bytes + 1000 max tokens) × $40/Mtok = $0.04164; the budget holds 10.
        // The upstream holds every answer until the other 90 requests have been refused, so the 10 reservations are
        // all held while the rest arrive, however slowly a loaded machine sends them.
        let upstream = GatedUpstream()
        try await withLoopbackServer(upstream.router()) { port in
            let config = try GatedUpstream.budgetConfig(port: port, ledger: temporaryLedger())
            let gateway = try Gateway(config: config)
            try await withLiveGateway(gateway) { client in
                // The test client sends one request at a time; AsyncHTTPClient sends all 100 at once.
                let http = ConcurrentClient(port: try #require(client.port), connections: 128)
                defer { http.shutdown() }
                let statuses = try await upstream.flood(count: 100, admitted: 10) { _ in
                    try await http.post(chatBody("teacher", maxTokens: 1000))
                }
                let admitted = statuses.filter { $0.0 == 200 }.count
                #expect(admitted == 10, "\(statuses.map { $0.0 })")
                #expect(statuses.filter { $0.1 == "budget_exceeded" }.count == 90)
                #expect(await upstream.calls == 10)
                let spent = try gateway.ledger.rows().reduce(0) { $0 + $1.costUSD }
                #expect(spent <= 0.42)
            }
            await gateway.shutdown()
        }
    }

    @Test func budgetRefusalGivesTheFigures() async throws {
        let keyExtra = "    budgets: {usd_per_day: 0.01}"
        try await withGateway(routes: failoverRoute("ok"), keyExtra: keyExtra) { client, _, _, _ in
            let response = try await client.chat(chatBody("teacher", maxTokens: 1000))
            #expect(response.status == .tooManyRequests)
            let error = try #require(try body(response)["error"])
            #expect(error["code"]?.string == "budget_exceeded")
            #expect(error["limit_usd"]?.double == 0.01)
            #expect(error["spent_usd"]?.double == 0)
            #expect(approximatelyEqual((error["request_max_usd"]?.double ?? 0), 0.04164, within: 1e-9))
            #expect(error["budget"]?.string == "key of ana usd_per_day")
        }
    }

    @Test func runawaySessionNeedsConfirmation() async throws {
        // Each answer costs $0.0015; the session may spend $0.002 before asking.
        try await withGateway(routes: failoverRoute("ok"), extra: "", webhook: true) { client, gateway, _, bodies in
            #expect(try await client.chat(chatBody("teacher"), session: "job-7").status == .ok)
            #expect(try await client.chat(chatBody("teacher"), session: "job-7").status == .ok)
            let stopped = try await client.chat(chatBody("teacher"), session: "job-7")
            #expect(stopped.status == .conflict)
            let error = try #require(try body(stopped)["error"])
            #expect(error["code"]?.string == "confirmation_required")
            #expect(error["session"]?.string == "job-7")
            #expect(approximatelyEqual((error["spend_usd"]?.double ?? 0), 0.003, within: 1e-12))
            #expect(error["tokens"]?.int == 300)
            #expect(error["limit_usd"]?.double == 0.002)
            #expect(try await client.chat(chatBody("teacher"), session: "job-7").status == .conflict)
            #expect(try gateway.ledger.trips().count == 1)
            // The trip was posted to notify.webhook (the loopback provider's /hook) once.
            let posted = try await until {
                await bodies.bodies.contains { $0["event"]?.string == "session_tripped" }
            }
            #expect(posted, "the trip reached the webhook")
            let events = await bodies.bodies.filter { $0["event"]?.string == "session_tripped" }
            #expect(events.count == 1 && events.first?["session"]?.string == "job-7")
            let other = try await client.execute(
                uri: "/v1/sessions/job-7/confirm", method: .post, headers: [.authorization: "Bearer \(adminToken)"]
            )
            #expect(other.status == .notFound)
            let confirmed = try await client.execute(
                uri: "/v1/sessions/job-7/confirm", method: .post, headers: [.authorization: "Bearer \(testToken)"]
            )
            #expect(confirmed.status == .ok)
            // Runs to the next multiple of the limit: $0.004, so one more answer, then a new trip.
            #expect(try await client.chat(chatBody("teacher"), session: "job-7").status == .ok)
            #expect(try await client.chat(chatBody("teacher"), session: "job-7").status == .conflict)
            #expect(try gateway.ledger.trips().count == 2)
            // The operator's CLI path: a confirmation written to the ledger lets the session go on.
            try gateway.ledger.confirm(session: "job-7", time: Date().timeIntervalSince1970 + 1)
            #expect(try await client.chat(chatBody("teacher"), session: "job-7").status == .ok)
        }
    }

    @Test func ledgerThatCannotBeWrittenFailsClosed() async throws {
        try await withFakeProvider { port, calls, _ in
            let path = temporaryLedger()
            let config = try gatewayConfig(port: port, ledger: path, routes: failoverRoute("ok"))
            let gateway = try Gateway(config: config, ledgerBusyTimeout: 0.2)
            try await withLiveGateway(gateway) { client in
                #expect(try await client.chat(chatBody("teacher")).status == .ok)
                // Another process holds the write lock: the ledger cannot be written.
                let lock = try await LedgerLock(path: path)
                let refused = try await client.chat(chatBody("teacher"))
                #expect(refused.status == .serviceUnavailable)
                #expect(try body(refused)["error"]?["code"]?.string == "ledger_unavailable")
                let again = try await client.chat(chatBody("teacher"))
                #expect(again.status == .serviceUnavailable)
                let callsWhileBlocked = await calls.count("ok")
                await lock.release()
                #expect(try await client.chat(chatBody("teacher")).status == .ok)
                // Fails closed: the second refused request never reached the upstream.
                #expect(callsWhileBlocked == 2)
            }
            await gateway.shutdown()
        }
    }

    @Test func reloadTakesNewRoutesAndForgetsRetiredModels() async throws {
        try await withFakeProvider { port, calls, _ in
            let path = temporaryLedger()
            let config = try gatewayConfig(port: port, ledger: path, routes: failoverRoute("gone"))
            let gateway = try Gateway(config: config)
            try await withLiveGateway(gateway) { client in
                _ = try await client.chat(chatBody("teacher"))
                _ = try await client.chat(chatBody("teacher"))
                #expect(await calls.count("gone") == 1)
                var fresh = try gatewayConfig(port: port, ledger: path, routes: failoverRoute("gone"))
                fresh.routes["extra"] = fresh.routes["other"].map {
                    var route = $0
                    route.name = "extra"
                    return route
                }
                await gateway.apply(fresh)
                let models = try await client.execute(
                    uri: "/v1/models", method: .get, headers: [.authorization: "Bearer \(testToken)"]
                )
                #expect(try body(models)["data"]?.array?.count == 3)
                _ = try await client.chat(chatBody("teacher"))
                #expect(await calls.count("gone") == 2)
            }
            await gateway.shutdown()
        }
    }

    @Test func dashboardMetricsAndUsage() async throws {
        // A cooldown longer than any test run, so a slow machine cannot see the breaker half-open already.
        let breaker = "breaker: {failures: 5, window_s: 600, cooldown_s: 600}"
        try await withGateway(routes: failoverRoute("e500"), extra: breaker) { client, gateway, _, _ in
            for _ in 0..<3 { _ = try await client.chat(chatBody("teacher")) }
            _ = try await client.chat(chatBody("other"))
            let denied = try await client.execute(
                uri: "/dashboard", method: .get, headers: [.authorization: "Bearer \(testToken)"]
            )
            #expect(denied.status == .forbidden)
            let page = try await client.execute(uri: "/dashboard?key=\(adminToken)", method: .get)
            #expect(page.status == .ok)
            let html = String(buffer: page.body)
            #expect(html.contains("Spend per day by team") && html.contains("fake-openai/e500"))
            for reference in ["src=\"http", "href=\"http", "url(http", "@import"] { #expect(!html.contains(reference)) }
            let metrics = String(buffer: try await client.execute(uri: "/metrics", method: .get).body)
            #expect(metrics.contains("retort_gateway_requests_total{route=\"teacher\",status=\"200\"} 3"))
            #expect(metrics.contains("retort_gateway_failovers_total"))
            #expect(metrics.contains("retort_gateway_breaker_state{deployment=\"fake-openai/e500\"} 2"))
            // Each metric says what it counts (HELP) under the same name as before.
            #expect(
                metrics.contains(
                    "# HELP retort_gateway_requests_total Requests answered by the gateway, by route and HTTP status."))
            #expect(metrics.contains("# HELP retort_gateway_breaker_state Breaker state per deployment"))
            #expect(metrics.contains("# TYPE retort_gateway_request_duration_seconds histogram"))
            let report = UsageReport(rows: try gateway.ledger.rows(), by: .route)
            let teacher = try #require(report.groups.first { $0.group == "teacher" })
            #expect(teacher.requests == 3 && teacher.failovers == 3 && teacher.errors == 0)
            #expect(teacher.inputTokens == 60 && teacher.cachedInputTokens == 300 && teacher.outputTokens == 90)
            #expect(approximatelyEqual(teacher.costUSD, 0.0045, within: 1e-12))
            let json = report.json.array?.first { $0["group"]?.string == "teacher" }
            #expect(json?["reasoning_tokens"]?.int == 60)
            #expect(json?["latency_ms_p95"]?.double != nil)
        }
    }

    @Test func refusedUpstreamFailsTheAttemptAtOnce() async throws {
        // A port bound and never listened on refuses connections. Before, each attempt waited out the 10 s connect
        // timeout while the HTTP client re-dialled: one request took 30 s.
        let dead = try RefusingPort()
        defer { dead.close() }
        let routes = """
              teacher:
                deployments:
                  - {provider: dead, model: ok, \(price)}
            """
        let providers = "  dead: {kind: openai, base_url: \"http://127.0.0.1:\(dead.port)/v1\"}"
        try await withFakeProvider { port, _, _ in
            let config = try gatewayConfig(port: port, ledger: temporaryLedger(), routes: routes, providers: providers)
            let gateway = try Gateway(config: config)
            try await withLiveGateway(gateway) { client in
                let response = try await client.chat(chatBody("teacher"))
                #expect(response.status == .serviceUnavailable)
                let error = try #require(try body(response)["error"])
                #expect(error["code"]?.string == "no_deployment_available")
                #expect(error["message"]?.string?.contains("dead/ok: connection") == true, "\(error)")
                #expect(header(response, "x-retort-attempts") == "3")
                // The time it takes is the benchmark's to measure (a starved test process can take any time); here:
                // the clients do not re-dial a refused connection until the connect timeout.
                #expect(!ClientPool.configuration(timeout: 60).connectionPool.retryConnectionEstablishment)
                let metrics = gateway.metrics.text()
                #expect(
                    metrics.contains(
                        "retort_gateway_upstream_attempts_total{deployment=\"dead/ok\",outcome=\"connection\"} 3"),
                    "\(metrics)")
                #expect(!metrics.contains("outcome=\"timeout\""))
            }
            await gateway.shutdown()
        }
    }

    @Test func refusedFirstDeploymentFailsOverToTheNextAtOnce() async throws {
        let dead = try RefusingPort()
        defer { dead.close() }
        let routes = """
              teacher:
                deployments:
                  - {provider: dead, model: ok, \(price)}
                  - {provider: fake-openai, model: ok, \(price)}
            """
        let providers = "  dead: {kind: openai, base_url: \"http://127.0.0.1:\(dead.port)/v1\"}"
        try await withFakeProvider { port, calls, _ in
            let config = try gatewayConfig(port: port, ledger: temporaryLedger(), routes: routes, providers: providers)
            let gateway = try Gateway(config: config)
            try await withLiveGateway(gateway) { client in
                let response = try await client.chat(chatBody("teacher"))
                #expect(response.status == .ok)
                #expect(header(response, "x-retort-deployment") == "fake-openai/ok")
                #expect(header(response, "x-retort-attempts") == "4")
                #expect(await calls.count("ok") == 1)
                let row = try #require(try gateway.ledger.rows().first)
                #expect(row.failover && row.attempts == 4 && row.status == 200)
                #expect(try gateway.ledger.failovers().map { $0.deployment } == ["dead/ok"])
            }
            await gateway.shutdown()
        }
    }

    @Test func ledgerTablesThatCannotBeWrittenAreRetriedCountedAndFailClosed() async throws {
        // Each answer costs $0.0015 and fails over from e500; the session may spend $0.002 before asking.
        try await withFakeProvider { port, calls, _ in
            let path = temporaryLedger()
            let config = try gatewayConfig(
                port: port, ledger: path, routes: failoverRoute("e500"),
                extra: "session: {max_usd: 0.002}\nbreaker: {failures: 100, window_s: 600, cooldown_s: 600}")
            let gateway = try Gateway(config: config, ledgerBusyTimeout: 0.2)
            @Sendable func failures(_ table: String) -> Int {
                let prefix = "retort_gateway_ledger_write_failures_total{table=\"\(table)\"} "
                let line = gateway.metrics.text().split(separator: "\n").first { $0.hasPrefix(prefix) }
                return line.flatMap { Int($0.dropFirst(prefix.count)) } ?? 0
            }
            try await withLiveGateway(gateway) { client in
                for _ in 0..<2 { #expect(try await client.chat(chatBody("teacher"), session: "job-1").status == .ok) }
                #expect(try gateway.ledger.failovers().count == 2)

                // The session trips while the ledger is locked: the trip cannot be kept, so the request fails
                // closed, and a confirmation cannot be stored either, so it is refused and does not take effect.
                var lock = try await LedgerLock(path: path)
                let tripped = try await client.chat(chatBody("teacher"), session: "job-1")
                #expect(tripped.status == .serviceUnavailable)
                #expect(try body(tripped)["error"]?["code"]?.string == "ledger_unavailable")
                #expect(failures("trips") == 1)
                let confirm = try await client.execute(
                    uri: "/v1/sessions/job-1/confirm", method: .post, headers: [.authorization: "Bearer \(testToken)"])
                #expect(confirm.status == .serviceUnavailable)
                #expect(failures("confirmations") == 1)
                await lock.release()
                // Writable again: the trip is recorded on the next request, which gets its 409.
                let again = try await client.chat(chatBody("teacher"), session: "job-1")
                #expect(again.status == .conflict)
                #expect(try gateway.ledger.trips().count == 1)
                #expect(try gateway.ledger.lastConfirmation(of: "job-1") == nil)

                // A failover row that cannot be written is retried, counted and logged; the request row after it
                // fails too, so the answer is refused rather than given without a ledger row.
                lock = try await LedgerLock(path: path)
                let e500Before = await calls.count("e500")
                let refused = try await client.chat(chatBody("teacher"), session: "job-2")
                #expect(refused.status == .serviceUnavailable)
                #expect(await calls.count("e500") == e500Before + 3)
                #expect(failures("failovers") == 1)
                #expect(failures("requests") == 1)
                await lock.release()
                #expect(try await client.chat(chatBody("teacher"), session: "job-3").status == .ok)
                #expect(try gateway.ledger.failovers().count == 3)
            }
            await gateway.shutdown()
        }
    }
}

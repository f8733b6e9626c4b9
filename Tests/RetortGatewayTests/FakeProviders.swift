import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import NIOHTTP1
import RetortData
import Testing

@testable import RetortGateway

/// A client that keeps up to `connections` requests in flight to the gateway on `port` (the test client sends one at
/// a time); `post` sends a chat body with the test key and returns the status and the body.
struct ConcurrentClient: Sendable {
    let http: HTTPClient
    let port: Int

    init(port: Int, connections: Int) {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(
            idleTimeout: .seconds(10), concurrentHTTP1ConnectionsPerHostSoftLimit: connections)
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        self.port = port
    }

    func post(_ body: ByteBuffer) async throws -> (status: HTTPResponseStatus, body: ByteBuffer) {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/v1/chat/completions")
        request.method = .POST
        request.headers.add(name: "authorization", value: "Bearer \(testToken)")
        request.body = .bytes(body)
        let response = try await http.execute(request, timeout: .seconds(30))
        return (response.status, try await response.body.collect(upTo: 1 << 20))
    }

    func shutdown() { _ = http.shutdown() }
}

/// Runs `body` with a live fake provider; passes its port.
func withFakeProvider(
    _ body: @Sendable (_ port: Int, _ calls: CallCounter, _ bodies: BodyLog) async throws -> Void
) async throws {
    let calls = CallCounter()
    let bodies = BodyLog()
    let app = Application(router: LoopbackProvider.router(calls: calls, bodies: bodies))
    try await app.test(.live) { client in
        try await body(try #require(client.port), calls, bodies)
    }
}

/// The token every test key uses, and its hash.
let testToken = "rk-test-token"
let adminToken = "rk-admin-token"

/// A gateway config over a fake provider on `port`.
func gatewayConfig(
    port: Int, ledger: String, routes: String, extra: String = "", keyExtra: String = ""
) throws -> GatewayConfig {
    let yaml = """
        listen: 127.0.0.1:0
        ledger: \(ledger)
        keys:
          - sha256: \(Gateway.hash(token: testToken))
            user: ana
            team: search
        \(keyExtra)
          - sha256: \(Gateway.hash(token: adminToken))
            user: root
            team: ops
            admin: true
        providers:
          fake-openai: {kind: openai, base_url: "http://127.0.0.1:\(port)/v1"}
          fake-anthropic: {kind: anthropic, base_url: "http://127.0.0.1:\(port)"}
        routes:
        \(routes)
        retry: {attempts: 3, backoff_ms: 10, max_backoff_ms: 200}
        \(extra)
        """
    return try GatewayConfig.parse(yaml, file: "gateway.yaml", folder: "/")
}

/// A fresh temporary ledger path.
func temporaryLedger() -> String {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("retort-gw-\(UUID().uuidString)")
    return folder.appendingPathComponent("gateway.sqlite").path
}

/// A chat request body for `model`.
func chatBody(_ model: String, stream: Bool = false, includeUsage: Bool = false, maxTokens: Int = 16) -> ByteBuffer {
    var body: JSON = [
        "model": .string(model),
        "messages": [
            ["role": "system", "content": "Answer with one label."],
            ["role": "user", "content": "where is my refund?"],
        ],
        "max_tokens": .int(maxTokens), "logprobs": true, "top_logprobs": 2,
    ]
    if stream { body["stream"] = true }
    if includeUsage { body["stream_options"] = ["include_usage": true] }
    return ByteBuffer(data: body.data)
}

/// Runs `body` with a live gateway over a live fake provider.
func withGateway(
    routes: String, extra: String = "", keyExtra: String = "", webhook: Bool = false,
    _ body:
        @Sendable (_ client: any TestClientProtocol, _ gateway: Gateway, _ calls: CallCounter, _ bodies: BodyLog)
        async throws -> Void
) async throws {
    try await withFakeProvider { port, calls, bodies in
        let hook = webhook ? "notify: {webhook: \"http://127.0.0.1:\(port)/hook\"}\nsession: {max_usd: 0.002}" : ""
        let config = try gatewayConfig(
            port: port, ledger: temporaryLedger(), routes: routes, extra: extra + hook, keyExtra: keyExtra)
        let gateway = try Gateway(config: config)
        let app = Application(router: gateway.router())
        try await app.test(.live) { client in
            try await body(client, gateway, calls, bodies)
        }
        await gateway.shutdown()
    }
}

extension TestClientProtocol {
    /// POSTs a chat request with the test key.
    func chat(_ body: ByteBuffer, token: String = testToken, session: String? = nil) async throws -> TestResponse {
        var headers: HTTPFields = [.authorization: "Bearer \(token)", .contentType: "application/json"]
        if let session, let name = HTTPField.Name("x-retort-session") { headers[name] = session }
        return try await execute(uri: "/v1/chat/completions", method: .post, headers: headers, body: body)
    }
}

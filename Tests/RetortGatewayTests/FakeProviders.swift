import AsyncHTTPClient
import Foundation
import GRDB
import Glibc
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import NIOHTTP1
import RetortData
import Testing

@testable import RetortGateway
@testable import RetortGatewayTesting
@testable import RetortTeacher

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
        let response = try await http.execute(request, timeout: .seconds(600))
        return (response.status, try await response.body.collect(upTo: 1 << 20))
    }

    func shutdown() { _ = http.shutdown() }
}

/// The server of `withLoopbackServer` stopped before it said which port it bound.
struct LoopbackServerDidNotStart: Error {}

/// Runs `body` with `router` served on 127.0.0.1 (the address the gateway configs name, whatever `localhost`
/// resolves to) at a port the kernel picks when the server binds (never a port picked and released before use);
/// `body` runs once the server is listening and gets its port. The server stops when `body` returns or throws.
func withLoopbackServer<Context: RequestContext>(
    _ router: Router<Context>, _ body: @Sendable (_ port: Int) async throws -> Void
) async throws where Context.Source == ApplicationRequestContextSource {
    let (ports, bound) = AsyncStream.makeStream(of: Int.self)
    var logger = Logger(label: "retort-test-upstream")
    // The server is stopped by cancelling it, which it logs as errors ("Already closed"): not a test's concern.
    logger.logLevel = .critical
    let app = Application(
        router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
        onServerRunning: { channel in
            bound.yield(channel.localAddress?.port ?? 0)
            bound.finish()
        },
        logger: logger)
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask {
            defer { bound.finish() }
            try await app.runService(gracefulShutdownSignals: [])
        }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next(), port > 0 else {
            group.cancelAll()
            try await group.waitForAll()
            throw LoopbackServerDidNotStart()
        }
        do {
            try await body(port)
        } catch {
            group.cancelAll()
            try? await group.waitForAll()
            throw error
        }
        group.cancelAll()
        try await group.waitForAll()
    }
}

/// Runs `body` with a live fake provider; passes its port.
func withFakeProvider(
    _ body: @Sendable (_ port: Int, _ calls: CallCounter, _ bodies: BodyLog) async throws -> Void
) async throws {
    let calls = CallCounter()
    let bodies = BodyLog()
    try await withLoopbackServer(LoopbackProvider.router(calls: calls, bodies: bodies)) { port in
        try await body(port, calls, bodies)
    }
}

/// Waits until `condition` holds, checking every 20 ms, at most `seconds` (generous: a loaded machine is slow, and a
/// condition that holds returns at once). Returns whether it held.
func until(seconds: Double = 60, _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(20))
    }
    return try await condition()
}

/// A TCP port on 127.0.0.1 that refuses connections: a socket bound to it (so no other server can take it while
/// the test runs) that never listens. Closed on `close()`.
final class RefusingPort: Sendable {
    let port: Int
    private let descriptor: Int32

    init() throws {
        let socketDescriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socketDescriptor >= 0 else { throw LoopbackServerDidNotStart() }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { generic in
                bind(socketDescriptor, generic, length) == 0 && getsockname(socketDescriptor, generic, &length) == 0
            }
        }
        guard bound else {
            Glibc.close(socketDescriptor)
            throw LoopbackServerDidNotStart()
        }
        descriptor = socketDescriptor
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    func close() { Glibc.close(descriptor) }
}

/// The token every test key uses, and its hash.
let testToken = "rk-test-token"
let adminToken = "rk-admin-token"

/// A gateway config over a fake provider on `port` (`providers`: more provider lines, indented like them).
func gatewayConfig(
    port: Int, ledger: String, routes: String, extra: String = "", keyExtra: String = "", providers: String = ""
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
        \(providers)
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
        @Sendable (_ client: LiveClient, _ gateway: Gateway, _ calls: CallCounter, _ bodies: BodyLog)
        async throws -> Void
) async throws {
    try await withFakeProvider { port, calls, bodies in
        let hook = webhook ? "notify: {webhook: \"http://127.0.0.1:\(port)/hook\"}\nsession: {max_usd: 0.002}" : ""
        let config = try gatewayConfig(
            port: port, ledger: temporaryLedger(), routes: routes, extra: extra + hook, keyExtra: keyExtra)
        let gateway = try Gateway(config: config)
        try await withLiveGateway(gateway) { client in
            try await body(client, gateway, calls, bodies)
        }
        await gateway.shutdown()
    }
}

/// Serves `gateway` on 127.0.0.1 (see `withLoopbackServer`) and runs `body` with a client of it.
func withLiveGateway(_ gateway: Gateway, _ body: @Sendable (_ client: LiveClient) async throws -> Void) async throws {
    try await withLoopbackServer(gateway.router()) { port in
        try await body(LiveClient(port: port))
    }
}

/// A live gateway's answer.
struct LiveResponse: Sendable {
    let status: HTTPResponse.Status
    let headers: HTTPFields
    let body: ByteBuffer
}

/// A client of a live server on 127.0.0.1 whose requests wait up to 10 minutes: HummingbirdTesting's live client gives
/// up after 20 s (and `HTTPClient.shared` after 90 s without a byte), which a test process starved by a loaded machine
/// exceeded while the server was working correctly.
struct LiveClient: Sendable {
    let port: Int?
    static let timeout: TimeAmount = .seconds(600)
    /// One client for every test, living as long as the process (so never shut down while a test uses it).
    static let http: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .seconds(60), read: nil)
        configuration.connectionPool = .init(idleTimeout: .seconds(10), concurrentHTTP1ConnectionsPerHostSoftLimit: 16)
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()

    /// Sends one request; the answer with its whole body.
    func execute(
        uri: String, method: HTTPRequest.Method, headers: HTTPFields = [:], body: ByteBuffer? = nil
    ) async throws -> LiveResponse {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port ?? 0)\(uri)")
        request.method = HTTPMethod(rawValue: method.rawValue)
        for field in headers { request.headers.add(name: field.name.rawName, value: field.value) }
        if let body { request.body = .bytes(body) }
        let response = try await LiveClient.http.execute(request, timeout: LiveClient.timeout)
        var fields = HTTPFields()
        for (name, value) in response.headers {
            if let name = HTTPField.Name(name) { fields.append(HTTPField(name: name, value: value)) }
        }
        let collected = try await response.body.collect(upTo: 64 << 20)
        return LiveResponse(
            status: HTTPResponse.Status(code: Int(response.status.code)), headers: fields, body: collected)
    }

    /// POSTs a chat request with the test key.
    func chat(_ body: ByteBuffer, token: String = testToken, session: String? = nil) async throws -> LiveResponse {
        var headers: HTTPFields = [.authorization: "Bearer \(token)", .contentType: "application/json"]
        if let session, let name = HTTPField.Name("x-retort-session") { headers[name] = session }
        return try await execute(uri: "/v1/chat/completions", method: .post, headers: headers, body: body)
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

/// Another connection holding the ledger's write lock, as another process would, until `release()`.
final class LedgerLock: Sendable {
    private let released = DispatchSemaphore(value: 0)
    private let ended: AsyncStream<Void>

    struct NotTaken: Error {}

    /// Returns once the lock is held.
    init(path: String) async throws {
        let database = try DatabaseQueue(path: path)
        let (held, holding) = AsyncStream.makeStream(of: Void.self)
        let (ended, ending) = AsyncStream.makeStream(of: Void.self)
        self.ended = ended
        let released = self.released
        Thread.detachNewThread {
            try? database.writeWithoutTransaction { db in
                try db.inTransaction(.immediate) {
                    holding.yield()
                    released.wait()
                    return .rollback
                }
            }
            holding.finish()
            ending.finish()
        }
        var iterator = held.makeAsyncIterator()
        guard await iterator.next() != nil else { throw NotTaken() }
    }

    /// Releases the lock; returns once the other connection's transaction has ended.
    func release() async {
        released.signal()
        for await _ in ended {}
    }
}

/// An OpenAI-style upstream that holds every answer until `open()`; counts calls and the answers it holds.
actor GatedUpstream {
    private(set) var calls = 0
    private(set) var refusedSeen = 0
    private var isOpen = false
    private var held: [CheckedContinuation<Void, Never>] = []

    /// Requests waiting at the gate.
    var waiting: Int { held.count }

    /// Lets every held and later answer through.
    func open() {
        isOpen = true
        for continuation in held { continuation.resume() }
        held = []
    }

    /// Counts one refusal the client saw (the test's own tally, kept here to be read by its gate opener).
    func sawRefusal() { refusedSeen += 1 }

    func pass() async {
        calls += 1
        if isOpen { return }
        await withCheckedContinuation { held.append($0) }
    }

    /// A gateway config whose one route, `teacher`, is this upstream at $40/Mtok, with a team budget of $0.42 a day:
    /// ten requests of 41 prompt bytes and `max_tokens` 1000 ($0.04164 reserved each).
    static func budgetConfig(port: Int, ledger: String) throws -> GatewayConfig {
        let routes = """
              teacher:
                deployments:
                  - {provider: fake-openai, model: gated, timeout_s: 600, \(price)}
            """
        let extra = "teams:\n  search: {budgets: {usd_per_day: 0.4200}}"
        return try gatewayConfig(port: port, ledger: ledger, routes: routes, extra: extra)
    }

    /// Sends `count` requests at once through `post` (given the request's index) and opens the gate once `admitted`
    /// answers wait and every other request was refused `budget_exceeded` (or after 5 minutes, so a wrong count fails,
    /// not hangs). Returns each request's status and error code.
    nonisolated func flood(
        count: Int, admitted: Int,
        post: @escaping @Sendable (Int) async throws -> (status: HTTPResponseStatus, body: ByteBuffer)
    ) async throws -> [(Int, String?)] {
        try await withThrowingTaskGroup(of: (Int, String?).self) { group in
            for index in 0..<count {
                group.addTask {
                    let (status, data) = try await post(index)
                    let code = try? JSON.parse(Data(data.readableBytesView))["error"]?["code"]?.string
                    return (Int(status.code), code)
                }
            }
            let opener = Task {
                _ = try await until(seconds: 300) { await self.waiting >= admitted }
                _ = try await until(seconds: 300) { await self.refusedSeen >= count - admitted }
                await self.open()
            }
            defer { opener.cancel() }
            var all: [(Int, String?)] = []
            for try await status in group {
                all.append(status)
                if status.1 == "budget_exceeded" { await sawRefusal() }
            }
            await open()
            return all
        }
    }

    nonisolated func router() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.post("/v1/chat/completions") { request, _ in
            _ = try await request.body.collect(upTo: 1 << 20)
            await self.pass()
            return Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: LoopbackProvider.openAIAnswer)))
        }
        return router
    }
}

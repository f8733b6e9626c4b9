import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import RetortData
import Testing

@testable import RetortGateway

/// Calls per model on a fake provider, for scripts like "fail twice, then answer".
actor CallCounter {
    private var counts: [String: Int] = [:]
    func next(_ model: String) -> Int {
        let count = counts[model, default: 0] + 1
        counts[model] = count
        return count
    }
    func count(_ model: String) -> Int { counts[model] ?? 0 }
}

/// A loopback provider speaking OpenAI's and Anthropic's wire formats, whose behaviour the model name scripts:
/// `ok`, `e500`, `e503once` (503 then answers), `r429` (429 with retry-after 0.05, then answers), `r429long`
/// (retry-after 30), `slow` (first byte after 1.5 s), `reset` (connection cut mid-answer), `gone` (404
/// model_not_found), `retired410`, `cut` (a stream cut mid-answer), `garbage` (malformed JSON), `bad400`.
enum FakeProvider {
    static let openAIAnswer = """
        {"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"MODEL","choices":[{"index":0,\
        "message":{"role":"assistant","content":"refund_request"},"logprobs":{"content":[{"token":"refund",\
        "logprob":-0.1,"top_logprobs":[{"token":"refund","logprob":-0.1},{"token":"order","logprob":-2.4}]}]},\
        "finish_reason":"stop"}],"usage":{"prompt_tokens":120,"completion_tokens":30,"total_tokens":150,\
        "prompt_tokens_details":{"cached_tokens":100},"completion_tokens_details":{"reasoning_tokens":20}}}
        """

    static let anthropicAnswer = """
        {"id":"msg_1","type":"message","role":"assistant","model":"MODEL","content":[{"type":"text",\
        "text":"refund_request"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":20,\
        "cache_read_input_tokens":100,"cache_creation_input_tokens":50,"output_tokens":30}}
        """

    static func openAIStream(model: String, cut: Bool) -> [String] {
        var events = [
            #"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"\#(model)","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
            #"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"\#(model)","choices":[{"index":0,"delta":{"content":"refund"},"finish_reason":null}]}"#,
        ]
        if cut { return events }
        events += [
            #"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"\#(model)","choices":[{"index":0,"delta":{"content":"_request"},"finish_reason":"stop"}]}"#,
            #"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"\#(model)","choices":[],"usage":{"prompt_tokens":120,"completion_tokens":30,"total_tokens":150,"prompt_tokens_details":{"cached_tokens":100},"completion_tokens_details":{"reasoning_tokens":20}}}"#,
            "[DONE]",
        ]
        return events
    }

    static func anthropicStream(model: String, cut: Bool) -> [(String, String)] {
        var events = [
            (
                "message_start",
                #"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"\#(model)","content":[],"usage":{"input_tokens":20,"cache_read_input_tokens":100,"cache_creation_input_tokens":50,"output_tokens":1}}}"#
            ),
            (
                "content_block_start",
                #"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#
            ),
            ("ping", #"{"type":"ping"}"#),
            (
                "content_block_delta",
                #"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"refund"}}"#
            ),
        ]
        if cut { return events }
        events += [
            (
                "content_block_delta",
                #"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"_request"}}"#
            ),
            ("content_block_stop", #"{"type":"content_block_stop","index":0}"#),
            (
                "message_delta",
                #"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":30}}"#
            ),
            ("message_stop", #"{"type":"message_stop"}"#),
        ]
        return events
    }

    /// The router of a fake provider; `calls` counts requests per model, `bodies` keeps the last request body.
    static func router(calls: CallCounter, bodies: BodyLog) -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.post("/v1/chat/completions") { request, _ in
            try await answer(request, anthropic: false, calls: calls, bodies: bodies)
        }
        router.post("/v1/messages") { request, _ in
            try await answer(request, anthropic: true, calls: calls, bodies: bodies)
        }
        return router
    }

    static func error(_ status: HTTPResponse.Status, _ body: String, headers: HTTPFields = [:]) -> Response {
        var fields = headers
        fields[.contentType] = "application/json"
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    static func answer(_ request: Request, anthropic: Bool, calls: CallCounter, bodies: BodyLog) async throws
        -> Response
    {
        let buffer = try await request.body.collect(upTo: 1 << 20)
        let body = try JSON.parse(Data(buffer.readableBytesView))
        await bodies.append(body)
        let model = body["model"]?.string ?? ""
        let call = await calls.next(model)
        let stream = body["stream"]?.bool ?? false
        switch model {
        case "e500": return error(.internalServerError, #"{"error":{"message":"boom","type":"server_error"}}"#)
        case "e503once" where call == 1:
            return error(.serviceUnavailable, #"{"error":{"message":"overloaded","type":"overloaded_error"}}"#)
        case "r429" where call == 1:
            return error(.tooManyRequests, #"{"error":{"message":"slow down"}}"#, headers: [.retryAfter: "0.05"])
        case "r429long":
            return error(.tooManyRequests, #"{"error":{"message":"slow down"}}"#, headers: [.retryAfter: "30"])
        case "gone":
            return error(
                .notFound,
                #"{"error":{"message":"The model `gone` does not exist","type":"invalid_request_error","code":"model_not_found"}}"#
            )
        case "retired410": return error(.gone, #"{"error":{"message":"this model was retired"}}"#)
        case "bad400":
            return error(
                .badRequest, #"{"error":{"message":"max_tokens is too large","type":"invalid_request_error"}}"#)
        case "slow": try await Task.sleep(for: .milliseconds(1500))
        case "garbage":
            return Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: "{not json")))
        case "reset":
            return Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: ResponseBody { writer in
                    try await writer.write(ByteBuffer(string: "{\"id\":"))
                    throw CancellationError()
                }
            )
        default: break
        }
        if stream {
            let cut = model == "cut"
            let events: [String] =
                anthropic
                ? anthropicStream(model: model, cut: cut).map { "event: \($0.0)\ndata: \($0.1)\n\n" }
                : openAIStream(model: model, cut: cut).map { "data: \($0)\n\n" }
            return Response(
                status: .ok, headers: [.contentType: "text/event-stream"],
                body: ResponseBody { writer in
                    for event in events {
                        try await writer.write(ByteBuffer(string: event))
                        try await Task.sleep(for: .milliseconds(5))
                    }
                    if cut { throw CancellationError() }
                    try await writer.finish(nil)
                }
            )
        }
        let text = (anthropic ? anthropicAnswer : openAIAnswer).replacingOccurrences(of: "MODEL", with: model)
        return Response(
            status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}

/// Request bodies a fake provider received.
actor BodyLog {
    private(set) var bodies: [JSON] = []
    func append(_ body: JSON) { bodies.append(body) }
    var last: JSON? { bodies.last }
}

/// Runs `body` with a live fake provider; passes its port.
func withFakeProvider(
    _ body: @Sendable (_ port: Int, _ calls: CallCounter, _ bodies: BodyLog) async throws -> Void
) async throws {
    let calls = CallCounter()
    let bodies = BodyLog()
    let app = Application(router: FakeProvider.router(calls: calls, bodies: bodies))
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
    routes: String, extra: String = "", keyExtra: String = "",
    _ body:
        @Sendable (_ client: any TestClientProtocol, _ gateway: Gateway, _ calls: CallCounter, _ bodies: BodyLog)
        async throws -> Void
) async throws {
    try await withFakeProvider { port, calls, bodies in
        let config = try gatewayConfig(
            port: port, ledger: temporaryLedger(), routes: routes, extra: extra, keyExtra: keyExtra)
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

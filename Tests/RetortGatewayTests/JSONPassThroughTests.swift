import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import RetortGateway
@testable import RetortGatewayTesting
@testable import RetortTeacher

/// The raw request bodies an upstream received, in order.
actor RawBodies {
    private(set) var texts: [String] = []
    func append(_ text: String) { texts.append(text) }
}

/// An upstream on loopback that records each request body byte for byte (not through the gateway's own parser) and
/// answers with `answer(model)`: the OpenAI chat route and the Anthropic messages route.
func recordingUpstream(
    _ bodies: RawBodies, openAIAnswer: @escaping @Sendable (String) -> String
) -> Router<BasicRequestContext> {
    let router = Router()
    @Sendable func respond(_ request: Request, _ answer: @escaping @Sendable (String) -> String) async throws
        -> Response
    {
        let text = String(buffer: try await request.body.collect(upTo: 1 << 20))
        await bodies.append(text)
        let model = (try? JSON.parse(text))?["model"]?.string ?? ""
        return Response(
            status: .ok, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(string: answer(model))))
    }
    router.post("/v1/chat/completions") { request, _ in try await respond(request, openAIAnswer) }
    router.post("/v1/messages") { request, _ in
        try await respond(request) { LoopbackProvider.anthropicAnswer.replacingOccurrences(of: "MODEL", with: $0) }
    }
    return router
}

/// Numbers pass through the gateway as the client wrote them, and malformed JSON is a 400, never a 500.
@Suite struct JSONPassThroughTests {
    static let routes = """
          teacher:
            deployments:
              - {provider: fake-openai, model: ok, \(price)}
          claude:
            deployments:
              - {provider: fake-anthropic, model: claude, \(price)}
        """

    /// Runs `body` with a gateway whose providers are a recording upstream answering OpenAI requests with `answer`.
    func withRecordingGateway(
        answer: @escaping @Sendable (String) -> String = {
            LoopbackProvider.openAIAnswer.replacingOccurrences(of: "MODEL", with: $0)
        },
        _ body: @Sendable (_ client: LiveClient, _ upstream: RawBodies) async throws -> Void
    ) async throws {
        let upstream = RawBodies()
        try await withLoopbackServer(recordingUpstream(upstream, openAIAnswer: answer)) { port in
            let config = try gatewayConfig(port: port, ledger: temporaryLedger(), routes: Self.routes)
            let gateway = try Gateway(config: config)
            try await withLiveGateway(gateway) { client in try await body(client, upstream) }
            await gateway.shutdown()
        }
    }

    /// A chat body written by hand (so the client side does not depend on the JSON writer either).
    static func request(model: String) -> ByteBuffer {
        ByteBuffer(
            string: """
                {"model": "\(model)", "messages": [{"role": "user", "content": "where is my refund?"}],
                 "seed": 12345678901234567891, "temperature": 0.50, "top_p": 0.99999999999999999999,
                 "metadata": {"order": 18446744073709551615, "trace": 1234567890123456789012345678901234567890,
                              "ratio": 1.0, "tiny": 0.1e-7, "huge": 1E400, "negzero": -0},
                 "max_tokens": 16}
                """)
    }

    @Test func bigIntegersReachAnOpenAIUpstreamDigitForDigit() async throws {
        try await withRecordingGateway { client, upstream in
            let response = try await client.chat(Self.request(model: "teacher"))
            #expect(response.status == .ok)
            let sent = try #require(await upstream.texts.last)
            for exact in [
                #""seed":12345678901234567891"#, #""order":18446744073709551615"#,
                #""trace":1234567890123456789012345678901234567890"#, #""ratio":1.0"#, #""tiny":0.1e-7"#,
                #""huge":1E400"#, #""negzero":-0"#, #""temperature":0.50"#, #""top_p":0.99999999999999999999"#,
                #""max_tokens":16"#,
            ] {
                #expect(sent.contains(exact), "\(exact) not in \(sent)")
            }
            #expect(!sent.contains("12345678901234567000") && !sent.contains("e+19"))
        }
    }

    @Test func anthropicTranslationPassesSamplingNumbersExactly() async throws {
        // The Anthropic body carries `temperature` and `top_p` over as they are; `metadata` and `seed` have no
        // counterpart there (only `user` becomes `metadata.user_id`), so they are not sent.
        try await withRecordingGateway { client, upstream in
            let response = try await client.chat(Self.request(model: "claude"))
            #expect(response.status == .ok)
            let sent = try #require(await upstream.texts.last)
            #expect(sent.contains(#""temperature":0.50"#), "\(sent)")
            #expect(sent.contains(#""top_p":0.99999999999999999999"#), "\(sent)")
            #expect(sent.contains(#""max_tokens":16"#), "\(sent)")
            #expect(!sent.contains("seed"))
        }
    }

    @Test func bigIntegersInAnUpstreamAnswerReachTheClientDigitForDigit() async throws {
        let answer: @Sendable (String) -> String = { model in
            LoopbackProvider.openAIAnswer.replacingOccurrences(of: "MODEL", with: model)
                .replacingOccurrences(of: #""created":1"#, with: #""created":12345678901234567891"#)
                .replacingOccurrences(of: #""logprob":-0.1,"top"#, with: #""logprob":-0.10000000000000000001,"top"#)
        }
        try await withRecordingGateway(answer: answer) { client, _ in
            let response = try await client.chat(Self.request(model: "teacher"))
            #expect(response.status == .ok)
            let text = String(buffer: response.body)
            #expect(text.contains(#""created":12345678901234567891"#), "\(text)")
            #expect(text.contains(#""logprob":-0.10000000000000000001"#), "\(text)")
        }
    }

    @Test(arguments: [
        #"{"model": +1}"#, #"{"model": "teacher", "max_tokens": 01}"#, #"{"model": "teacher", "seed": .5}"#,
        #"{"model": "teacher"} x"#, #"{"model": "teacher", "messages": [{"role": "user", "content": "\uD800"}]}"#,
        String(repeating: "[", count: 100_000), "",
    ])
    func malformedBodyIsAnOpenAIStyle400(_ text: String) async throws {
        try await withRecordingGateway { client, upstream in
            let response = try await client.chat(ByteBuffer(string: text))
            #expect(response.status == .badRequest)
            let error = try #require(try JSON.parse(Data(response.body.readableBytesView))["error"])
            #expect(error["type"]?.string == "invalid_request_error")
            #expect(error["code"]?.string == "invalid_json")
            #expect(error["message"]?.string?.isEmpty == false)
            #expect(await upstream.texts.isEmpty)
        }
    }

    @Test func malformedBodyErrorSaysWhereAndWhat() async throws {
        try await withRecordingGateway { client, _ in
            let response = try await client.chat(ByteBuffer(string: #"{"model": +1}"#))
            let message = try JSON.parse(Data(response.body.readableBytesView))["error"]?["message"]?.string ?? ""
            #expect(message.contains("offset 10") && message.contains("+"), "\(message)")
        }
    }

    @Test func invalidUTF8BodyIsAnOpenAIStyle400() async throws {
        try await withRecordingGateway { client, upstream in
            var buffer = ByteBuffer(string: #"{"model": "teacher", "messages": [{"role": "user", "content": ""#)
            buffer.writeBytes([0xC0, 0xAF])
            buffer.writeString(#""}]}"#)
            let response = try await client.chat(buffer)
            #expect(response.status == .badRequest)
            #expect(try JSON.parse(Data(response.body.readableBytesView))["error"]?["code"]?.string == "invalid_json")
            #expect(await upstream.texts.isEmpty)
        }
    }
}

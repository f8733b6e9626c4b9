import Foundation
import RetortData
import RetortTestSupport
import Testing

@testable import RetortGatewayTesting
@testable import RetortTeacher

@Suite struct WireTests {
    @Test func openAIUsageCountsCachedAndReasoningOnce() throws {
        // Recorded shape: OpenAI counts cached tokens inside prompt_tokens, reasoning inside completion_tokens.
        let answer = try JSON.parse(LoopbackProvider.openAIAnswer)
        let usage = TokenUsage(openAI: try #require(answer["usage"]))
        #expect(usage == TokenUsage(inputUncached: 20, cacheRead: 100, cacheWrite: 0, output: 30, reasoning: 20))
        #expect(usage.total == 150)
        let price = Price(input: 10, cachedInput: 1, output: 40)
        // 20 × 10 + 100 × 1 + 30 × 40 = 1500 per million.
        #expect(approximatelyEqual(price.cost(of: usage), 0.0015, within: 1e-12))
    }

    @Test func anthropicUsageKeepsCacheReadsAndWritesApart() throws {
        let answer = try JSON.parse(LoopbackProvider.anthropicAnswer)
        let usage = TokenUsage(anthropic: try #require(answer["usage"]))
        #expect(usage == TokenUsage(inputUncached: 20, cacheRead: 100, cacheWrite: 50, output: 30, reasoning: 0))
        let price = Price(input: 15, cachedInput: 1.5, cacheWrite: 18.75, output: 75)
        // 20 × 15 + 100 × 1.5 + 50 × 18.75 + 30 × 75 = 3637.5 per million.
        #expect(approximatelyEqual(price.cost(of: usage), 0.0036375, within: 1e-12))
        // Missing cache prices fall back to the input price (FORMATS.md §5).
        #expect(Price(input: 2, output: 8).cacheWritePerMTok == 2)
    }

    @Test func chatRequestBecomesAnAnthropicMessage() throws {
        let chat: JSON = [
            "model": "teacher",
            "messages": [
                ["role": "system", "content": "Be brief."],
                ["role": "user", "content": [["type": "text", "text": "hello"]]],
                ["role": "assistant", "content": "hi"],
                ["role": "user", "content": "label this"],
            ],
            "max_tokens": 8, "temperature": 0, "stop": "\n", "logprobs": true,
        ]
        let provider = ProviderConfig(name: "a", kind: .anthropic, baseURL: "http://127.0.0.1:1")
        let deployment = Deployment(provider: provider, model: "claude-x", price: Price(input: 1, output: 1))
        let request = try Wire.request(for: chat, deployment: deployment, stream: true, apiKey: "secret")
        #expect(request.url == "http://127.0.0.1:1/v1/messages")
        #expect(request.headers.contains { $0 == ("x-api-key", "secret") })
        let body = try JSON.parse(request.body)
        #expect(body["system"]?.string == "Be brief.")
        #expect(body["model"]?.string == "claude-x")
        #expect(body["max_tokens"]?.int == 8)
        #expect(body["stop_sequences"] == ["\n"])
        #expect(body["stream"]?.bool == true)
        #expect(body["messages"]?.array?.count == 3)
        #expect(body["messages"]?[0]?["content"]?.string == "hello")
        #expect(body["logprobs"] == nil)
    }

    @Test func anthropicAnswerSaysItHasNoLogprobs() throws {
        let provider = ProviderConfig(name: "a", kind: .anthropic, baseURL: "http://127.0.0.1:1")
        let deployment = Deployment(provider: provider, model: "claude-x", price: Price(input: 1, output: 1))
        let translated = try Wire.completion(try JSON.parse(LoopbackProvider.anthropicAnswer), deployment: deployment)
        let choice = try #require(translated.body["choices"]?[0])
        #expect(choice["message"]?["content"]?.string == "refund_request")
        #expect(choice["logprobs"] == .null)
        #expect(choice["finish_reason"]?.string == "stop")
        #expect(translated.body["usage"]?["prompt_tokens"]?.int == 170)
        #expect(translated.body["usage"]?["prompt_tokens_details"]?["cached_tokens"]?.int == 100)
    }

    @Test func openAIRequestAsksForStreamUsage() throws {
        let provider = ProviderConfig(name: "o", kind: .openai, baseURL: "http://127.0.0.1:1/v1")
        let deployment = Deployment(provider: provider, model: "gpt-x", price: Price(input: 1, output: 1))
        let chat: JSON = ["model": "teacher", "messages": [["role": "user", "content": "hi"]], "top_logprobs": 3]
        let body = try JSON.parse(try Wire.request(for: chat, deployment: deployment, stream: true, apiKey: nil).body)
        #expect(body["model"]?.string == "gpt-x")
        #expect(body["stream_options"]?["include_usage"]?.bool == true)
        #expect(body["top_logprobs"]?.int == 3)
    }

    @Test func serverSentEventsSplitAcrossChunks() {
        var parser = ServerSentEventParser()
        var events = parser.feed(Array("event: message_start\ndata: {\"a\"".utf8))
        #expect(events.isEmpty)
        events = parser.feed(Array(":1}\n\r\ndata: [DONE]\n\n: comment\n\n".utf8))
        #expect(
            events == [
                ServerSentEvent(event: "message_start", data: "{\"a\":1}"), ServerSentEvent(event: nil, data: "[DONE]"),
            ])
    }

    @Test func anthropicStreamBecomesOpenAIChunks() throws {
        var translator = AnthropicStreamTranslator(model: "claude-x")
        var items: [StreamItem] = []
        for (name, data) in LoopbackProvider.anthropicStream(model: "claude-x", cut: false) {
            items += try translator.translate(ServerSentEvent(event: name, data: data))
        }
        let texts = items.compactMap { item -> String? in
            if case .chunk(let chunk) = item { return chunk["choices"]?[0]?["delta"]?["content"]?.string }
            return nil
        }
        #expect(texts.joined() == "refund_request")
        #expect(items.last == .done)
        #expect(translator.usage == TokenUsage(inputUncached: 20, cacheRead: 100, cacheWrite: 50, output: 30))
    }

    @Test func jsonParserReadsWhatJSONDecoderReads() throws {
        let text =
            #"{"a": [1, -2.5e3, true, false, null], "s": "q\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00 é", "o": {}, "e": []}"#
        let parsed = try JSON.parse(text)
        let reference = try JSONDecoder().decode(JSON.self, from: Data(text.utf8))
        #expect(parsed == reference)
        #expect(parsed["s"]?.string == "q\"\\/\u{08}\u{0C}\n\r\té😀 é")
        #expect(try JSON.parse(parsed.text) == parsed)
        for bad in ["", "{", "[1,]", "{\"a\" 1}", "tru", "\"\u{01}\"", "1 2", "\"\\ud800\"", "{\"a\":1,}", "-", "nan"] {
            #expect(throws: JSONParseError.self, "\(bad)") { try JSON.parse(bad) }
        }
    }

    @Test func configErrorsNameFileLineAndFix() {
        func message(_ yaml: String) -> String {
            do {
                _ = try GatewayConfig.parse(yaml, file: "gw.yaml", folder: "/")
                return "no error"
            } catch {
                return error.description
            }
        }
        let base = """
            providers:
              p: {kind: openai, base_url: "http://127.0.0.1:9/v1"}
            routes:
              teacher:
                deployments:
                  - {provider: p, model: m, price: {input_per_mtok: 1, output_per_mtok: 2}}
            """
        #expect(message(base) == "no error")
        #expect(message(base + "\nretries: 3").contains("gw.yaml:7"))
        #expect(message(base + "\nretries: 3").contains("retries"))
        #expect(message(base.replacingOccurrences(of: "provider: p,", with: "provider: q,")).contains("gw.yaml:6"))
        #expect(
            message(base.replacingOccurrences(of: "kind: openai", with: "kind: cohere")).contains(
                "use openai or anthropic"))
        #expect(message(base + "\nsession: {idle_gap: soon}").contains("not a duration"))
        #expect(message(base + "\nkeys:\n  - {sha256: abc, user: u}").contains("64 hex digits"))
    }
}

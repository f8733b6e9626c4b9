import Foundation

/// A client's request could not be expressed in an upstream's wire format.
public struct WireError: Error, Sendable, CustomStringConvertible {
    /// What went wrong.
    public let message: String
    /// Creates a value from its parts.
    public init(_ message: String) { self.message = message }
    /// The message.
    public var description: String { message }
}

/// One server-sent event.
public struct ServerSentEvent: Sendable, Equatable {
    /// The `event:` field, if any.
    public var event: String?
    /// The `data:` lines, joined by newlines.
    public var data: String
}

/// Splits a byte stream into server-sent events (the `text/event-stream` format).
public struct ServerSentEventParser: Sendable {
    private var line: [UInt8] = []
    private var event: String?
    private var data: [String] = []

    /// Creates a value from its parts.
    public init() {}

    /// Feeds bytes, returning the events they complete.
    public mutating func feed(_ bytes: some Sequence<UInt8>) -> [ServerSentEvent] {
        var events: [ServerSentEvent] = []
        for byte in bytes {
            if byte == UInt8(ascii: "\n") {
                if line.last == UInt8(ascii: "\r") { line.removeLast() }
                if let completed = take(line: line) { events.append(completed) }
                line.removeAll(keepingCapacity: true)
            } else {
                line.append(byte)
            }
        }
        return events
    }

    private mutating func take(line: [UInt8]) -> ServerSentEvent? {
        if line.isEmpty {
            defer {
                event = nil
                data.removeAll()
            }
            guard !data.isEmpty || event != nil else { return nil }
            return ServerSentEvent(event: event, data: data.joined(separator: "\n"))
        }
        if line.first == UInt8(ascii: ":") { return nil }
        let text = String(decoding: line, as: UTF8.self)
        let field: Substring
        var value: Substring
        if let colon = text.firstIndex(of: ":") {
            field = text[..<colon]
            value = text[text.index(after: colon)...]
            if value.first == " " { value = value.dropFirst() }
        } else {
            field = Substring(text)
            value = ""
        }
        switch field {
        case "event": event = String(value)
        case "data": data.append(String(value))
        default: break
        }
        return nil
    }
}

/// What a stream translator emits, in OpenAI's streaming shape.
public enum StreamItem: Sendable, Equatable {
    /// A `chat.completion.chunk` to forward.
    case chunk(JSON)
    /// The usage-only chunk (forwarded only to clients that asked with `stream_options.include_usage`).
    case usage(JSON, TokenUsage)
    /// The upstream finished cleanly.
    case done
    /// The upstream reported an error mid-stream.
    case error(String)
}

/// Translates one upstream's stream events into OpenAI chunks.
public protocol StreamTranslator: Sendable {
    /// The items an event yields (possibly none).
    mutating func translate(_ event: ServerSentEvent) throws(WireError) -> [StreamItem]
    /// The usage seen so far (for a stream cut before its usage chunk).
    var usage: TokenUsage { get }
}

/// An upstream HTTP request, ready to send.
public struct UpstreamHTTPRequest: Sendable {
    /// The endpoint.
    public var url: String
    /// Request headers (secrets included: never log them).
    public var headers: [(String, String)]
    /// The JSON body.
    public var body: Data
}

/// A finished (non-streaming) answer in OpenAI's shape, with its usage.
public struct TranslatedCompletion: Sendable {
    /// The JSON body.
    public var body: JSON
    /// The upstream's own bytes when they are already the answer (OpenAI-compatible upstreams): sent unchanged.
    public var rawBody: Data?
    /// Tokens by kind.
    public var usage: TokenUsage
    /// The upstream model that answered.
    public var servedModel: String
}

/// The two wire formats the gateway speaks to upstreams.
public enum Wire {
    /// Builds the upstream request for an OpenAI-style chat request `chat` sent to `deployment`.
    public static func request(
        for chat: JSON, deployment: Deployment, stream: Bool, apiKey: String?
    ) throws(WireError) -> UpstreamHTTPRequest {
        switch deployment.providerConfig.kind {
        case .openai:
            var body = chat
            body["model"] = .string(deployment.model)
            if stream {
                body["stream"] = true
                var options = body["stream_options"] ?? [:]
                if options.object == nil { options = [:] }
                options["include_usage"] = true
                body["stream_options"] = options
            } else {
                body["stream"] = nil
                body["stream_options"] = nil
            }
            var headers = [("content-type", "application/json")]
            if let apiKey { headers.append(("authorization", "Bearer \(apiKey)")) }
            return UpstreamHTTPRequest(
                url: deployment.providerConfig.baseURL + "/chat/completions", headers: headers, body: body.data
            )
        case .anthropic:
            var body = try anthropicBody(for: chat, model: deployment.model)
            if stream { body["stream"] = true }
            var headers = [("content-type", "application/json"), ("anthropic-version", "2023-06-01")]
            if let apiKey { headers.append(("x-api-key", apiKey)) }
            let base = deployment.providerConfig.baseURL
            let url = base.hasSuffix("/v1") ? base + "/messages" : base + "/v1/messages"
            return UpstreamHTTPRequest(url: url, headers: headers, body: body.data)
        }
    }

    /// Translates a successful non-streaming upstream answer into an OpenAI chat completion.
    public static func completion(_ body: JSON, deployment: Deployment) throws(WireError) -> TranslatedCompletion {
        switch deployment.providerConfig.kind {
        case .openai:
            guard body["choices"]?.array != nil else { throw WireError("the answer has no choices") }
            let usage = body["usage"].map { TokenUsage(openAI: $0) } ?? TokenUsage()
            return TranslatedCompletion(
                body: body, rawBody: nil, usage: usage, servedModel: body["model"]?.string ?? deployment.model
            )
        case .anthropic:
            guard body["type"]?.string == "message", let blocks = body["content"]?.array else {
                throw WireError("the answer is not an Anthropic message")
            }
            let text = blocks.compactMap { $0["type"]?.string == "text" ? $0["text"]?.string : nil }.joined()
            let usage = body["usage"].map { TokenUsage(anthropic: $0) } ?? TokenUsage()
            let model = body["model"]?.string ?? deployment.model
            let result: JSON = [
                "id": .string(body["id"]?.string ?? "msg"),
                "object": "chat.completion",
                "created": .int(Int(Date().timeIntervalSince1970)),
                "model": .string(model),
                "choices": [
                    [
                        "index": 0,
                        "message": ["role": "assistant", "content": .string(text)],
                        "logprobs": nil,
                        "finish_reason": .string(finishReason(anthropic: body["stop_reason"]?.string)),
                    ]
                ],
                "usage": usage.openAIJSON,
            ]
            return TranslatedCompletion(body: result, rawBody: nil, usage: usage, servedModel: model)
        }
    }

    /// A fresh translator for one stream from `deployment`.
    public static func streamTranslator(for deployment: Deployment) -> any StreamTranslator {
        switch deployment.providerConfig.kind {
        case .openai: OpenAIStreamTranslator()
        case .anthropic: AnthropicStreamTranslator(model: deployment.model)
        }
    }

    /// OpenAI's `finish_reason` for an Anthropic `stop_reason`.
    static func finishReason(anthropic reason: String?) -> String {
        switch reason {
        case "max_tokens": "length"
        case "tool_use": "tool_calls"
        case "refusal": "content_filter"
        default: "stop"
        }
    }

    /// The text of an OpenAI message's `content` (a string or a list of parts).
    package static func text(of content: JSON?) throws(WireError) -> String {
        switch content {
        case .none, .some(.null): return ""
        case .some(.string(let text)): return text
        case .some(.array(let parts)):
            var texts: [String] = []
            for part in parts {
                guard part["type"]?.string == "text", let text = part["text"]?.string else {
                    throw WireError("only text content parts can go to an Anthropic deployment")
                }
                texts.append(text)
            }
            return texts.joined(separator: "\n")
        default: throw WireError("message content must be a string or a list of parts")
        }
    }

    /// The Anthropic Messages body for an OpenAI chat request.
    package static func anthropicBody(for chat: JSON, model: String) throws(WireError) -> JSON {
        guard let messages = chat["messages"]?.array, !messages.isEmpty else {
            throw WireError("messages must be a non-empty list")
        }
        var system: [String] = []
        var turns: [(role: String, text: String)] = []
        for message in messages {
            let role = message["role"]?.string ?? ""
            let text = try text(of: message["content"])
            switch role {
            case "system", "developer": system.append(text)
            case "user", "assistant":
                if let last = turns.last, last.role == role {
                    turns[turns.count - 1].text += "\n\n" + text
                } else {
                    turns.append((role, text))
                }
            default: throw WireError("role \"\(role)\" cannot go to an Anthropic deployment (system, user, assistant)")
            }
        }
        guard turns.first?.role == "user" else { throw WireError("the first non-system message must be from the user") }
        var body: JSON = [
            "model": .string(model),
            "messages": .array(turns.map { ["role": .string($0.role), "content": .string($0.text)] }),
            "max_tokens": .int(chat["max_tokens"]?.int ?? chat["max_completion_tokens"]?.int ?? 4096),
        ]
        if !system.isEmpty { body["system"] = .string(system.joined(separator: "\n\n")) }
        if let temperature = chat["temperature"], !temperature.isNull { body["temperature"] = temperature }
        if let topP = chat["top_p"], !topP.isNull { body["top_p"] = topP }
        switch chat["stop"] {
        case .some(.string(let stop)): body["stop_sequences"] = [.string(stop)]
        case .some(.array(let stops)): body["stop_sequences"] = .array(stops)
        default: break
        }
        if let user = chat["user"]?.string { body["metadata"] = ["user_id": .string(user)] }
        return body
    }
}

/// Passes OpenAI chunks through, separating the usage chunk.
struct OpenAIStreamTranslator: StreamTranslator {
    var usage = TokenUsage()

    mutating func translate(_ event: ServerSentEvent) throws(WireError) -> [StreamItem] {
        if event.data == "[DONE]" { return [.done] }
        guard let chunk = try? JSON.parse(event.data) else {
            throw WireError("an upstream stream event is not JSON")
        }
        if let error = chunk["error"], !error.isNull {
            return [.error(error["message"]?.string ?? "upstream error")]
        }
        let choices = chunk["choices"]?.array ?? []
        if let usageJSON = chunk["usage"], !usageJSON.isNull {
            usage = TokenUsage(openAI: usageJSON)
            if choices.isEmpty { return [.usage(chunk, usage)] }
            var stripped = chunk
            stripped["usage"] = nil
            return [.chunk(stripped)]
        }
        return [.chunk(chunk)]
    }
}

/// Turns Anthropic Messages stream events into OpenAI chunks.
struct AnthropicStreamTranslator: StreamTranslator {
    var usage = TokenUsage()
    var model: String
    var id = "msg"
    let created = Int(Date().timeIntervalSince1970)

    init(model: String) { self.model = model }

    func chunk(delta: JSON, finish: String? = nil) -> JSON {
        [
            "id": .string(id), "object": "chat.completion.chunk", "created": .int(created), "model": .string(model),
            "choices": [
                ["index": 0, "delta": delta, "logprobs": nil, "finish_reason": finish.map { .string($0) } ?? nil]
            ],
        ]
    }

    mutating func translate(_ event: ServerSentEvent) throws(WireError) -> [StreamItem] {
        guard let payload = try? JSON.parse(event.data) else {
            throw WireError("an upstream stream event is not JSON")
        }
        switch payload["type"]?.string ?? event.event {
        case "message_start":
            let message = payload["message"] ?? [:]
            id = message["id"]?.string ?? id
            model = message["model"]?.string ?? model
            if let usageJSON = message["usage"] { usage.merge(TokenUsage(anthropic: usageJSON)) }
            return [.chunk(chunk(delta: ["role": "assistant", "content": ""]))]
        case "content_block_delta":
            guard payload["delta"]?["type"]?.string == "text_delta", let text = payload["delta"]?["text"]?.string
            else { return [] }
            return [.chunk(chunk(delta: ["content": .string(text)]))]
        case "message_delta":
            if let usageJSON = payload["usage"] { usage.merge(TokenUsage(anthropic: usageJSON)) }
            let reason = Wire.finishReason(anthropic: payload["delta"]?["stop_reason"]?.string)
            return [.chunk(chunk(delta: [:], finish: reason))]
        case "message_stop":
            let usageChunk: JSON = [
                "id": .string(id), "object": "chat.completion.chunk", "created": .int(created),
                "model": .string(model), "choices": [], "usage": usage.openAIJSON,
            ]
            return [.usage(usageChunk, usage), .done]
        case "error":
            return [.error(payload["error"]?["message"]?.string ?? "upstream error")]
        default:
            return []
        }
    }
}

import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import RetortTeacher

/// Calls per model on a fake provider, for scripts like "fail twice, then answer".
public actor CallCounter {
    private var counts: [String: Int] = [:]
    /// No calls yet.
    public init() {}
    /// Counts one more call of `model` and returns the count.
    public func next(_ model: String) -> Int {
        let count = counts[model, default: 0] + 1
        counts[model] = count
        return count
    }
    /// Calls of `model` so far.
    public func count(_ model: String) -> Int { counts[model] ?? 0 }
}

/// A loopback provider (for tests, `make gateway-check` and the benchmark) speaking OpenAI's and Anthropic's wire formats, whose behaviour the model name scripts:
/// `ok`, `e500`, `e503once` (503 then answers), `r429` (429 with retry-after 0.05, then answers), `r429long`
/// (retry-after 30), `slow` (first byte after 1.5 s), `reset` (connection cut mid-answer), `gone` (404
/// model_not_found), `retired410`, `cut` (a stream cut mid-answer), `garbage` (malformed JSON), `bad400`.
public enum LoopbackProvider {
    /// A recorded OpenAI answer (cached and reasoning tokens inside the totals).
    public static let openAIAnswer = """
        {"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"MODEL","choices":[{"index":0,\
        "message":{"role":"assistant","content":"refund_request"},"logprobs":{"content":[{"token":"refund",\
        "logprob":-0.1,"top_logprobs":[{"token":"refund","logprob":-0.1},{"token":"order","logprob":-2.4}]}]},\
        "finish_reason":"stop"}],"usage":{"prompt_tokens":120,"completion_tokens":30,"total_tokens":150,\
        "prompt_tokens_details":{"cached_tokens":100},"completion_tokens_details":{"reasoning_tokens":20}}}
        """

    /// A recorded Anthropic answer (cache reads and writes apart).
    public static let anthropicAnswer = """
        {"id":"msg_1","type":"message","role":"assistant","model":"MODEL","content":[{"type":"text",\
        "text":"refund_request"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":20,\
        "cache_read_input_tokens":100,"cache_creation_input_tokens":50,"output_tokens":30}}
        """

    /// The events of an OpenAI stream (cut after two chunks when `cut`).
    public static func openAIStream(model: String, cut: Bool) -> [String] {
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

    /// The events of an Anthropic stream (cut mid-answer when `cut`).
    public static func anthropicStream(model: String, cut: Bool) -> [(String, String)] {
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
    public static func router(
        calls: CallCounter, bodies: BodyLog, intentLatency: Duration = .zero, replay: [String: String] = [:]
    ) -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.post("/v1/chat/completions") { request, _ in
            try await answer(
                request, anthropic: false, calls: calls, bodies: bodies, intentLatency: intentLatency, replay: replay)
        }
        router.post("/v1/messages") { request, _ in
            try await answer(
                request, anthropic: true, calls: calls, bodies: bodies, intentLatency: intentLatency, replay: replay)
        }
        let batches = BatchStore()
        router.post("/v1/files") { request, _ in
            let buffer = try await request.body.collect(upTo: 256 << 20)
            let text = String(buffer: buffer)
            guard let start = text.range(of: "filename="), let body = text[start.upperBound...].range(of: "\r\n\r\n"),
                let end = text[body.upperBound...].range(of: "\r\n--")
            else { return error(.badRequest, #"{"error":{"message":"expected a multipart file"}}"#) }
            let id = await batches.storeFile(String(text[body.upperBound..<end.lowerBound]))
            return json(["id": .string(id), "object": "file", "purpose": "batch"])
        }
        router.post("/v1/batches") { request, _ in
            let body = try JSON.parse(Data(try await request.body.collect(upTo: 1 << 20).readableBytesView))
            guard let file = body["input_file_id"]?.string, let content = await batches.file(file) else {
                return error(.badRequest, #"{"error":{"message":"unknown input_file_id"}}"#)
            }
            var lines: [String] = []
            for line in content.split(separator: "\n") {
                guard let item = try? JSON.parse(String(line)), let customID = item["custom_id"]?.string,
                    let chat = item["body"]
                else { continue }
                let model = chat["model"]?.string ?? ""
                let answer =
                    model.hasPrefix("intent")
                    ? IntentClassifier.answer(chat, anthropic: false, model: model, call: await calls.next(model))
                    : (try JSON.parse(openAIAnswer.replacingOccurrences(of: "MODEL", with: model)))
                lines.append(
                    JSON(
                        dictionaryLiteral: ("id", "batch_req"), ("custom_id", .string(customID)),
                        ("response", ["status_code": 200, "body": answer]), ("error", nil)
                    ).text)
            }
            let output = await batches.storeFile(lines.joined(separator: "\n") + "\n")
            let id = await batches.createBatch(output: output)
            return json(["id": .string(id), "object": "batch", "status": "validating"])
        }
        router.get("/v1/batches/{id}") { _, context in
            let id = context.parameters.get("id") ?? ""
            guard let (output, done) = await batches.poll(id) else {
                return error(.notFound, #"{"error":{"message":"no such batch"}}"#)
            }
            return json(
                done
                    ? ["id": .string(id), "status": "completed", "output_file_id": .string(output)]
                    : ["id": .string(id), "status": "in_progress"])
        }
        router.get("/v1/files/{id}/content") { _, context in
            guard let content = await batches.file(context.parameters.get("id") ?? "") else {
                return error(.notFound, #"{"error":{"message":"no such file"}}"#)
            }
            return Response(
                status: .ok, headers: [.contentType: "application/jsonl"],
                body: .init(byteBuffer: ByteBuffer(string: content)))
        }
        router.post("/v1/messages/batches") { request, _ in
            let body = try JSON.parse(Data(try await request.body.collect(upTo: 64 << 20).readableBytesView))
            var lines: [String] = []
            for item in body["requests"]?.array ?? [] {
                guard let customID = item["custom_id"]?.string, let params = item["params"] else { continue }
                let model = params["model"]?.string ?? ""
                let message = IntentClassifier.answer(
                    params, anthropic: true, model: model, call: await calls.next(model))
                lines.append(
                    JSON(
                        dictionaryLiteral: ("custom_id", .string(customID)),
                        ("result", ["type": "succeeded", "message": message])
                    ).text)
            }
            let output = await batches.storeFile(lines.joined(separator: "\n") + "\n")
            let id = await batches.createBatch(output: output)
            return json(["id": .string(id), "type": "message_batch", "processing_status": "in_progress"])
        }
        router.get("/v1/messages/batches/{id}") { request, context in
            let id = context.parameters.get("id") ?? ""
            guard let (output, done) = await batches.poll(id) else {
                return error(.notFound, #"{"error":{"message":"no such batch"}}"#)
            }
            let host = request.head.authority ?? "127.0.0.1"
            return json(
                done
                    ? [
                        "id": .string(id), "processing_status": "ended",
                        "results_url": .string("http://\(host)/v1/files/\(output)/content"),
                    ]
                    : ["id": .string(id), "processing_status": "in_progress"])
        }
        // A webhook receiver, for `notify.webhook`: the body is kept with the request bodies.
        router.post("/hook") { request, _ in
            let buffer = try await request.body.collect(upTo: 1 << 20)
            await bodies.append(try JSON.parse(Data(buffer.readableBytesView)))
            return Response(status: .noContent)
        }
        return router
    }

    static func json(_ value: JSON) -> Response {
        Response(
            status: .ok, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(data: value.data)))
    }

    static func error(_ status: HTTPResponse.Status, _ body: String, headers: HTTPFields = [:]) -> Response {
        var fields = headers
        fields[.contentType] = "application/json"
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    static func answer(
        _ request: Request, anthropic: Bool, calls: CallCounter, bodies: BodyLog, intentLatency: Duration = .zero,
        replay: [String: String] = [:]
    ) async throws
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
        case _ where model.hasPrefix("intent") && model.hasSuffix("-r429") && call <= 3:
            return error(.tooManyRequests, #"{"error":{"message":"rate limited"}}"#, headers: [.retryAfter: "0.01"])
        case _ where model.hasPrefix("intent") || model.hasPrefix("replay"):
            if intentLatency > .zero { try await Task.sleep(for: intentLatency) }
            var recorded: String?
            if model.hasPrefix("replay") {
                let users = body["messages"]?.array?.filter { $0["role"]?.string == "user" } ?? []
                recorded = replay[(try? Wire.text(of: users.last?["content"])) ?? ""]
            }
            let answer = IntentClassifier.answer(
                body, anthropic: anthropic, model: model, call: call, recorded: recorded)
            if stream && !anthropic {
                let choice = answer["choices"]?[0] ?? [:]
                let base: JSON = [
                    "id": "chatcmpl-intent", "object": "chat.completion.chunk", "created": 1, "model": .string(model),
                ]
                func chunk(_ choices: JSON, usage: JSON? = nil) -> String {
                    var event = base
                    event["choices"] = choices
                    if let usage { event["usage"] = usage }
                    return "data: " + event.text + "\n\n"
                }
                var events = [
                    chunk([["index": 0, "delta": ["role": "assistant", "content": ""], "finish_reason": nil]]),
                    chunk([
                        [
                            "index": 0, "delta": ["content": choice["message"]?["content"] ?? ""],
                            "logprobs": choice["logprobs"] ?? nil, "finish_reason": nil,
                        ]
                    ]),
                    chunk([["index": 0, "delta": [:], "finish_reason": "stop"]]),
                ]
                if body["stream_options"]?["include_usage"]?.bool == true {
                    events.append(chunk([], usage: answer["usage"]))
                }
                events.append("data: [DONE]\n\n")
                return Response(
                    status: .ok, headers: [.contentType: "text/event-stream"],
                    body: .init(byteBuffer: ByteBuffer(string: events.joined())))
            }
            return Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(data: answer.data)))
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

/// Request bodies a loopback provider received.
public actor BodyLog {
    /// The newest bodies (at most 256), oldest first.
    public private(set) var bodies: [JSON] = []
    /// Keeps one more body.
    public func append(_ body: JSON) {
        if bodies.count >= 256 { bodies.removeFirst(128) }
        bodies.append(body)
    }
    /// The newest body.
    public var last: JSON? { bodies.last }
    /// An empty log.
    public init() {}
}

extension LoopbackProvider {
    /// Serves a loopback provider on `host:port` until SIGTERM/SIGINT; `onRunning` gets the bound port.
    public static func serve(
        host: String, port: Int, intentLatency: Duration = .zero, replay: [String: String] = [:],
        logLevel: Logger.Level = .info, onRunning: @escaping @Sendable (Int) async -> Void
    ) async throws {
        var logger = Logger(label: "retort-loopback-provider")
        logger.logLevel = logLevel
        let app = Application(
            router: router(calls: CallCounter(), bodies: BodyLog(), intentLatency: intentLatency, replay: replay),
            configuration: .init(address: .hostname(host, port: port), serverName: "retort-loopback-provider"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? port) },
            logger: logger
        )
        try await app.runService()
    }
}

/// The loopback provider's `intent*` models: a deterministic intent classifier that reads the label list and the
/// message from a labelling prompt (`Labels: a, b, c` and `Message: ...` lines; the labels may sit in a system message
/// and the message be the whole last user message) and scores each label by the words
/// it shares with the message. OpenAI answers carry top logprobs (one token per label); Anthropic answers have none.
/// At temperature ≥ 1 it samples from its distribution (deterministically per message and call).
public enum IntentClassifier {
    /// The label distribution for `message` over `labels` (softmax of 2 × shared words, ties to the earlier label).
    public static func distribution(message: String, labels: [String]) -> [(label: String, probability: Double)] {
        let words = Set(message.lowercased().split { !$0.isLetter && !$0.isNumber }.map(String.init))
        let scores = labels.enumerated().map { index, label in
            let parts = label.lowercased().split { !$0.isLetter && !$0.isNumber }.map(String.init)
            return 2 * Double(parts.filter { words.contains($0) || words.contains($0 + "s") }.count) - 0.001
                * Double(index)
        }
        let top = scores.max() ?? 0
        let weights = scores.map { Foundation.exp($0 - top) }
        let total = weights.reduce(0, +)
        return zip(labels, weights).map { ($0, $1 / total) }.sorted { $0.probability > $1.probability }
    }

    static func answer(_ body: JSON, anthropic: Bool, model: String, call: Int, recorded: String? = nil) -> JSON {
        var prompt = ""
        var system = ""
        for message in body["messages"]?.array ?? [] {
            let text = (try? Wire.text(of: message["content"])) ?? ""
            if message["role"]?.string == "user" { prompt = text } else { system += text + "\n" }
        }
        var labels: [String] = []
        var message = prompt
        // The label list may also come in a system message (the user message is then the raw input).
        for line in (system + prompt).split(separator: "\n") {
            if line.hasPrefix("Labels:") {
                labels = line.dropFirst(7).split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            } else if line.hasPrefix("Message:") {
                message = String(line.dropFirst(8))
            }
        }
        if labels.isEmpty { labels = ["unknown"] }
        var ranked = distribution(message: message, labels: labels)
        if let recorded {
            // A replayed teacher: its recorded label, sure of it.
            ranked = [(recorded, 1)] + ranked.filter { $0.label != recorded }.map { ($0.label, 0) }
        }
        var chosen = ranked[0].label
        if (body["temperature"]?.double ?? 0) >= 1 {
            var hash: UInt64 = 14_695_981_039_346_656_037
            for byte in (message + "#\(call)").utf8 { hash = (hash ^ UInt64(byte)) &* 1_099_511_628_211 }
            var draw = Double(hash % 1_000_000) / 1_000_000
            for entry in ranked {
                draw -= entry.probability
                if draw <= 0 {
                    chosen = entry.label
                    break
                }
            }
        }
        let promptTokens = max(1, prompt.utf8.count / 4)
        if anthropic {
            return [
                "id": "msg_intent", "type": "message", "role": "assistant", "model": .string(model),
                "content": [["type": "text", "text": .string(chosen)]], "stop_reason": "end_turn",
                "usage": ["input_tokens": .int(promptTokens), "output_tokens": 3],
            ]
        }
        let count = min(body["top_logprobs"]?.int ?? 0, ranked.count)
        let top: [JSON] = ranked.prefix(count).map {
            ["token": .string($0.label), "logprob": .number(Foundation.log(max($0.probability, 1e-12)))]
        }
        let logprobs: JSON =
            body["logprobs"]?.bool == true
            ? [
                "content": [
                    [
                        "token": .string(chosen),
                        "logprob": .number(
                            Foundation.log(max(ranked.first { $0.label == chosen }?.probability ?? 1e-12, 1e-12))),
                        "top_logprobs": .array(top),
                    ]
                ]
            ] : .null
        return [
            "id": "chatcmpl-intent", "object": "chat.completion", "created": 1, "model": .string(model),
            "choices": [
                [
                    "index": 0, "message": ["role": "assistant", "content": .string(chosen)], "logprobs": logprobs,
                    "finish_reason": "stop",
                ]
            ],
            "usage": [
                "prompt_tokens": .int(promptTokens), "completion_tokens": 3, "total_tokens": .int(promptTokens + 3),
            ],
        ]
    }
}

/// The loopback provider's batch files and batches: a batch is answered when created and reports completion on its
/// second status poll (so a client that stops after one poll has to resume it).
actor BatchStore {
    private var files: [String: String] = [:]
    private var batches: [String: (output: String, polls: Int)] = [:]

    func storeFile(_ content: String) -> String {
        let id = "file-\(files.count + 1)"
        files[id] = content
        return id
    }

    func file(_ id: String) -> String? { files[id] }

    func createBatch(output: String) -> String {
        let id = "batch_\(batches.count + 1)"
        batches[id] = (output, 0)
        return id
    }

    func poll(_ id: String) -> (String, Bool)? {
        guard var batch = batches[id] else { return nil }
        batch.polls += 1
        batches[id] = batch
        return (batch.output, batch.polls >= 2)
    }
}

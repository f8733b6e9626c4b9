import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import RetortData
import RetortTeacher

/// Batch APIs for `retort label --batch`: OpenAI (`/v1/files` + `/v1/batches`) and Anthropic message batches, at the
/// providers' batch discount. The batch id is kept in the label cache, so a run stopped while the batch is in
/// progress picks it up again instead of paying twice.
struct BatchRunner: Sendable {
    /// The providers' batch discount on every token.
    static let discount = 0.5

    let deployment: Deployment
    let apiKey: String?
    let cache: LabelCache
    let pollSeconds: Double
    let timeoutSeconds: Double

    /// One pending request: its cache key doubles as the batch custom id.
    struct Item: Sendable {
        var key: String
        var body: JSON
    }

    enum Outcome: Sendable {
        /// Every item has an answer in the cache.
        case finished(answered: Int, failed: Int)
        /// The batch is still running; run again to resume it.
        case inProgress(id: String, status: String)
    }

    func headers() -> [(String, String)] {
        switch deployment.providerConfig.kind {
        case .openai: apiKey.map { [("authorization", "Bearer \($0)")] } ?? []
        case .anthropic: [("anthropic-version", "2023-06-01")] + (apiKey.map { [("x-api-key", $0)] } ?? [])
        }
    }

    func call(_ method: HTTPMethod, _ url: String, body: ByteBuffer? = nil, contentType: String = "application/json")
        async throws -> (Int, ByteBuffer)
    {
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (name, value) in headers() { request.headers.add(name: name, value: value) }
        if let body {
            request.headers.add(name: "content-type", value: contentType)
            request.body = .bytes(body)
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(120))
        return (Int(response.status.code), try await response.body.collect(upTo: 512 << 20))
    }

    func json(_ method: HTTPMethod, _ url: String, body: JSON? = nil) async throws -> JSON {
        let (status, buffer) = try await call(method, url, body: body.map { ByteBuffer(data: $0.data) })
        guard status == 200 else {
            throw Labeler.Stopped(
                description: "batch API \(url) answered HTTP \(status): \(String(buffer: buffer).prefix(300))")
        }
        return try JSON.parse(Data(buffer.readableBytesView))
    }

    var base: String {
        let url = deployment.providerConfig.baseURL
        switch deployment.providerConfig.kind {
        case .openai: return url
        case .anthropic: return url.hasSuffix("/v1") ? url : url + "/v1"
        }
    }

    /// Submits (or resumes) the batch for `items`, waits up to `timeoutSeconds`, and caches every answer.
    func run(_ items: [Item], ledger: Ledger, key: ClientKey, route: String, log: @Sendable (String) -> Void)
        async throws
        -> Outcome
    {
        let digest = sha256Hex(items.map(\.key).sorted().joined(separator: "\n"))
        var batchID = try cache.pendingBatch(digest: digest)
        if let batchID {
            log("resuming batch \(batchID)")
        } else {
            let id = try await submit(items)
            try cache.recordBatch(id: id, digest: digest, deployment: deployment.id)
            batchID = id
            log("submitted batch \(id) with \(items.count) requests")
        }
        guard let batchID else { throw Labeler.Stopped(description: "no batch id") }
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while true {
            let (done, status, results) = try await poll(batchID)
            if done {
                var answered = 0
                var failed = 0
                let wanted = Dictionary(uniqueKeysWithValues: items.map { ($0.key, $0) })
                for (customID, completion) in try await results() {
                    guard wanted[customID] != nil else { continue }
                    guard let completion else {
                        failed += 1
                        continue
                    }
                    let usage = TokenUsage(openAI: completion["usage"] ?? [:])
                    let cost = deployment.price.cost(of: usage) * BatchRunner.discount
                    try ledger.record(
                        LedgerRow(
                            time: Date().timeIntervalSince1970, keyHash: key.sha256, user: key.user, team: key.team,
                            route: route, deployment: deployment.id, servedModel: deployment.model,
                            session: "batch-\(batchID)", usage: usage, costUSD: cost, status: 200, attempts: 1))
                    try cache.put(
                        customID,
                        LabelCache.Entry(
                            model: completion["model"]?.string ?? deployment.model, body: completion, costUSD: cost,
                            tokens: usage.total, latencyMilliseconds: 0))
                    answered += 1
                }
                try cache.finishBatch(id: batchID)
                return .finished(answered: answered, failed: failed)
            }
            if Date() >= deadline { return .inProgress(id: batchID, status: status) }
            try await Task.sleep(for: .seconds(pollSeconds))
        }
    }

    func submit(_ items: [Item]) async throws -> String {
        switch deployment.providerConfig.kind {
        case .openai:
            let lines = items.map { item -> String in
                var body = item.body
                body["model"] = .string(deployment.model)
                return JSON(
                    dictionaryLiteral: ("custom_id", .string(item.key)), ("method", "POST"),
                    ("url", "/v1/chat/completions"), ("body", body)
                ).text
            }
            let boundary = "retort-\(UUID().uuidString)"
            var form = ByteBuffer()
            form.writeString("--\(boundary)\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n")
            form.writeString(
                "--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"batch.jsonl\"\r\nContent-Type: application/jsonl\r\n\r\n"
            )
            form.writeString(lines.joined(separator: "\n") + "\n\r\n--\(boundary)--\r\n")
            let (status, uploaded) = try await call(
                .POST, base + "/files", body: form, contentType: "multipart/form-data; boundary=\(boundary)")
            guard status == 200, let fileID = try JSON.parse(Data(uploaded.readableBytesView))["id"]?.string else {
                throw Labeler.Stopped(
                    description: "batch file upload answered HTTP \(status): \(String(buffer: uploaded).prefix(300))")
            }
            let batch = try await json(
                .POST, base + "/batches",
                body: [
                    "input_file_id": .string(fileID), "endpoint": "/v1/chat/completions", "completion_window": "24h",
                ])
            guard let id = batch["id"]?.string else { throw Labeler.Stopped(description: "the batch has no id") }
            return id
        case .anthropic:
            var requests: [JSON] = []
            for item in items {
                let params = try Wire.anthropicBody(for: item.body, model: deployment.model)
                requests.append(["custom_id": .string(item.key), "params": params])
            }
            let batch = try await json(.POST, base + "/messages/batches", body: ["requests": .array(requests)])
            guard let id = batch["id"]?.string else { throw Labeler.Stopped(description: "the batch has no id") }
            return id
        }
    }

    /// Whether the batch ended, its status, and a reader of its results (custom id → OpenAI-shaped completion).
    func poll(_ id: String) async throws -> (Bool, String, @Sendable () async throws -> [(String, JSON?)]) {
        switch deployment.providerConfig.kind {
        case .openai:
            let batch = try await json(.GET, base + "/batches/\(id)")
            let status = batch["status"]?.string ?? "unknown"
            if ["failed", "expired", "cancelled"].contains(status) {
                throw Labeler.Stopped(description: "batch \(id) \(status)")
            }
            let output = batch["output_file_id"]?.string
            return (
                status == "completed", status,
                {
                    guard let output else { return [] }
                    let (code, buffer) = try await call(.GET, base + "/files/\(output)/content")
                    guard code == 200 else { throw Labeler.Stopped(description: "batch output answered HTTP \(code)") }
                    return String(buffer: buffer).split(separator: "\n").compactMap { line in
                        guard let value = try? JSON.parse(String(line)), let customID = value["custom_id"]?.string
                        else {
                            return nil
                        }
                        let ok = value["response"]?["status_code"]?.int == 200
                        return (customID, ok ? value["response"]?["body"] : nil)
                    }
                }
            )
        case .anthropic:
            let batch = try await json(.GET, base + "/messages/batches/\(id)")
            let status = batch["processing_status"]?.string ?? "unknown"
            let resultsURL = batch["results_url"]?.string
            let deployment = deployment
            return (
                status == "ended", status,
                {
                    guard let resultsURL else { return [] }
                    let (code, buffer) = try await call(.GET, resultsURL)
                    guard code == 200 else { throw Labeler.Stopped(description: "batch results answered HTTP \(code)") }
                    return String(buffer: buffer).split(separator: "\n").compactMap { line in
                        guard let value = try? JSON.parse(String(line)), let customID = value["custom_id"]?.string
                        else {
                            return nil
                        }
                        guard value["result"]?["type"]?.string == "succeeded",
                            let message = value["result"]?["message"],
                            let translated = try? Wire.completion(message, deployment: deployment)
                        else { return (customID, nil) }
                        return (customID, translated.body)
                    }
                }
            )
        }
    }
}

extension LabelCache {
    func ensureBatchTable() throws {
        try database.execute(
            "CREATE TABLE IF NOT EXISTS batches (id TEXT PRIMARY KEY, digest TEXT NOT NULL, deployment TEXT NOT NULL, done INTEGER NOT NULL, time DOUBLE PRECISION NOT NULL)",
            [])
    }

    /// The unfinished batch for this exact set of requests, if one was submitted.
    func pendingBatch(digest: String) throws -> String? {
        try ensureBatchTable()
        return try database.query("SELECT id FROM batches WHERE digest = ? AND done = 0", [.text(digest)]).first?
            .optionalString("id")
    }

    /// Remembers a submitted batch (before waiting on it).
    func recordBatch(id: String, digest: String, deployment: String) throws {
        try database.execute(
            "INSERT INTO batches (id, digest, deployment, done, time) VALUES (?, ?, ?, 0, ?)",
            [.text(id), .text(digest), .text(deployment), .real(Date().timeIntervalSince1970)])
    }

    /// Marks a batch whose results are all cached.
    func finishBatch(id: String) throws {
        try database.execute("UPDATE batches SET done = 1 WHERE id = ?", [.text(id)])
    }
}

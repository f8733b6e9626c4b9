import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import RetortNumerics
import Synchronization

/// Why one upstream attempt failed.
public enum AttemptError: Error, Sendable {
    /// An HTTP error status; `retired` when the answer says the model is gone (404, 410, or a decommissioned model).
    case status(Int, retryAfter: Double?, message: String, retired: Bool)
    /// Connection refused or reset, TLS failure.
    case transport(String)
    /// No first byte (or, in a stream, no next chunk) within `timeout_s`.
    case timeout
    /// The answer could not be read.
    case malformed(String)

    /// Whether the attempt may be retried on the same deployment (429, 5xx, connection, timeout, unparseable).
    var isRetryable: Bool {
        switch self {
        case .status(let code, _, _, let retired): !retired && (code == 429 || code >= 500)
        case .transport, .timeout, .malformed: true
        }
    }

    /// Whether it counts against the deployment's breaker (4xx answers other than 429 do not).
    var isBreakerFailure: Bool {
        switch self {
        case .status(let code, _, _, _): code == 429 || code >= 500
        case .transport, .timeout, .malformed: true
        }
    }

    /// A client error the upstream refused (400, 401, 403, 422...): passed back to the client, no failover.
    var isClientError: Bool {
        if case .status(let code, _, _, let retired) = self {
            return !retired && code >= 400 && code < 500 && code != 429
        }
        return false
    }

    /// The metric label of this failure.
    var outcome: String {
        switch self {
        case .status(let code, _, _, _): "http_\(code)"
        case .transport: "connection"
        case .timeout: "timeout"
        case .malformed: "malformed"
        }
    }

    package var summary: String {
        switch self {
        case .status(let code, _, let message, let retired): "HTTP \(code)\(retired ? " (retired)" : ""): \(message)"
        case .transport(let message): "connection: \(message)"
        case .timeout: "timeout"
        case .malformed(let message): "unreadable answer: \(message)"
        }
    }
}

/// An open upstream stream whose first event has arrived (until then, failover is still possible).
public final class UpstreamStream: @unchecked Sendable {
    private var iterator: HTTPClientResponse.Body.AsyncIterator
    private var parser = ServerSentEventParser()
    private var translator: any StreamTranslator
    private var pending: [StreamItem] = []
    private var finished = false

    init(body: HTTPClientResponse.Body, translator: any StreamTranslator) {
        iterator = body.makeAsyncIterator()
        self.translator = translator
    }

    /// The usage the upstream has reported so far.
    public var usage: TokenUsage { translator.usage }

    /// The next item; nil when the upstream body ended (a clean end has yielded `.done` first).
    public func next() async throws -> StreamItem? {
        while pending.isEmpty {
            if finished { return nil }
            let chunk: ByteBuffer?
            do {
                chunk = try await iterator.next()
            } catch {
                throw Dispatcher.classify(error)
            }
            guard let buffer = chunk else {
                finished = true
                for event in parser.feed([UInt8(ascii: "\n"), UInt8(ascii: "\n")]) {
                    pending += try translator.translate(event)
                }
                if pending.isEmpty { return nil }
                break
            }
            for event in parser.feed(buffer.readableBytesView) {
                do {
                    pending += try translator.translate(event)
                } catch {
                    throw AttemptError.malformed(error.message)
                }
            }
        }
        return pending.removeFirst()
    }

    /// Puts an item back at the front (the first item read while opening).
    func pushBack(_ item: StreamItem) { pending.insert(item, at: 0) }
}

/// The result of routing one request.
public enum DispatchOutcome: Sendable {
    /// A deployment answered (non-streaming).
    case completed(TranslatedCompletion, Deployment, attempts: Int, failover: Bool)
    /// A deployment's stream is open and has sent its first event.
    case streaming(UpstreamStream, Deployment, attempts: Int, failover: Bool)
    /// An upstream refused the request itself (4xx): passed back unchanged in meaning.
    case refused(status: Int, message: String, Deployment, attempts: Int)
    /// The request cannot be expressed for the deployment's wire format.
    case invalid(String, attempts: Int)
    /// Every allowed deployment failed.
    case unavailable(attempts: Int, reasons: [String])
}

/// Sends a request down a route: retries with backoff and jitter, circuit breakers, failover, retired models.
public final class Dispatcher: Sendable {
    let clients: ClientPool
    let breakers: BreakerBoard
    package let retired: RetiredSet
    let limiters: LimiterPool
    let environment: @Sendable (String) -> String?
    let logger: Logger
    let onFailover: @Sendable (_ route: String, _ deployment: String, _ reason: String) async -> Void
    let onAttempt: @Sendable (_ deployment: String, _ outcome: String, _ seconds: Double) -> Void

    /// Creates a value from its parts.
    public init(
        breakers: BreakerBoard, logger: Logger = Logger(label: "retort.gateway"),
        environment: @escaping @Sendable (String) -> String? = { ProcessInfo.processInfo.environment[$0] },
        onFailover: @escaping @Sendable (String, String, String) async -> Void = { _, _, _ in },
        onAttempt: @escaping @Sendable (String, String, Double) -> Void = { _, _, _ in }
    ) {
        clients = ClientPool()
        self.breakers = breakers
        retired = RetiredSet()
        limiters = LimiterPool()
        self.environment = environment
        self.logger = logger
        self.onFailover = onFailover
        self.onAttempt = onAttempt
    }

    /// Closes the HTTP clients.
    public func shutdown() async { clients.shutdown() }

    /// Forgets retired marks (on config reload).
    public func reload() async { retired.clear() }

    /// Routes `chat` (an OpenAI chat request body) down `route`.
    /// `patient`: 429 answers do not count against `retry.attempts`; the request waits max(`retry-after`, backoff)
    /// (up to a minute a time) and `onRateLimited` is told, so a labelling job slows down instead of failing. The
    /// patience is bounded: after `patienceSeconds` of a request, 429s count as failed attempts again.
    public func dispatch(
        _ chat: JSON, route: RouteConfig, stream: Bool, retry: RetryPolicy, estimatedTokens: Int,
        patient: Bool = false, patienceSeconds: Double = 3600, onRateLimited: @Sendable () -> Void = {}
    ) async -> DispatchOutcome {
        let patientUntil = ContinuousClock.now + .seconds(patienceSeconds)
        var attempts = 0
        var reasons: [String] = []
        let deployments = route.eligibleDeployments
        for (index, deployment) in deployments.enumerated() {
            if retired.contains(deployment.id) {
                reasons.append("\(deployment.id): retired")
                continue
            }
            var backoff = retry.backoffMilliseconds
            var tries = 0
            deploymentLoop: while tries < retry.attempts {
                guard breakers.admit(deployment.id) else {
                    reasons.append("\(deployment.id): circuit open")
                    break deploymentLoop
                }
                tries += 1
                attempts += 1
                let request: UpstreamHTTPRequest
                do {
                    let key = deployment.providerConfig.apiKeyEnv.flatMap(environment)
                    request = try Wire.request(for: chat, deployment: deployment, stream: stream, apiKey: key)
                } catch {
                    breakers.release(deployment.id)
                    return .invalid(error.message, attempts: attempts - 1)
                }
                do {
                    return try await attempt(
                        request, deployment: deployment, stream: stream, estimatedTokens: estimatedTokens,
                        attempts: attempts, failover: index > 0)
                } catch let error as AttemptError {
                    let next = await afterFailure(
                        error, deployment: deployment, route: route, retry: retry, tries: tries, backoff: &backoff,
                        patient: patient && ContinuousClock.now < patientUntil, attempts: attempts, reasons: &reasons,
                        onRateLimited: onRateLimited)
                    switch next {
                    case .again(counts: true): continue deploymentLoop
                    case .again(counts: false):
                        tries -= 1
                        continue deploymentLoop
                    case .next: break deploymentLoop
                    case .answer(let outcome): return outcome
                    }
                } catch {
                    breakers.failure(deployment.id)
                    reasons.append("\(deployment.id): \(error)")
                    break deploymentLoop
                }
            }
        }
        return .unavailable(attempts: attempts, reasons: reasons)
    }

    /// One call to `deployment`: waits for its rate limiter, sends, and tells the breaker (on success) and the attempt
    /// metric. Throws what the call failed with (an `AttemptError` for an upstream's failure).
    func attempt(
        _ request: UpstreamHTTPRequest, deployment: Deployment, stream: Bool, estimatedTokens: Int, attempts: Int,
        failover: Bool
    ) async throws -> DispatchOutcome {
        let limited =
            deployment.concurrency != nil || deployment.requestsPerMinute != nil || deployment.tokensPerMinute != nil
        let limiter = limited ? limiters.limiter(for: deployment.id) : nil
        await limiter?.acquire(
            concurrency: deployment.concurrency, rpm: deployment.requestsPerMinute, tpm: deployment.tokensPerMinute,
            tokens: estimatedTokens
        )
        let attemptStart = ContinuousClock.now
        func elapsed() -> Double {
            (ContinuousClock.now - attemptStart).inSeconds
        }
        do {
            if stream {
                let opened = try await openStream(request, deployment: deployment)
                await limiter?.release()
                breakers.success(deployment.id)
                onAttempt(deployment.id, "ok", elapsed())
                return .streaming(opened, deployment, attempts: attempts, failover: failover)
            }
            let answer = try await complete(request, deployment: deployment)
            await limiter?.release()
            breakers.success(deployment.id)
            onAttempt(deployment.id, "ok", elapsed())
            return .completed(answer, deployment, attempts: attempts, failover: failover)
        } catch let error as AttemptError {
            await limiter?.release()
            onAttempt(deployment.id, error.outcome, elapsed())
            throw error
        } catch {
            await limiter?.release()
            throw error
        }
    }

    /// What a dispatch does after a failed attempt.
    enum AfterFailure {
        /// Call the same deployment again (`counts`: whether the attempt counts against `retry.attempts`).
        case again(counts: Bool)
        /// Go on to the route's next deployment.
        case next
        /// Stop and answer this (a client error the next deployment would refuse too).
        case answer(DispatchOutcome)
    }

    /// Logs a failed attempt, tells the breaker, retires a deployment whose model is gone, and decides: a client error
    /// is answered, a 429 of a `patient` request waits without counting, a retryable failure backs off (unless its
    /// `retry-after` is beyond `max_backoff_ms`) and anything else fails over. Sleeps the wait it decides on.
    func afterFailure(
        _ error: AttemptError, deployment: Deployment, route: RouteConfig, retry: RetryPolicy, tries: Int,
        backoff: inout Double, patient: Bool, attempts: Int, reasons: inout [String],
        onRateLimited: @Sendable () -> Void
    ) async -> AfterFailure {
        logger.warning(
            "upstream attempt failed",
            metadata: ["route": "\(route.name)", "deployment": "\(deployment.id)", "error": "\(error.summary)"]
        )
        let patientWait: Bool = {
            if patient, case .status(429, _, _, _) = error { return true }
            return false
        }()
        if error.isBreakerFailure && !patientWait {
            breakers.failure(deployment.id)
        } else {
            breakers.release(deployment.id)
        }
        if case .status(_, _, _, true) = error {
            retired.insert(deployment.id)
            reasons.append("\(deployment.id): \(error.summary)")
            await onFailover(route.name, deployment.id, "retired: \(error.summary)")
            return .next
        }
        if error.isClientError, case .status(let code, _, let message, _) = error {
            return .answer(.refused(status: code, message: message, deployment, attempts: attempts))
        }
        reasons.append("\(deployment.id): \(error.summary)")
        if patientWait, case .status(429, let retryAfter, _, _) = error {
            onRateLimited()
            let wait = min(60_000, max(backoff * Double.random(in: 0.5...1.0), (retryAfter ?? 0) * 1000))
            try? await Task.sleep(for: .milliseconds(Int(wait)))
            backoff = min(backoff * 2, retry.maxBackoffMilliseconds)
            return .again(counts: false)
        }
        guard error.isRetryable, tries < retry.attempts else {
            await onFailover(route.name, deployment.id, error.summary)
            return .next
        }
        var wait = backoff * Double.random(in: 0.5...1.0)
        if case .status(_, let retryAfter?, _, _) = error { wait = max(wait, retryAfter * 1000) }
        if wait > retry.maxBackoffMilliseconds {
            await onFailover(route.name, deployment.id, "retry-after beyond max_backoff_ms")
            return .next
        }
        try? await Task.sleep(for: .milliseconds(Int(wait)))
        backoff = min(backoff * 2, retry.maxBackoffMilliseconds)
        return .again(counts: true)
    }

    func send(_ request: UpstreamHTTPRequest, deployment: Deployment) async throws(AttemptError) -> HTTPClientResponse {
        var outgoing = HTTPClientRequest(url: request.url)
        outgoing.method = .POST
        for (name, value) in request.headers { outgoing.headers.add(name: name, value: value) }
        outgoing.body = .bytes(ByteBuffer(data: request.body))
        let client = clients.client(timeout: deployment.timeoutSeconds)
        do {
            return try await client.execute(outgoing, deadline: .now() + .hours(24))
        } catch {
            throw Dispatcher.classify(error)
        }
    }

    static func classify(_ error: any Error) -> AttemptError {
        if let error = error as? AttemptError { return error }
        if let error = error as? HTTPClientError {
            if error == .readTimeout || error == .deadlineExceeded || error == .connectTimeout {
                return .timeout
            }
            return .transport("\(error)")
        }
        return .transport("\(error)")
    }

    static func failure(status: Int, headers: HTTPHeaders, body: ByteBuffer) -> AttemptError {
        let text = String(buffer: body)
        let json = try? JSON.parse(text)
        let error = json?["error"]
        let message = error?["message"]?.string ?? error?.string ?? String(text.prefix(200))
        let code = (error?["code"]?.string ?? "") + " " + (error?["type"]?.string ?? "")
        let lowered = (code + " " + message).lowercased()
        let retired =
            status == 404 || status == 410
            || (status == 400
                && ["model_not_found", "decommissioned", "deprecated", "retired", "does not exist"].contains {
                    lowered.contains($0)
                })
        let retryAfter = headers.first(name: "retry-after").flatMap { Double($0.trimmingCharacters(in: .whitespaces)) }
        return .status(status, retryAfter: retryAfter, message: message, retired: retired)
    }

    func complete(_ request: UpstreamHTTPRequest, deployment: Deployment) async throws -> TranslatedCompletion {
        let response = try await send(request, deployment: deployment)
        let body: ByteBuffer
        do {
            body = try await response.body.collect(upTo: 64 << 20)
        } catch {
            throw Dispatcher.classify(error)
        }
        guard response.status.code == 200 else {
            throw Dispatcher.failure(status: Int(response.status.code), headers: response.headers, body: body)
        }
        guard let json = try? JSON.parse(Data(body.readableBytesView)) else {
            throw AttemptError.malformed("not JSON")
        }
        do {
            var translated = try Wire.completion(json, deployment: deployment)
            if deployment.providerConfig.kind == .openai { translated.rawBody = Data(body.readableBytesView) }
            return translated
        } catch {
            throw AttemptError.malformed(error.message)
        }
    }

    func openStream(_ request: UpstreamHTTPRequest, deployment: Deployment) async throws -> UpstreamStream {
        let response = try await send(request, deployment: deployment)
        guard response.status.code == 200 else {
            let body = (try? await response.body.collect(upTo: 1 << 20)) ?? ByteBuffer()
            throw Dispatcher.failure(status: Int(response.status.code), headers: response.headers, body: body)
        }
        let stream = UpstreamStream(body: response.body, translator: Wire.streamTranslator(for: deployment))
        let first: StreamItem?
        do {
            first = try await stream.next()
        } catch {
            throw Dispatcher.classify(error)
        }
        guard let first else { throw AttemptError.malformed("the stream ended before its first event") }
        if case .error(let message) = first {
            throw AttemptError.status(502, retryAfter: nil, message: message, retired: false)
        }
        stream.pushBack(first)
        return stream
    }
}

/// One HTTP client per distinct `timeout_s`, whose read timeout bounds both the first byte and every gap.
/// Clients live as long as the process (like `HTTPClient.shared`), so a gateway that goes away never leaks one.
final class ClientPool: Sendable {
    private static let clients = Mutex<[Double: HTTPClient]>([:])

    /// The configuration of the client for `timeout` seconds.
    ///
    /// A refused or reset connection fails the attempt at once: AsyncHTTPClient's default
    /// (`retryConnectionEstablishment`) keeps re-dialling with backoff until the connect timeout, so a dead upstream
    /// cost the whole connect timeout per attempt instead of a failover as fast as a 503's.
    static func configuration(timeout: Double) -> HTTPClient.Configuration {
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(
            connect: .milliseconds(Int64(min(timeout, 10) * 1000)), read: .milliseconds(Int64(timeout * 1000))
        )
        configuration.connectionPool = .init(
            idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 256
        )
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.decompression = .disabled
        return configuration
    }

    func client(timeout: Double) -> HTTPClient {
        ClientPool.clients.withLock { clients in
            if let client = clients[timeout] { return client }
            let client = HTTPClient(
                eventLoopGroupProvider: .singleton, configuration: ClientPool.configuration(timeout: timeout))
            clients[timeout] = client
            return client
        }
    }

    func shutdown() {}
}

/// Deployments marked retired until the config is reloaded.
package final class RetiredSet: Sendable {
    private let ids = Mutex<Set<String>>([])
    func contains(_ id: String) -> Bool { ids.withLock { $0.contains(id) } }
    func insert(_ id: String) { _ = ids.withLock { $0.insert(id) } }
    func clear() { ids.withLock { $0 = [] } }
    package var all: Set<String> { ids.withLock { $0 } }
}

/// One limiter per deployment.
final class LimiterPool: Sendable {
    private let limiters = Mutex<[String: DeploymentLimiter]>([:])
    func limiter(for id: String) -> DeploymentLimiter {
        limiters.withLock { limiters in
            if let limiter = limiters[id] { return limiter }
            let limiter = DeploymentLimiter()
            limiters[id] = limiter
            return limiter
        }
    }
}

import Foundation
import HTTPTypes
import Hummingbird
import RetortTeacher

/// What a gateway request carries from the middleware to its handler.
public struct GatewayRequestContext: RequestContext {
    /// Hummingbird's own per-request storage.
    public var coreContext: CoreRequestContextStorage
    /// The configuration and students the request runs on, taken once when it arrives (set by `KeyAuthentication`;
    /// a reload that lands while the request runs does not change them).
    public var snapshot: Gateway.Snapshot?
    /// The client key the request authenticated with (set by `KeyAuthentication`).
    public var key: ClientKey?
    /// The request's id, echoed in `X-Request-Id` and in its log lines (set by `RequestIdentification`).
    public var requestID: String?

    /// A context for a request from `source`.
    public init(source: Source) { coreContext = .init(source: source) }
}

/// Bearer-key authentication for the client endpoints: takes the request's snapshot, finds its key by SHA-256 and puts
/// both in the context, or answers 401 `invalid_api_key`; with `adminOnly` a key without `admin: true` gets 403.
struct KeyAuthentication: RouterMiddleware {
    typealias Context = GatewayRequestContext

    /// The gateway whose keys apply.
    let gateway: Gateway
    /// Whether `?key=` may carry the key (the dashboard, opened in a browser).
    var allowQuery = false
    /// What an admin key is needed for (`the dashboard`), or nil when any key will do.
    var adminOnly: String?

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let snapshot = gateway.snapshot
        guard let key = gateway.authenticate(request, in: snapshot.config, allowQuery: allowQuery) else {
            return gateway.failure(Gateway.unauthorized)
        }
        if let adminOnly, !key.admin {
            return gateway.failure(
                GatewayFailure(
                    status: .forbidden, type: "permission_error", code: "admin_required",
                    message: "\(adminOnly) needs an admin key"
                )
            )
        }
        var context = context
        context.snapshot = snapshot
        context.key = key
        return try await next(request, context)
    }
}

/// `X-Request-Id` on every response, and the same id in the context and in the request's log metadata
/// (`request_id`): the client's own id when it sent a usable one (1–128 visible ASCII characters, as proxies and
/// tracing libraries send), else a fresh `req-` UUID. A client can then name a request when it reports a problem.
struct RequestIdentification: RouterMiddleware {
    typealias Context = GatewayRequestContext

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let id = Self.usable(request.headers[.requestID]) ?? "req-" + UUID().uuidString.lowercased()
        var context = context
        context.requestID = id
        context.logger[metadataKey: "request_id"] = .string(id)
        var response = try await next(request, context)
        response.headers[.requestID] = id
        return response
    }

    /// `value` when it is 1–128 visible ASCII characters (no spaces or controls), else nil.
    static func usable(_ value: String?) -> String? {
        guard let value, (1...128).contains(value.utf8.count), value.utf8.allSatisfy({ (0x21...0x7E).contains($0) })
        else { return nil }
        return value
    }
}

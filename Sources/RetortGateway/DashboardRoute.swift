import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import RetortTeacher
import RetortUsage

extension Gateway {
    /// `GET /dashboard` (admin keys; `?key=` works for a browser).
    func dashboard(_ context: GatewayRequestContext) async throws -> Response {
        guard let config = context.snapshot?.config else { return failure(Gateway.unauthorized) }
        let now = Date().timeIntervalSince1970
        var health: [(deployment: String, state: BreakerBoard.State?, retired: Bool)] = []
        let retired = dispatcher.retired.all
        for route in config.routes.values.sorted(by: { $0.name < $1.name }) {
            for deployment in route.deployments where !health.contains(where: { $0.deployment == deployment.id }) {
                health.append((deployment.id, breakers.state(deployment.id), retired.contains(deployment.id)))
            }
        }
        let html = try DashboardPage.load(ledger: ledger, health: health, now: now).html
        return Response(
            status: .ok, headers: [.contentType: "text/html; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: html))
        )
    }
}

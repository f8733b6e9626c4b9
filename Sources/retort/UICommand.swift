import ArgumentParser
import Foundation
import RetortData
import RetortTeacher
import RetortUI

/// `retort ui`: the local web app.
struct UI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ui",
        abstract: "A local web app: live pipeline of running searches, runs, comparisons, history and gateway spend.",
        discussion: """
            Pages are rendered on the server; a search started in another terminal (or on a Ray cluster) shows up by
            itself, its pipeline updated live from its journal. Nothing is loaded from the network.
            """
    )
    @Option(help: "The results folder to list runs from.") var results = "results"
    @Option(help: "A gateway config: the Spend page shows its ledger and deployed students.") var gatewayConfig: String?
    @OptionGroup var history: HistoryOptions
    @Option(help: "Address to listen on (keep it local).") var host = "127.0.0.1"
    @Option(help: "Port.") var port = 8790

    func validate() throws { try OptionChecks.integer(port, "--port", in: OptionChecks.ports) }

    func run() async throws {
        try await ErrorReporting.run {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: results, isDirectory: &isDirectory), !isDirectory.boolValue {
                throw DataError(.usage, "--results must be a folder", file: results)
            }
            if let gatewayConfig { _ = try GatewayConfig.load(gatewayConfig) }
            let server = UIServer(
                results: URL(fileURLWithPath: results), gatewayConfig: gatewayConfig,
                historyPath: try history.prepared())
            let host = self.host
            try await server.serve(host: host, port: port) { bound in
                FileHandle.standardOutput.write(Data("retort ui on http://\(host):\(bound)/\n".utf8))
            }
        }
    }
}

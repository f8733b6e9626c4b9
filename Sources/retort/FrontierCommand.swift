import ArgumentParser
import Foundation
import RetortData
import RetortReports

struct Frontier: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the Pareto frontier table of a run.")

    @Argument(help: "A run folder (results/JOB/RUN-ID or results/JOB/latest).")
    var runDirectory: String

    func run() async throws {
        try await ErrorReporting.run {
            let report = try loadReport(runDirectory)
            say(FrontierTable.markdown(report))
        }
    }
}

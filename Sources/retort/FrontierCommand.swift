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
            let url = URL(fileURLWithPath: runDirectory)
            let reportURL = url.appendingPathComponent("report.json")
            guard FileManager.default.fileExists(atPath: reportURL.path) else {
                throw DataError(
                    .missingInput, "no report.json here; give a finished run folder such as results/JOB/latest",
                    file: url.relativePath)
            }
            let report: RunReport
            do { report = try RunReport.load(runDirectory: url) } catch {
                throw DataError(.badData, "report.json cannot be read: \(error)", file: reportURL.relativePath)
            }
            say(FrontierTable.markdown(report))
        }
    }
}

import ArgumentParser
import Foundation
import RetortData
import RetortReports

struct Compare: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Compare two runs: frontiers side by side, what joined or left, deltas with CI overlap, recommendations.")

    @Argument(help: "The first run folder (A).")
    var runA: String
    @Argument(help: "The second run folder (B).")
    var runB: String

    func run() async throws {
        try await ErrorReporting.run {
            say(RunComparison.markdown(try loadReport(runA), try loadReport(runB)))
        }
    }
}

/// report.json of a finished run folder, or a located error.
func loadReport(_ folder: String) throws -> RunReport {
    let url = URL(fileURLWithPath: folder)
    let reportURL = url.appendingPathComponent("report.json")
    guard FileManager.default.fileExists(atPath: reportURL.path) else {
        throw DataError(
            .missingInput, "no report.json here; give a finished run folder such as results/JOB/latest",
            file: url.relativePath)
    }
    do { return try RunReport.load(runDirectory: url) } catch {
        throw DataError(.badData, "report.json cannot be read: \(error)", file: reportURL.relativePath)
    }
}

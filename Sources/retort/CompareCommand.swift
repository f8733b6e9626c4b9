import ArgumentParser
import Foundation
import RetortData
import RetortReports
import RetortSearch

struct Compare: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Compare two runs: frontiers side by side, what joined or left, deltas with CI overlap, recommendations.")

    @Argument(help: "The first run folder (A).")
    var runA: String
    @Argument(help: "The second run folder (B).")
    var runB: String
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await ErrorReporting.run {
            let (a, b) = (try loadReport(runA), try loadReport(runB))
            if output.json {
                try output.printJSON(
                    CompareJSON(
                        joined: b.frontier.filter { !a.frontier.contains($0) },
                        left: a.frontier.filter { !b.frontier.contains($0) },
                        both: a.frontier.filter { b.frontier.contains($0) }, recommendationA: a.recommendation,
                        recommendationB: b.recommendation))
            } else {
                say(output.styled(RunComparison.markdown(a, b)))
            }
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
        let data = FileManager.default.contents(atPath: reportURL.path) ?? Data()
        throw DataError(
            .badData, "report.json cannot be read: \(DecodingProblem.describe(any: error))",
            file: reportURL.relativePath, line: DecodingProblem.line(of: error, in: data))
    }
}

/// `retort compare --json`.
struct CompareJSON: Encodable {
    let joined: [String]
    let left: [String]
    let both: [String]
    let recommendationA: RunReport.RecommendationRecord
    let recommendationB: RunReport.RecommendationRecord

    enum CodingKeys: String, CodingKey {
        case joined, left, both
        case recommendationA = "recommendation_a"
        case recommendationB = "recommendation_b"
    }
}

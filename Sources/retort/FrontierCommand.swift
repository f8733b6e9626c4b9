import ArgumentParser
import Foundation
import RetortData
import RetortReports
import RetortSearch

struct Frontier: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the Pareto frontier table of a run.")

    @Argument(help: "A run folder (results/JOB/RUN-ID or results/JOB/latest).")
    var runDirectory: String
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await ErrorReporting.run {
            let report = try loadReport(runDirectory)
            if output.json {
                try output.printJSON(
                    FrontierJSON(
                        frontier: report.candidates.filter { report.frontier.contains($0.id) }, teacher: report.teacher,
                        recommendation: report.recommendation))
            } else {
                say(output.styled(FrontierTable.markdown(report)))
            }
        }
    }
}

/// `retort frontier --json`: the frontier members, the teacher and the recommendation.
struct FrontierJSON: Encodable {
    let frontier: [TrialResult]
    let teacher: TeacherSummary
    let recommendation: RunReport.RecommendationRecord
}

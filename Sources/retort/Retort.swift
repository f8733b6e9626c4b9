import ArgumentParser

/// `retort`: which small model should this teacher be distilled into, or should it not be distilled at all?
@main
struct Retort: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retort",
        abstract: "Search student models to distill a teacher into, or learn that the teacher should stay.",
        subcommands: [
            Search.self, Candidates.self, Frontier.self, Recommend.self, Compare.self, Predict.self, Demo.self,
            Bench.self, History.self, Suggest.self, GatewayCommand.self, Usage.self, Label.self, CaptureCommand.self,
            Ingest.self, TrialCommand.self, Deploy.self, UI.self,
        ]
    )
}

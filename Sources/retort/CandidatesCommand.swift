import ArgumentParser
import Foundation
import RetortData
import RetortSearch

struct Candidates: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List a job's expanded candidate space: sizes, FLOPs, and which candidates the constraints rule out.")

    @Argument(help: "A job file (YAML or JSON).")
    var job: String?
    @Option(help: "A task folder, instead of a job file.")
    var task: String?
    @OptionGroup var options: SearchOptions

    func validate() throws {
        guard (job == nil) != (task == nil) else {
            throw ValidationError("give a job file or --task DIR (one of them)")
        }
    }

    func run() async throws {
        try await ErrorReporting.run {
            var loaded =
                try job.map { try Job.load(URL(fileURLWithPath: $0)) } ?? Job(task: URL(fileURLWithPath: task ?? "."))
            try options.apply(to: &loaded)
            let data = try TaskData.load(loaded)
            let settings = try searchSettings(for: loaded, strategy: .exhaustive, workers: 1)
            let space = SearchEngine.candidateSpace(task: data, settings: settings)
            let feasible = space.filter { $0.reason == nil }
            say("| candidate | family | precision | params | size | FLOPs/ex | feasible |")
            say("|---|---|---|---|---|---|---|")
            for trial in space {
                say(
                    "| \(trial.id) | \(trial.family.rawValue) | \(trial.precision.rawValue) | \(trial.params) | "
                        + "\(ByteSize.format(trial.sizeBytes)) | \(trial.flopsPerExample) | \(trial.reason ?? "yes") |")
            }
            let feasibleIds = Set(feasible.map(\.id))
            let runs = Set(
                settings.catalog.candidates(for: data.kind).filter { feasibleIds.contains($0.id) }.map(\.trainingKey)
            ).count
            say("")
            say(
                "\(space.count) candidates for the \(data.kind.rawValue) task \(data.name): \(feasible.count) feasible "
                    + "(\(runs) training runs), \(space.count - feasible.count) ruled out before training.")
        }
    }
}

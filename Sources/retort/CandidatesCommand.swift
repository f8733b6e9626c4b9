import ArgumentParser
import Foundation
import RetortData
import RetortSearch

struct Candidates: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List a job's expanded candidate space: sizes, FLOPs, and which candidates the constraints rule out.")

    @OptionGroup var input: JobInput
    @OptionGroup var options: SearchOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard input.job != nil || input.task != nil else { throw ValidationError("give a job file or --task DIR") }
    }

    func run() async throws {
        try await ErrorReporting.run {
            guard var loaded = try input.load() else { throw DataError(.usage, "give a job file or --task DIR") }
            try options.apply(to: &loaded)
            let data = try TaskData.load(loaded)
            let settings = try SearchSettings(job: loaded, strategy: .exhaustive, workers: 1)
            let space = SearchEngine.candidateSpace(task: data, settings: settings)
            let feasible = space.filter { $0.reason == nil }
            if output.json {
                try output.printJSON(space)
                return
            }
            say("| candidate | family | precision | params | size | FLOPs/ex | feasible |")
            say("|---|---|---|---|---|---|---|")
            for trial in space {
                say(
                    "| \(trial.id) | \(trial.family.rawValue) | \(trial.precision.rawValue) | \(trial.params) | "
                        + "\(ByteSize.format(trial.sizeBytes)) | \(trial.flopsPerExample) | \(trial.reason ?? "yes") |")
            }
            let feasibleIds = Set(feasible.map(\.id))
            let runs = Set(
                settings.catalog.candidates(for: data).filter { feasibleIds.contains($0.id) }.map(\.trainingKey)
            ).count
            say("")
            say(
                "\(space.count) candidates for the \(data.kind.rawValue) task \(data.name): \(feasible.count) feasible "
                    + "(\(runs) training runs), \(space.count - feasible.count) ruled out before training.")
        }
    }
}

import ArgumentParser
import Foundation
import RetortData
import RetortNumerics
import RetortSearch

/// `retort trial`: one trial (a training group's rung) as its own process, as executors run it.
struct TrialCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trial",
        abstract: "Run single trials (what `search --executor process` and remote workers execute).",
        subcommands: [TrialRun.self])
}

struct TrialRun: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run one trial from a spec; write result.json (its journal records) and state.safetensors.",
        discussion: """
            The spec (JSON) names the rows (a task folder or three JSONL files), the training group's candidates,
            the rung, its target epochs, the seed and eval settings, the budget left and optionally a safetensors
            checkpoint to continue from. Training and evaluation are deterministic: the records equal those of the
            same rung run inside `retort search`.
            """)

    @Option(help: "The trial spec (JSON).")
    var spec: String
    @Option(help: "Folder for result.json and state.safetensors (created).")
    var out: String

    func run() async throws {
        try await ErrorReporting.run {
            let specURL = URL(fileURLWithPath: spec)
            let trial = try TrialSpec.read(specURL)
            BLASThreads.set(
                trial.blasThreads ?? ProcessInfo.processInfo.environment["RETORT_BLAS_THREADS"].flatMap(Int.init) ?? 1)
            let task = try TaskData.load(try trial.job())
            let (outcome, state) = try SearchEngine.runTrial(trial, task: task, file: specURL.relativePath)
            let folder = URL(fileURLWithPath: out, isDirectory: true)
            do {
                try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
                try state.write(to: folder.appendingPathComponent("state.safetensors"), options: .atomic)
                try outcome.encoded().write(to: folder.appendingPathComponent("result.json"), options: .atomic)
            } catch {
                throw DataError(.cannotCreateOutput, "cannot write result.json and state.safetensors", file: out)
            }
        }
    }
}

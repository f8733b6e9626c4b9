import ArgumentParser
import Foundation
import RetortData
import RetortExamples
import RetortNumerics

struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Build the bundled shop-support example (rows and a real local teacher) and run a full search on it.",
        discussion: """
            With --structured, the example's structured twin (FORMATS.md §9): the same messages answered with a JSON
            object (the intent and the slot values it names), a fields teacher trained on the gold objects, and a
            search of the structured students (examples/shop-support-structured/job.yaml).
            """)

    @Option(help: "The example folder (templates.yaml, job.yaml).")
    var example: String?
    @Flag(help: "Build and search the structured twin (examples/shop-support-structured).")
    var structured = false
    @OptionGroup var options: SearchOptions
    @OptionGroup var history: HistoryOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await ErrorReporting.run {
            let folder = URL(
                fileURLWithPath: example ?? (structured ? "examples/shop-support-structured" : "examples/shop-support"))
            // The structured twin reads the label example's templates.
            let templates =
                structured && example == nil
                ? URL(fileURLWithPath: "examples/shop-support/templates.yaml")
                : folder.appendingPathComponent("templates.yaml")
            guard FileManager.default.fileExists(atPath: templates.path) else {
                throw DataError(
                    .missingInput, "no templates.yaml; run from the repository root or pass --example",
                    file: templates.relativePath)
            }
            BLASThreads.set(ProcessInfo.processInfo.environment["RETORT_BLAS_THREADS"].flatMap(Int.init) ?? 1)
            let log = progressLog(json: output.json)
            if structured {
                log("[demo] generating the structured shop-support task from \(templates.relativePath)")
                let summary = try ShopSupportStructuredExample.build(
                    templates: templates, folder: folder.appendingPathComponent("task"), progress: log)
                log(
                    String(
                        format:
                            "[teacher] %d params, trained in %.1f s; test exact match vs gold %.4f; measured p50 %.4f ms",
                        summary.teacherParams, summary.teacherTrainSeconds, summary.teacherTestExactMatch,
                        summary.teacherLatencyMs))
            } else {
                log("[demo] generating the shop-support task from \(templates.relativePath)")
                let summary = try ShopSupportExample.build(
                    templates: templates, folder: folder.appendingPathComponent("task"), progress: log)
                log(
                    String(
                        format:
                            "[teacher] %d params, trained in %.1f s; test accuracy vs gold %.4f; measured p50 %.4f ms",
                        summary.teacherParams, summary.teacherTrainSeconds, summary.teacherTestAccuracy,
                        summary.teacherLatencyMs))
            }
            var job = try Job.load(folder.appendingPathComponent("job.yaml"))
            try options.apply(to: &job)
            _ = try await runSearch(
                job, workers: options.workers, json: output.json, style: output.styled, history: try history.open())
        }
    }
}

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
        subcommands: [TrialRun.self, TrialServe.self, TrialRayOverhead.self])
}

struct TrialRun: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run one trial from a spec; write result.json and the trained state (or students) into --out.",
        discussion: """
            The spec (JSON) names the rows (a task folder or three JSONL files), the training group's candidates,
            the rung, its target epochs, the seed and eval settings, the budget left and optionally a safetensors
            checkpoint to continue from. Training and evaluation are deterministic: the records equal those of the
            same rung run inside `retort search`. A structured search's spec ("kind": "structured") names one
            training run's candidates and its fidelity; the trial writes result.json and, per candidate, a folder
            ID/ holding the student and its validation answers (the format of a run's checkpoints/ID/).
            """)

    @Option(help: "The trial spec (JSON).")
    var spec: String
    @Option(help: "Folder for result.json and state.safetensors (created).")
    var out: String

    func run() async throws {
        try await ErrorReporting.run { try Self.run(spec: spec, out: out, cache: nil) }
    }

    /// Runs the trial `spec` describes and writes its result and state into `out` (rows and features from `cache`
    /// when given).
    static func run(spec: String, out: String, cache: TrialCache?) throws {
        let specURL = URL(fileURLWithPath: spec)
        if StructuredTrialSpec.isStructured(specURL) {
            let trial = try StructuredTrialSpec.read(specURL)
            BLASThreads.set(
                trial.blasThreads ?? ProcessInfo.processInfo.environment["RETORT_BLAS_THREADS"].flatMap(Int.init) ?? 1)
            let task = try cache?.structuredTask(for: trial) ?? StructuredTaskData.load(try trial.job())
            try StructuredSearch.runTrial(
                trial, task: task, out: URL(fileURLWithPath: out, isDirectory: true), file: specURL.relativePath)
            return
        }
        let trial = try TrialSpec.read(specURL)
        BLASThreads.set(
            trial.blasThreads ?? ProcessInfo.processInfo.environment["RETORT_BLAS_THREADS"].flatMap(Int.init) ?? 1)
        let task = try cache?.task(for: trial) ?? TaskData.load(try trial.job())
        let (outcome, state) = try SearchEngine.runTrial(trial, task: task, file: specURL.relativePath, cache: cache)
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

/// `retort trial serve`: `trial run` for a stream of specs, keeping the rows and features between them.
struct TrialServe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run trials from specs read on stdin, one JSON line each; answer each with a JSON line.",
        discussion: """
            Each request is {"spec": FILE, "out": DIR}; each answer {"ok": true} once DIR holds result.json and
            state.safetensors, or {"ok": false, "message": "FILE: error: …"}. The rows of the last data set and
            the features built on them stay loaded between trials, so a Ray worker pays for reading and
            featurizing once, not per trial; the results equal `trial run`'s. Ends at the end of stdin.
            """)

    func run() async throws {
        let cache = TrialCache()
        while let line = readLine() {
            guard !line.trimmingCharacters(in: .whitespaces).isEmpty else { continue }
            var answer: [String: Any] = ["ok": true]
            do {
                guard let data = line.data(using: .utf8),
                    let request = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                    let spec = request["spec"] as? String, let out = request["out"] as? String
                else { throw DataError(.usage, "a request is {\"spec\": FILE, \"out\": DIR}") }
                try TrialRun.run(spec: spec, out: out, cache: cache)
            } catch let error as DataError {
                answer = ["ok": false, "message": error.description]
            } catch {
                answer = ["ok": false, "message": "\(error)"]
            }
            let data = try JSONSerialization.data(withJSONObject: answer, options: [.sortedKeys])
            FileHandle.standardOutput.write(data + Data([0x0A]))
        }
    }
}

/// `retort trial ray-overhead`: the Ray path's cost per trial, with no training in it.
struct TrialRayOverhead: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ray-overhead",
        abstract: "Time empty trials through the Ray bridge: submit to result, one at a time.",
        discussion: """
            Two kinds, interleaved: an empty Ray task (the pipe to the bridge, Ray's scheduling and the reply), and
            the same task starting the workers' `retort --help` (adds a process start, as every trial has).
            Prints the median and the 10th and 90th percentiles of each in milliseconds (with --json, one object).
            """)

    @OptionGroup var ray: RayOptions
    @Option(help: "Empty trials of each kind.")
    var count: Int = 50
    @Flag(help: "Print the figures as JSON.")
    var json = false

    func validate() throws { try OptionChecks.integer(count, "--count", in: 1...100_000) }

    func run() async throws {
        try await ErrorReporting.run {
            guard count >= 1 else { throw DataError(.usage, "--count must be at least 1") }
            let options = try ray.resolve(cpusPerTrial: 1)
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
                "retort-ray-\(UUID().uuidString)", isDirectory: true)
            defer { try? FileManager.default.removeItem(at: folder) }
            // The bridge wants rows to ship; an empty file stands in (no trial reads it).
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let empty = folder.appendingPathComponent("empty.jsonl")
            try Data().write(to: empty)
            let executor = try await RayTrialExecutor(
                options: options, data: .files(train: empty, validation: empty, test: empty),
                directory: folder.appendingPathComponent("bridge"))
            defer { executor.close() }
            _ = try await executor.emptyTrials(count: 3, exec: true)  // warm the workers
            var plain: [Double] = []
            var exec: [Double] = []
            for _ in 0..<count {
                plain += try await executor.emptyTrials(count: 1, exec: false)
                exec += try await executor.emptyTrials(count: 1, exec: true)
            }
            func quantile(_ values: [Double], _ q: Double) -> Double { Quantile.of(values, q) * 1000 }
            let cluster = executor.cluster
            if json {
                let figures: [String: Any] = [
                    "nodes": cluster.nodes, "cpus": cluster.cpus, "ray": cluster.rayVersion, "count": count,
                    "empty_task_ms": [
                        "p10": quantile(plain, 0.1), "p50": quantile(plain, 0.5), "p90": quantile(plain, 0.9),
                    ],
                    "empty_trial_ms": [
                        "p10": quantile(exec, 0.1), "p50": quantile(exec, 0.5), "p90": quantile(exec, 0.9),
                    ],
                ]
                let data = try JSONSerialization.data(withJSONObject: figures, options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            } else {
                print(
                    "Ray \(cluster.rayVersion) at \(options.address): \(cluster.nodes) node(s), \(cluster.cpus) CPU(s)")
                for (name, values) in [("empty task", plain), ("empty trial (starts retort)", exec)] {
                    print(
                        String(
                            format: "%@: p50 %.2f ms (p10 %.2f, p90 %.2f) over %d", name, quantile(values, 0.5),
                            quantile(values, 0.1), quantile(values, 0.9), values.count))
                }
            }
        }
    }
}

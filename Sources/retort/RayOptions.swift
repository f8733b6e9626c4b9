import ArgumentParser
import Foundation
import RetortData
import RetortSearch

/// How `retort` reaches a Ray cluster (`search --executor ray`, `trial ray-overhead`).
struct RayOptions: ParsableArguments {
    @Option(
        name: .customLong("ray-address"),
        help: "The Ray cluster's head, HOST:PORT (default: $RAY_ADDRESS).")
    var address: String?
    @Option(
        name: .customLong("ray-retort-bin"),
        help: "The retort binary on the Ray workers: a path, or a name on their PATH (default: retort).")
    var retortBinary: String?
    @Option(
        name: .customLong("ray-python"),
        help:
            "The Python with the cluster's `ray` package that runs the bridge (default: $RETORT_RAY_PYTHON, else .build-bench/ray/bin/python beside the bridge, else python3)."
    )
    var python: String?
    @Option(
        name: .customLong("ray-bridge"),
        help:
            "The bridge script (default: $RETORT_RAY_BRIDGE, else integrations/ray/retort_ray.py of the checkout this binary was built in or the current folder)."
    )
    var bridge: String?
    @Option(name: .customLong("ray-retries"), help: "Resubmissions of a trial lost with its worker or node.")
    var retries: Int = 3

    func validate() throws { try OptionChecks.integer(retries, "--ray-retries", in: 0...100) }

    /// Whether any Ray option was given.
    var given: Bool { address != nil || retortBinary != nil || python != nil || bridge != nil }

    /// The executor's options; errors name what to pass.
    func resolve(cpusPerTrial: Int) throws -> RayTrialExecutor.Options {
        let environment = ProcessInfo.processInfo.environment
        guard let address = address ?? environment["RAY_ADDRESS"], !address.isEmpty else {
            throw DataError(.usage, "--executor ray needs --ray-address HOST:PORT (or RAY_ADDRESS)")
        }
        guard retries >= 0 else { throw DataError(.usage, "--ray-retries must be 0 or more") }
        let bridgeURL = try locateBridge(environment)
        // The checkout holding the bridge: its .build-bench/ray venv is what `make ray-up` installed.
        let checkout = bridgeURL.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let venv = checkout.appendingPathComponent(".build-bench/ray/bin/python").path
        let python =
            python ?? environment["RETORT_RAY_PYTHON"]
            ?? (FileManager.default.isExecutableFile(atPath: venv) ? venv : "python3")
        var binary = retortBinary ?? "retort"
        if binary.contains("/") { binary = URL(fileURLWithPath: binary).standardizedFileURL.path }
        return RayTrialExecutor.Options(
            python: python, bridge: bridgeURL, address: address, retortBinary: binary, retries: retries,
            cpusPerTrial: cpusPerTrial)
    }

    private func locateBridge(_ environment: [String: String]) throws -> URL {
        if let path = bridge ?? environment["RETORT_RAY_BRIDGE"] {
            guard FileManager.default.fileExists(atPath: path) else {
                throw DataError(.missingInput, "no such Ray bridge script", file: path)
            }
            return URL(fileURLWithPath: path).standardizedFileURL
        }
        let relative = "integrations/ray/retort_ray.py"
        var starts = [URL(fileURLWithPath: FileManager.default.currentDirectoryPath)]
        if let executable = Bundle.main.executableURL { starts.append(executable.resolvingSymlinksInPath()) }
        for start in starts {
            var folder = start.standardizedFileURL
            for _ in 0..<6 {
                let candidate = folder.appendingPathComponent(relative)
                if FileManager.default.fileExists(atPath: candidate.path) { return candidate }
                folder = folder.deletingLastPathComponent()
            }
        }
        throw DataError(
            .usage, "cannot find \(relative); pass --ray-bridge PATH (it ships in the retort repository)")
    }
}

import Foundation
import RetortData
import RetortEvals
import RetortNumerics

extension SearchSettings {
    /// The search settings `job` describes: its catalog (or the built-in one, with `job.encoderPath` as the default
    /// encoder), eval suite, constraints (a device profile scales measured latency by this machine's sgemm speed over
    /// the device's) and search keys. Throws `DataError` naming the file and line of a bad catalog or eval suite.
    public init(job: Job, strategy: SearchStrategy, workers: Int) throws {
        var catalog = try job.candidates.map { (value) throws(DataError) in try CandidateCatalog(value) } ?? .standard()
        if let path = job.encoderPath { catalog = catalog.replacingDefaultEncoder(with: path) }
        let suite = try job.evals.map { (value) throws(DataError) in try EvalSuite(value) } ?? .standard
        var constraints = Constraints(
            maxModelBytes: job.maxModelBytes, maxLatencyMs: job.maxLatencyMs, maxDrop: job.maxDrop,
            maxFlops: job.maxFlops)
        constraints.confidence = job.confidence
        if let device = job.device {
            constraints.device = device.name
            constraints.latencyScale = MachineSpeed.sgemmFlopsPerSecond() / device.flopsPerSecond
        }
        self.init(
            catalog: catalog, suite: suite, metric: job.metric, constraints: constraints,
            budgetSeconds: job.budgetSeconds, seed: job.seed, usdPerVCPUHour: job.usdPerVCPUHour, strategy: strategy,
            eta: job.eta, workers: workers, maxRungs: job.rungs)
        if let confidenceZ = job.confidenceZ { self.confidenceZ = confidenceZ }
        trafficPerMonth = job.trafficPerMonth
        trafficSource = job.trafficSource
        speedTolerance = job.speedTolerance
    }

    /// The strategy `job` names; a usage error lists the choices.
    public static func strategy(of job: Job) throws(DataError) -> SearchStrategy {
        guard let strategy = SearchStrategy(rawValue: job.strategy) else {
            throw DataError(
                .usage,
                "unknown strategy \"\(job.strategy)\"; choose from \(SearchStrategy.allCases.map(\.rawValue).joined(separator: ", "))"
            )
        }
        return strategy
    }
}

extension Job {
    /// The settings a journal header records (`JournalRecord.options`), so that `--resume` without a job rebuilds this
    /// one (``applyingJournalOptions(_:)``): strategy, η, rungs, seed, constraints, metric, encoder, z, catalog file
    /// (`catalogPath`) and device.
    public func journalOptions(strategy: SearchStrategy, catalogPath: String?) -> [String: String] {
        var recorded: [String: String] = [
            "strategy": strategy.rawValue, "eta": "\(eta)", "rungs": "\(rungs)", "seed": "\(seed)",
            "max_drop": "\(maxDrop)", "confidence": "\(confidence)", "speed_tolerance": "\(speedTolerance)",
        ]
        recorded["traffic_per_month"] = trafficPerMonth.map { "\($0)" }
        recorded["max_model_bytes"] = maxModelBytes.map { "\($0)" }
        recorded["max_flops"] = maxFlops.map { "\($0)" }
        recorded["max_latency_ms"] = maxLatencyMs.map { "\($0)" }
        recorded["metric"] = metric
        if let path = encoderPath { recorded["encoder"] = URL(fileURLWithPath: path).standardizedFileURL.path }
        recorded["confidence_z"] = confidenceZ.map { "\($0)" }
        recorded["candidates"] = catalogPath.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
        recorded["device"] = device.map { DeviceProfile.builtIn[$0.name] != nil ? $0.name : "" }
        return recorded
    }

    /// The job an interrupted run's journal header describes: its source (job file or task folder) and name, with
    /// the recorded settings applied. A header that names no source is a usage error.
    public static func resumed(from header: JournalRecord?) throws -> Job {
        guard let header, let source = header.source else {
            throw DataError(.usage, "the journal does not say which job it ran; give the job file or --task")
        }
        var job =
            source.hasSuffix(".yaml") || source.hasSuffix(".yml") || source.hasSuffix(".json")
            ? try Job.load(URL(fileURLWithPath: source)) : Job(task: URL(fileURLWithPath: source))
        if let name = header.job { job.name = name }
        try job.applyJournalOptions(header.options ?? [:])
        return job
    }

    /// Applies the settings a journal header recorded (``journalOptions(strategy:catalogPath:)``); a value out of
    /// range means a damaged journal (`DataError.badData`).
    public mutating func applyJournalOptions(_ options: [String: String]) throws {
        if let value = options["strategy"] {
            strategy = value
            strategyChosen = true
        }
        if let value = options["encoder"] { encoderPath = value }
        func number(_ key: String, in range: NumberRange) throws(DataError) -> Double? {
            guard let text = options[key] else { return nil }
            guard let value = Double(text), range.contains(value) else {
                throw DataError(
                    .badData,
                    "the journal records \(key) = \(text), outside \(range.description()); the journal is damaged")
            }
            return value
        }
        func integer(_ key: String, in range: ClosedRange<Int>) throws(DataError) -> Int? {
            guard let value = try number(key, in: NumberRange(Double(range.lowerBound), Double(range.upperBound)))
            else {
                return nil
            }
            guard let whole = Int(exactly: value) else {
                throw DataError(
                    .badData, "the journal records \(key) = \(value), not a whole number; the journal is damaged")
            }
            return whole
        }
        if let value = try number("confidence_z", in: NumberRange(0, 100)) { confidenceZ = value }
        if let value = try integer("eta", in: JobLimits.eta) { eta = value }
        if let value = try integer("rungs", in: JobLimits.rungs) { rungs = value }
        if let value = options["seed"].flatMap(UInt64.init) { seed = value }
        if let value = try number("max_drop", in: NumberRange(0, 1)) { maxDrop = value }
        if let value = try number("confidence", in: NumberRange(0.5, 0.999)) { confidence = value }
        if let value = try number("traffic_per_month", in: NumberRange(0, 1e15)) { trafficPerMonth = value }
        if let value = try integer("max_model_bytes", in: 1...ByteSize.maximum) { maxModelBytes = value }
        if let value = try integer("max_flops", in: JobLimits.flops) { maxFlops = value }
        if let value = try number("max_latency_ms", in: .positive(upTo: 86_400_000)) { maxLatencyMs = value }
        if let value = options["metric"] { metric = value }
        if let path = options["candidates"] { candidates = try YAMLValue.load(URL(fileURLWithPath: path)) }
        if let device = options["device"], !device.isEmpty { self.device = try DeviceProfile.named(device) }
    }
}

import Foundation

/// Where a job's rows come from.
public enum DataSource: Sendable, Equatable {
    /// A task folder (FORMATS.md §2).
    case task(URL)
    /// Three JSONL files, with an optional task.json for the teacher.
    case files(train: URL, validation: URL, test: URL)
}

/// A search job (FORMATS.md §3): data, teacher overrides, evals, candidates, constraints, objective, search, serving.
public struct Job {
    /// The job's name (used for the results folder).
    public var name: String
    /// The job file, when the job came from one.
    public var file: URL?
    /// Where the rows are.
    public var data: DataSource
    /// Teacher fields that override task.json.
    public var teacher: TeacherOverride
    /// The eval suite (inline or loaded from its path); nil means the default suite.
    public var evals: YAMLValue?
    /// The candidate catalog (inline or loaded); nil means the built-in default catalog.
    public var candidates: YAMLValue?
    /// Largest serialized model allowed, in bytes.
    public var maxModelBytes: Int?
    /// Largest p50 latency allowed, in ms.
    public var maxLatencyMs: Double?
    /// Primary metric name; nil means the default (accuracy with gold, else agreement).
    public var metric: String?
    /// Allowed drop against the teacher on the primary metric.
    public var maxDrop: Double
    /// The probability, adjusted for picking among many, that a recommended student's true drop is within `maxDrop`
    /// (`objective.confidence`, `--confidence`; default 0.9).
    public var confidence = 0.9
    /// Measured p50s within a factor of 1 + this count as equally fast (`objective.speed_tolerance`; default 1: within
    /// 2×); a run whose measurements spread more widens it.
    public var speedTolerance = 1.0
    /// Wall-clock budget of the search, in seconds.
    public var budgetSeconds: Double
    /// Seed for every random choice.
    public var seed: UInt64
    /// Search strategy name.
    public var strategy: String
    /// Whether the job file, a flag or a journal chose the strategy (otherwise a search with enough history uses
    /// `learned`).
    public var strategyChosen = false
    /// The learned strategy's confidence z (`--confidence-z`; not a job-file key): an untrained candidate is ruled
    /// out when its prediction + z standard deviations cannot change the recommendation.
    public var confidenceZ: Double?
    /// Halving's reduction factor η.
    public var eta: Int
    /// Most rungs halving uses.
    public var rungs: Int
    /// Largest FLOPs per example.
    public var maxFlops: Int?
    /// The deployment device (its memory caps the size; the latency limit applies to its estimated latency).
    public var device: DeviceProfile?
    /// The encoder folder for encoder-head candidates that name none (`retort search --encoder PATH`; not a job-file
    /// key).
    public var encoderPath: String?
    /// Expected requests per month (`serving.traffic_per_month`: a number or `2M/month`, `50k/day`; `--traffic`).
    public var trafficPerMonth: Double?
    /// Where `trafficPerMonth` came from when it was measured (`--traffic-route`: the gateway ledger's recent volume).
    public var trafficSource: String?
    /// Price of a vCPU-hour for serving cost.
    public var usdPerVCPUHour: Double
    /// Results folder for this job (runs land in `out/RUN-ID/`).
    public var out: URL?

    /// Fields of task.json's teacher that a job may override.
    public struct TeacherOverride: Sendable, Equatable {
        /// Display name.
        public var name: String?
        /// USD per 1000 calls.
        public var costPer1kRequestsUSD: Double?
        /// Median call latency in ms.
        public var latencyMs: Double?
        /// USD per million input tokens.
        public var inputPerMTokUSD: Double?
        /// USD per million output tokens.
        public var outputPerMTokUSD: Double?

        /// No overrides.
        public init() {}

        /// `base` with these overrides applied.
        public func applied(to base: TeacherInfo) -> TeacherInfo {
            var result = base
            if let name { result.name = name }
            if let costPer1kRequestsUSD { result.costPer1kRequestsUSD = costPer1kRequestsUSD }
            if let latencyMs { result.latencyMsP50 = latencyMs }
            if let inputPerMTokUSD { result.inputPerMTokUSD = inputPerMTokUSD }
            if let outputPerMTokUSD { result.outputPerMTokUSD = outputPerMTokUSD }
            return result
        }
    }

    /// A job over a task folder with every default.
    public init(task: URL, name: String? = nil) {
        self.name = name ?? task.standardizedFileURL.lastPathComponent
        self.file = nil
        self.data = .task(task)
        self.teacher = TeacherOverride()
        self.maxDrop = 0.01
        self.budgetSeconds = 600
        self.seed = 7
        self.strategy = "exhaustive"
        self.eta = 3
        self.rungs = 3
        self.usdPerVCPUHour = 0.05
    }

    /// Loads a job file (YAML or JSON); paths inside it are relative to it.
    public static func load(_ url: URL) throws(DataError) -> Job { try load(try YAMLValue.load(url), at: url) }

    /// Validates a job already parsed from the file at `url` (paths inside it are relative to `url`); the fuzzer's
    /// in-memory entry.
    public static func load(_ root: YAMLValue, at url: URL) throws(DataError) -> Job {
        let base = url.deletingLastPathComponent()
        func resolve(_ text: String) -> URL {
            text.hasPrefix("/") ? URL(fileURLWithPath: text) : base.appendingPathComponent(text)
        }
        let top = try root.mapping(
            allowed: [
                "name", "data", "teacher", "evals", "candidates", "constraints", "objective", "search", "serving",
                "out",
            ],
            required: ["data"])
        guard let dataValue = top["data"] else { throw root.error("missing key \"data\"") }
        var findings: [DataError] = []
        func collect<T>(_ body: () throws(DataError) -> T) -> T? {
            do { return try body() } catch {
                findings.append(error)
                return nil
            }
        }
        let dataSection = collect { () throws(DataError) in
            try dataValue.mapping(allowed: ["task", "train", "validation", "test"])
        }
        var data: DataSource?
        if let dataSection {
            if let task = dataSection["task"] {
                if dataSection.count > 1 {
                    findings.append(task.error("give either data.task or data.train/validation/test, not both"))
                }
                data = collect { () throws(DataError) in .task(resolve(try task.string())) }
            } else if let train = dataSection["train"], let validation = dataSection["validation"],
                let test = dataSection["test"]
            {
                data = collect { () throws(DataError) in
                    .files(
                        train: resolve(try train.string()), validation: resolve(try validation.string()),
                        test: resolve(try test.string()))
                }
            } else {
                findings.append(dataValue.error("needs \"task: FOLDER\" or all of train, validation and test files"))
            }
        }
        let defaultName = url.deletingPathExtension().lastPathComponent
        var job = Job(task: URL(fileURLWithPath: "."), name: defaultName)
        job.file = url
        if let name = top["name"] { job.name = collect { () throws(DataError) in try name.string() } ?? job.name }
        if let teacher = top["teacher"] {
            collect { () throws(DataError) in
                let section = try teacher.mapping(allowed: ["name", "cost_per_1k_requests_usd", "latency_ms", "price"])
                job.teacher.name = try section["name"]?.string()
                job.teacher.costPer1kRequestsUSD = try section["cost_per_1k_requests_usd"]?.double(
                    in: JobLimits.usd, unit: "USD")
                job.teacher.latencyMs = try section["latency_ms"]?.double(in: JobLimits.latencyMs, unit: "ms")
                if let price = try section["price"]?.mapping(allowed: ["input_per_mtok_usd", "output_per_mtok_usd"]) {
                    job.teacher.inputPerMTokUSD = try price["input_per_mtok_usd"]?.double(
                        in: JobLimits.pricePerMTok, unit: "USD per million tokens")
                    job.teacher.outputPerMTokUSD = try price["output_per_mtok_usd"]?.double(
                        in: JobLimits.pricePerMTok, unit: "USD per million tokens")
                }
            }
        }
        for (key, target) in [("evals", \Job.evals), ("candidates", \Job.candidates)] {
            guard let value = top[key] else { continue }
            job[keyPath: target] = collect { () throws(DataError) in
                if case .scalar = value.node { return try YAMLValue.load(resolve(try value.string())) }
                return value
            }
        }
        if let constraints = top["constraints"] {
            collect { () throws(DataError) in
                let section = try constraints.mapping(allowed: ["max_model_bytes", "max_latency_ms", "max_flops"])
                job.maxFlops = try section["max_flops"]?.int(in: JobLimits.flops)
                job.maxModelBytes = try section["max_model_bytes"]?.byteSize(in: 1...ByteSize.maximum)
                job.maxLatencyMs = try section["max_latency_ms"]?.double(in: .positive(upTo: 86_400_000), unit: "ms")
            }
        }
        if let objective = top["objective"] {
            collect { () throws(DataError) in
                let section = try objective.mapping(allowed: ["metric", "max_drop", "confidence", "speed_tolerance"])
                job.metric = try section["metric"]?.choice(Metric.self, named: "metric").rawValue
                job.maxDrop = try section["max_drop"]?.double(in: NumberRange(0, 1)) ?? job.maxDrop
                job.confidence =
                    try section["confidence"]?.double(in: NumberRange(0.5, 0.999)) ?? job.confidence
                job.speedTolerance =
                    try section["speed_tolerance"]?.double(in: NumberRange(0, 1000)) ?? job.speedTolerance
            }
        }
        if let search = top["search"] {
            collect { () throws(DataError) in
                let section = try search.mapping(allowed: ["budget_seconds", "seed", "strategy", "eta", "rungs"])
                job.rungs = try section["rungs"]?.int(in: JobLimits.rungs) ?? job.rungs
                job.eta = try section["eta"]?.int(in: JobLimits.eta) ?? job.eta
                job.budgetSeconds =
                    try section["budget_seconds"]?.seconds(in: .positive(upTo: DurationText.maximum))
                    ?? job.budgetSeconds
                if let seed = try section["seed"]?.int(in: 0...Int.max) { job.seed = UInt64(seed) }
                if let strategy = section["strategy"] {
                    job.strategy = try strategy.choice(SearchStrategy.self, named: "strategy").rawValue
                    job.strategyChosen = true
                }
            }
        }
        if let serving = top["serving"] {
            collect { () throws(DataError) in
                let section = try serving.mapping(allowed: ["usd_per_vcpu_hour", "traffic_per_month"])
                if let traffic = section["traffic_per_month"] {
                    guard let value = Job.parseTraffic(try traffic.string()) else {
                        throw traffic.error(
                            "traffic_per_month must be a request count such as 2000000, 2M/month or 50k/day")
                    }
                    job.trafficPerMonth = value
                }
                job.usdPerVCPUHour =
                    try section["usd_per_vcpu_hour"]?.double(in: JobLimits.usdPerHour, unit: "USD")
                    ?? job.usdPerVCPUHour
            }
        }
        if let out = top["out"] { job.out = collect { () throws(DataError) in resolve(try out.string()) } }
        if let combined = DataError.combined(findings) { throw combined }
        guard let data else { throw root.error("data is missing") }
        job.data = data
        return job
    }
}

/// The allowed range of every number in a job file: wide enough for any real teacher, device or search, narrow
/// enough that every downstream sum, product and conversion to an integer stays exact.
public enum JobLimits {
    /// Teacher cost per 1000 requests, USD.
    public static let usd = NumberRange.nonNegative(upTo: 1e9)
    /// A latency in ms: up to a day.
    public static let latencyMs = NumberRange.nonNegative(upTo: 86_400_000)
    /// A price per million tokens, USD.
    public static let pricePerMTok = NumberRange.nonNegative(upTo: 1e6)
    /// A price per hour (of a vCPU or a device), USD.
    public static let usdPerHour = NumberRange.nonNegative(upTo: 1e6)
    /// `max_flops`: FLOPs per example.
    public static let flops = 1...1_000_000_000_000_000
    /// `search.rungs`.
    public static let rungs = 1...20
    /// `search.eta` (halving's reduction factor).
    public static let eta = 2...100
}

extension Job {
    /// Parses traffic as `2M/month`, `500k/month`, `2000000`, `50k/day` (days are 30.4 to a month); nil when it is not
    /// one.
    public static func parseTraffic(_ text: String) -> Double? {
        var body = text.trimmingCharacters(in: .whitespaces).lowercased()
        var perMonth = 1.0
        for (suffix, factor) in [("/month", 1.0), ("/mo", 1.0), ("/day", 30.4), ("/week", 30.4 / 7)]
        where body.hasSuffix(suffix) {
            body.removeLast(suffix.count)
            perMonth = factor
            break
        }
        var scale = 1.0
        if let last = body.last, let factor = ["k": 1e3, "m": 1e6, "b": 1e9][String(last)] {
            scale = factor
            body.removeLast()
        }
        guard let number = Double(body.replacingOccurrences(of: "_", with: "")), number.isFinite, number >= 0,
            number * scale * perMonth <= 1e15
        else { return nil }
        return number * scale * perMonth
    }
}

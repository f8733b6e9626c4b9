import Foundation
import RetortData
import RetortEvals
import RetortNumerics
import RetortStudents

/// One search in progress: what its phases share (task, settings, teacher figures, feature sets, the candidate space)
/// and what they update (trial results, the candidates still racing, training sessions, budget bookkeeping).
///
/// ``SearchEngine/run(task:settings:storage:events:)`` makes one and drives it phase by phase; each phase is an
/// extension in a file named after it (TeacherEvaluation, Featurization, RungTraining, RungDecisions, Checkpoints,
/// LatencyMeasurement, FrontierAndRecommendation, TestEvaluation, CascadeRecommendation, SearchOutcomeAssembly), and
/// the schedule is a ``RungStrategy`` (ExhaustiveStrategy, HalvingStrategy, LearnedStrategy).
struct SearchRun {
    /// The task searched.
    let task: TaskData
    /// The settings; the learned strategy adds predictions for the candidates it invents.
    var settings: SearchSettings
    /// Journal and checkpoints, or nil for a search that keeps nothing.
    let storage: RunStorage?
    /// Announces an event (phases also go to the journal); throws when the journal cannot be written.
    let events: @Sendable (SearchEvent) throws -> Void
    /// The primary metric.
    let metric: Metric
    /// Metrics recorded per candidate (the suite's, plus the primary one).
    let reported: [Metric]
    /// Start of the search and the budget's end, `DispatchTime` uptime nanoseconds.
    let start: UInt64
    let deadline: UInt64
    /// Every candidate: the catalog's, then the ones the learned strategy invents.
    var candidates: [Candidate]
    /// The catalog's candidate count (the denominator of trial announcements).
    let total: Int
    /// The teacher on validation and test, with the evaluators students are measured by.
    let teacher: TeacherEvaluation
    /// Featurized splits by feature key, and the encoder seconds counted once.
    let featurization: Featurization
    /// Training groups of the feasible catalog candidates, in catalog order.
    let groups: [TrainingGroup]
    /// Feasible catalog candidates (members of `groups`).
    let feasible: Int
    /// Journaled rung records of an interrupted run, by `candidate#rung`.
    let resumeRecords: [String: [JournalRecord]]
    /// Journaled latency records of an interrupted run, by candidate.
    let latencyRecords: [String: JournalRecord]

    /// Decided candidates' results (and those blocked before training), by id.
    var trials: [String: TrialResult]
    /// Each trainable candidate's training group, by id.
    var member: [String: (group: TrainingGroup, candidate: Candidate)]
    /// Candidates still racing.
    var alive: Set<String>
    /// Training sessions kept in memory between rungs (and for export), by group key.
    var sessions: [String: TrainingSession] = [:]
    /// Each candidate's latest rung record.
    var latest: [String: JournalRecord] = [:]
    /// Epochs trained, summed over training runs (from the schedule, so a resumed run counts what an uninterrupted one
    /// would).
    var candidateEpochs = 0.0
    /// Training seconds per group key.
    var trainSeconds: [String: Double] = [:]
    /// Epochs each group key has reached.
    var epochsSoFar: [String: Int] = [:]
    /// Trials announced so far.
    var announced: Int
    /// Group keys that trained.
    var trainingRuns = Set<String>()
    /// Whether the budget ran out.
    var budgetHit = false
    /// The longest training step in flight when the budget ran out, seconds.
    var epochInFlight: Double?
    /// The longest validation evaluation of a run the budget cut, seconds.
    var cutEvaluation: Double?
    /// When the last training run ended, `DispatchTime` uptime nanoseconds.
    var trainingEnded: UInt64?
    /// The best validation value seen so far (any fidelity), for progress lines.
    var best: (candidate: String, value: Double)?

    /// Sets a search up: primary metric, catalog, journal header, teacher evaluation, featurization and the candidate
    /// space (infeasible candidates are decided, and announced, before anything trains).
    init(
        task: TaskData, settings: SearchSettings, storage: RunStorage?,
        events: @escaping @Sendable (SearchEvent) throws -> Void
    ) throws {
        self.task = task
        self.settings = settings
        self.storage = storage
        self.events = events
        start = DispatchTime.now().uptimeNanoseconds
        deadline = start &+ UInt64(max(0, min(settings.budgetSeconds, 1e9)) * 1e9)
        metric = try SearchEngine.primaryMetric(task: task, settings: settings)
        reported = settings.suite.metrics.contains(metric) ? settings.suite.metrics : settings.suite.metrics + [metric]
        candidates = settings.catalog.candidates(for: task)
        guard !candidates.isEmpty else {
            throw SearchError(
                "the candidate catalog lists no \(task.kind.rawValue) candidates; add a \"\(task.kind.rawValue):\" section"
            )
        }
        total = candidates.count
        if let storage {
            try SearchEngine.writeOrCheckHeader(
                storage: storage, task: task, settings: settings, candidates: candidates)
        }
        teacher = try TeacherEvaluation(task: task, settings: settings, metric: metric, events: events)
        featurization = try Featurization(task: task, candidates: candidates, events: events)

        // Candidate space: groups sharing a training run; infeasible candidates are decided before training.
        let featurization = featurization
        let space = CandidateSpace(
            candidates: candidates, task: task, constraints: settings.constraints, seed: settings.seed,
            features: { featurization.features($0, task: task) })
        trials = space.blocked
        groups = space.groups
        member = Dictionary(
            uniqueKeysWithValues: space.groups.flatMap { group in group.members.map { ($0.id, (group, $0)) } })
        for trial in space.blocked.values.sorted(by: { $0.id < $1.id }) {
            try events(.trial(trial, index: 0, total: candidates.count))
        }
        announced = space.blocked.count
        feasible = space.groups.reduce(0) { $0 + $1.members.count }
        alive = Set(space.groups.flatMap { $0.members.map(\.id) })

        resumeRecords = Dictionary(
            grouping: (storage?.resume ?? []).filter { $0.type == "rung" },
            by: { "\($0.candidate ?? "")#\($0.rung ?? -1)" })
        var latencyRecords: [String: JournalRecord] = [:]
        for record in storage?.resume ?? [] where record.type == "latency" {
            if let candidate = record.candidate { latencyRecords[candidate] = record }
        }
        self.latencyRecords = latencyRecords
    }

    /// Seconds since the search started.
    func elapsed() -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }

    /// The featurized splits of `key`.
    func features(_ key: FeatureKey) -> FeatureSet { featurization.features(key, task: task) }

    /// Announces a decided trial with the next index.
    mutating func announce(_ trial: TrialResult) throws {
        announced += 1
        try events(.trial(trial, index: announced, total: total))
    }
}

import Foundation
import RetortReports
import RetortSearch

/// What a run's journal says about its pipeline: the stages with their times, each rung's trials and their states.
public struct Pipeline: Sendable {
    /// A trial's state in one rung.
    public enum TrialState: String, Sendable {
        case queued, running, done, pruned, failed
    }

    /// One trial tile.
    public struct Trial: Sendable {
        /// Candidate id.
        public var candidate: String
        /// Its state in this rung.
        public var state: TrialState
        /// Training seconds in this rung (done trials).
        public var seconds: Double?
        /// The primary metric on validation after this rung.
        public var metric: Double?
        /// Training finished here (early stop or all epochs).
        public var complete = false
    }

    /// One rung (or one wave of the learned strategy).
    public struct Rung: Sendable {
        /// Rung index.
        public var index: Int
        /// Fidelity (share of full epochs).
        public var fidelity: Double
        /// When it was queued.
        public var queued: Double
        /// Its trials in queue order.
        public var trials: [Trial]
    }

    /// One pipeline stage.
    public struct Stage: Sendable {
        /// Its name.
        public var name: String
        /// When it began (nil: not yet).
        public var started: Double?
        /// When it ended (nil: running or not begun).
        public var ended: Double?
        /// What the journal said at its start.
        public var detail: String?
    }

    /// Stages in pipeline order: load, featurize, candidate space, train (the rungs), frontier → recommendation,
    /// test evaluation, export.
    public var stages: [Stage]
    /// The rungs, in the order they were queued.
    public var rungs: [Rung]
    /// Whether the run finished.
    public var finished: Bool
    /// The primary metric's name (from the report when finished, else `accuracy`).
    public var metric: String
    /// Trials done and trials queued so far.
    public var done: Int, queued: Int

    /// The pipeline from journal `records`; `started` is the run's start (its id's time), `ended` when it finished.
    public init(
        records: [JournalRecord], started: Double?, ended: Double?, report: RunReport?
    ) {
        metric = report?.primaryMetric ?? "accuracy"
        finished = report != nil
        var rungs: [Rung] = []
        var position: [String: (rung: Int, trial: Int)] = [:]  // "candidate#rung" → where its tile is
        var phases: [(name: String, time: Double)] = []
        for record in records {
            switch record.type {
            case "phase":
                if let name = record.phase, let time = record.time { phases.append((name, time)) }
            case "queue":
                let index = rungs.count
                let trials = (record.candidates ?? []).map { Trial(candidate: $0, state: .queued) }
                for (offset, trial) in trials.enumerated() {
                    position["\(trial.candidate)#\(record.rung ?? 0)"] = (index, offset)
                }
                rungs.append(
                    Rung(
                        index: record.rung ?? 0, fidelity: record.fidelity ?? 1, queued: record.time ?? 0,
                        trials: trials))
            case "start":
                for candidate in record.candidates ?? [] {
                    if let (rung, trial) = position["\(candidate)#\(record.rung ?? 0)"] {
                        rungs[rung].trials[trial].state = .running
                    }
                }
            case "rung":
                guard let candidate = record.candidate, let (rung, trial) = position["\(candidate)#\(record.rung ?? 0)"]
                else { continue }
                rungs[rung].trials[trial].state = .done
                rungs[rung].trials[trial].seconds = record.trainSeconds
                rungs[rung].trials[trial].metric = record.metrics?[metric]?.value
                rungs[rung].trials[trial].complete = record.finished ?? false
            default: continue
            }
        }
        // A trial done in one rung that is not queued in a later one was pruned (once a later rung exists, or the run
        // is over); the report names failures.
        let statuses = Dictionary(
            (report?.candidates ?? []).map { ($0.id, $0.status.rawValue) }, uniquingKeysWith: { first, _ in first })
        for index in rungs.indices {
            let later = rungs[(index + 1)...]
            let laterQueued = Set(later.flatMap { $0.trials.map(\.candidate) })
            for trial in rungs[index].trials.indices {
                let candidate = rungs[index].trials[trial].candidate
                if statuses[candidate] == "failed" && rungs[index].trials[trial].state != .done {
                    rungs[index].trials[trial].state = .failed
                }
                guard rungs[index].trials[trial].state == .done, !rungs[index].trials[trial].complete,
                    !laterQueued.contains(candidate), !later.isEmpty || finished
                else { continue }
                if !finished || statuses[candidate] == "pruned" { rungs[index].trials[trial].state = .pruned }
            }
        }
        self.rungs = rungs
        done = rungs.reduce(0) { $0 + $1.trials.filter { [.done, .pruned, .failed].contains($0.state) }.count }
        queued = rungs.reduce(0) { $0 + $1.trials.count }

        func phase(_ matches: (String) -> Bool) -> (name: String, time: Double)? { phases.first { matches($0.name) } }
        let featurize = phase { $0.hasPrefix("featurize") }
        let space = phase { $0.contains("feasible candidates") }
        let frontier = phase { $0.hasPrefix("frontier and recommendation") }
        let test = phase { $0.hasPrefix("test-set evaluation") }
        let export = phase { $0.hasPrefix("write the report") }
        let starts: [(String, Double?, String?)] = [
            ("load", started ?? phases.first?.time, nil),
            ("featurize", featurize?.time, featurize?.name),
            ("candidate space", space?.time, space?.name),
            ("train: rungs", rungs.first?.queued ?? (frontier != nil ? space?.time : nil), nil),
            ("frontier → recommendation", frontier?.time, nil),
            ("test evaluation", test?.time, nil),
            ("export", export?.time, nil),
        ]
        var stages: [Stage] = []
        for (index, (name, start, detail)) in starts.enumerated() {
            let next = starts[(index + 1)...].compactMap(\.1).first
            stages.append(Stage(name: name, started: start, ended: start == nil ? nil : next ?? ended, detail: detail))
        }
        if !finished, let last = stages.lastIndex(where: { $0.started != nil }) { stages[last].ended = nil }
        self.stages = stages
    }

    /// Seconds since the first stage began, up to `now` (or the end).
    public func elapsed(now: Double) -> Double? {
        guard let first = stages.first?.started else { return nil }
        return (stages.last(where: { $0.ended != nil })?.ended.map { finished ? $0 : now } ?? now) - first
    }

    /// Time left for the queued trials at the pace of the finished ones (nil before one finished, or when finished).
    public func remaining(now: Double) -> Double? {
        guard !finished, done > 0, queued > done, let start = stages[3].started else { return nil }
        return (now - start) / Double(done) * Double(queued - done)
    }
}

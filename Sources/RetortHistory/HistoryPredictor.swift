import Foundation
import GRDB
import RetortData
import RetortSearch
import RetortStudents

/// Predicts a candidate's validation gap to the teacher (and its latency) from past trials: k nearest neighbours over
/// standardized task meta-features plus candidate descriptors (family, precision, log size, log FLOPs), weighted by
/// inverse distance. The uncertainty grows with how far those neighbours are (``DistanceWidening``):
///
///     sd² = spread² + floor² + (c · D / d₀)²
///
/// where spread is the neighbours' weighted spread of gaps, D their weighted mean distance, d₀ the history's typical
/// distance and c is fitted on the history itself, leave one task out, so that 95% of its own trials fall within ±2 sd
/// (a tight spread of far neighbours is not trusted); beyond the widening's reach (4× the typical distance, where the
/// history cannot check the linear term) a prediction is uninformed, sd ≥ 1/√12. Structured tasks are
/// predicted from structured tasks only, with their own meta-features and descriptors (family, precision and the
/// configuration: buckets, hidden width, epochs, LoRA rank, depth, train rows), since their sizes are known only once
/// trained.
public struct HistoryPredictor: Sendable {
    /// One past trial: where it ran and what it measured.
    struct Example: Sendable {
        let features: [Double]
        let gap: Double
        let latency: Double?
        /// The measured standard error of `gap` (report.json `difference_se`), if recorded.
        let differenceSE: Double?
        /// Its task's train rows (a standard error scales with 1/√rows of validation, which grows with train).
        let rows: Int
        let sizeBytes: Int
        let flops: Int
        let taskId: String
        /// The training run within its task (family and FLOPs: precision variants share it).
        let run: String
        /// The share of its configured epochs (or rounds) it trained before early stopping (``epochsFraction(of:)``).
        var epochsFraction: Double? = nil
    }

    /// The input kind of the past tasks (`text`, `numeric` or `structured`): only candidates of tasks of this kind are
    /// predicted.
    public let kind: String

    let examples: [Example]
    /// Each past task's meta vector, name, recommendation and best gap (for the evidence of `similarTasks`).
    let tasks: [String: (vector: [Double], summary: SimilarTask)]
    let mean: [Double]
    let scale: [Double]
    /// The examples' features standardized once, for every prediction's distances.
    let standardizedExamples: [[Double]]
    /// Distinct past tasks the examples come from.
    public let taskCount: Int
    /// Neighbours per prediction (the widening is fitted with the default, 8).
    public var k = 8
    /// The smallest standard deviation a prediction reports (the widening is fitted with the default, 0.01).
    public var floorSD = 0.01
    /// How the uncertainty grows with distance, fitted on the history's own trials (leave one task out).
    public let widening: DistanceWidening
    /// Whether a label task's vector ends with its ``MetaFeatures/goldProbeHeadroom`` (0 where unknown): `suggest`'s
    /// predictor reads it, the learned search's does not (``taskVector(_:)``).
    public let readsGoldProbeHeadroom: Bool

    /// A predictor over the complete, full-fidelity trials of past runs on `kind` tasks scored by `metric`,
    /// leaving out the runs of the task `excludingTask` and of the tasks `excludingTasks` (leave-one-task-out, or
    /// leave-one-dataset-out with a dataset's variants, evaluation). With `readsGoldProbeHeadroom`, a label task's
    /// vector ends with its gold-probe headroom (``taskVector(_:)``).
    public init(
        store: HistoryStore, kind: String, metric: String, excludingTask: String? = nil,
        excludingTasks: Set<String> = [], readsGoldProbeHeadroom: Bool = false
    ) throws(HistoryError) {
        self.readsGoldProbeHeadroom = readsGoldProbeHeadroom && kind != TaskKind.structured.rawValue
        let excluded = excludingTasks.union(excludingTask.map { [$0] } ?? [])
        let rows: [(String, String, String)]
        do {
            rows = try store.queue.read { db in
                try Row.fetchAll(
                    db,
                    sql: """
                        SELECT task.id AS task_id, task.meta AS meta, trial.record AS record
                        FROM trial JOIN run ON run.id = trial.run_id JOIN task ON task.id = run.task_id
                        WHERE trial.rung = -1 AND trial.status = 'complete' AND trial.fidelity >= 1
                            AND task.kind = ? AND run.primary_metric = ?
                        ORDER BY run.id, trial.candidate
                        """, arguments: [kind, metric]
                ).map { ($0["task_id"], $0["meta"], $0["record"]) }
            }
        } catch {
            throw HistoryError("cannot read past trials: \(error)", file: store.path)
        }
        var examples: [Example] = []
        var metas: [String: MetaFeatures] = [:]
        let decoder = JSONDecoder()
        for (taskId, metaText, recordText) in rows where !excluded.contains(taskId) {
            guard let meta = metas[taskId] ?? (try? decoder.decode(MetaFeatures.self, from: Data(metaText.utf8))),
                let trial = try? decoder.decode(TrialResult.self, from: Data(recordText.utf8)),
                let gap = trial.differenceToTeacher?.value
            else { continue }
            metas[taskId] = meta
            let features =
                kind == TaskKind.structured.rawValue
                ? Self.structuredFeatures(
                    meta: meta, family: trial.family, precision: trial.precision, config: trial.config)
                : Self.features(
                    vector: Self.taskVector(meta, readsGoldProbeHeadroom: self.readsGoldProbeHeadroom),
                    family: trial.family, precision: trial.precision, sizeBytes: trial.sizeBytes,
                    flops: trial.flopsPerExample)
            examples.append(
                Example(
                    features: features, gap: gap, latency: trial.latencyMsP50, differenceSE: trial.differenceSE,
                    rows: meta.rows, sizeBytes: trial.sizeBytes,
                    flops: trial.flopsPerExample, taskId: taskId,
                    run: "\(taskId)|\(trial.family.rawValue)|\(trial.flopsPerExample)",
                    epochsFraction: Self.epochsFraction(of: trial)))
        }
        self.kind = kind
        self.examples = examples
        taskCount = Set(examples.map(\.taskId)).count
        var tasks: [String: (vector: [Double], summary: SimilarTask)] = [:]
        if let runs = try? store.list() {
            for run in runs where run.kind == kind && !excluded.contains(run.taskId) {
                guard let meta = metas[run.taskId] else { continue }
                let best = examples.filter { $0.taskId == run.taskId }.map(\.gap).max()
                tasks[run.taskId] = (
                    Self.taskVector(meta, readsGoldProbeHeadroom: self.readsGoldProbeHeadroom),
                    SimilarTask(task: run.task, recommendation: run.recommendation, bestGap: best, distance: 0)
                )
            }
        }
        self.tasks = tasks
        let width = examples.first?.features.count ?? 0
        var (mean, scale) = Self.columnStatistics(examples.map(\.features))
        if !examples.isEmpty {
            // The family and precision one-hots keep their own scale (×3 for family, ×1 for precision).
            let tail = kind == TaskKind.structured.rawValue ? Self.structuredDescriptorCount : 2
            let oneHots = (width - tail - Precision.allCases.count - Family.allCases.count)..<(width - tail)
            for j in oneHots {
                mean[j] = 0
                scale[j] = 1
            }
        }
        self.mean = mean
        self.scale = scale
        standardizedExamples = examples.map { Self.standardize($0.features, mean: mean, scale: scale) }
        widening = DistanceWidening.fitted(
            standardized: standardizedExamples, gaps: examples.map(\.gap), taskIds: examples.map(\.taskId),
            runs: examples.map(\.run), k: 8, floorSD: 0.01)
    }

    /// Per-column mean and scale of equal-length `rows`: the standard deviation, at least 1% of the column's
    /// magnitude m = max(|mean|, 1). A column that never varies says nothing about how far apart tasks are, so it
    /// is scaled by m itself: a task whose value differs by its own magnitude is one unit away, not 10⁶ (the old
    /// floor of 1e-6 put every task of another dataset about 3×10⁵ typical distances away).
    static func columnStatistics(_ rows: [[Double]]) -> (mean: [Double], scale: [Double]) {
        let width = rows.first?.count ?? 0
        var mean = [Double](repeating: 0, count: width)
        var scale = [Double](repeating: 1, count: width)
        for j in 0..<width {
            let column = rows.map { $0[j] }
            mean[j] = column.reduce(0, +) / Double(column.count)
            let variance = column.reduce(0) { $0 + ($1 - mean[j]) * ($1 - mean[j]) } / Double(column.count)
            let magnitude = max(abs(mean[j]), 1)
            let deviation = variance.squareRoot()
            scale[j] = deviation <= 1e-9 * magnitude ? magnitude : max(deviation, 0.01 * magnitude)
        }
        return (mean, scale)
    }

    /// `(v − mean) / scale`, column by column.
    static func standardize(_ v: [Double], mean: [Double], scale: [Double]) -> [Double] {
        zip(zip(v, mean), scale).map { pair, s in (pair.0 - pair.1) / s }
    }

    /// Euclidean distance.
    static func distance(_ a: [Double], _ b: [Double]) -> Double {
        zip(a, b).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot()
    }

    /// The `limit` past tasks nearest to `meta` (Euclidean over the meta-features standardized across past tasks),
    /// with their recommendations and best gaps.
    public func similarTasks(to meta: MetaFeatures, limit: Int = 3) -> [SimilarTask] {
        guard !tasks.isEmpty, meta.kind == kind else { return [] }
        let (mean, scale) = Self.columnStatistics(tasks.values.map(\.vector))
        let query = Self.standardize(taskVector(meta), mean: mean, scale: scale)
        return tasks.values.map { entry -> SimilarTask in
            var summary = entry.summary
            summary.distance = Self.distance(Self.standardize(entry.vector, mean: mean, scale: scale), query)
            return summary
        }.sorted { ($0.distance, $0.task) < ($1.distance, $1.task) }.prefix(limit).map { $0 }
    }

    /// The task part of a feature vector: ``MetaFeatures/vector``, then, if `readsGoldProbeHeadroom`, the gold-probe
    /// headroom (0 where unknown: no gold, or a record from before it existed that `history refresh` did not fill).
    static func taskVector(_ meta: MetaFeatures, readsGoldProbeHeadroom: Bool) -> [Double] {
        readsGoldProbeHeadroom ? meta.vector + [meta.goldProbeHeadroom ?? 0] : meta.vector
    }

    /// ``taskVector(_:readsGoldProbeHeadroom:)`` with this predictor's choice.
    func taskVector(_ meta: MetaFeatures) -> [Double] {
        Self.taskVector(meta, readsGoldProbeHeadroom: readsGoldProbeHeadroom)
    }

    /// The feature vector: the task's `vector` (``taskVector(_:)``), then the candidate's descriptors. The family
    /// one-hot is worth 3 standardized units, so a different family is far even on a similar task.
    static func features(vector: [Double], family: Family, precision: Precision, sizeBytes: Int, flops: Int)
        -> [Double]
    {
        vector + Family.allCases.map { $0 == family ? 3 : 0 } + Precision.allCases.map { $0 == precision ? 1 : 0 }
            + [log10(Double(max(sizeBytes, 1))), log10(Double(max(flops, 1)))]
    }

    /// The structured descriptors after the one-hots: buckets (log2), log2(1 + hidden width), log2 epochs, log2 LoRA
    /// rank, depth, log2 train rows.
    static let structuredDescriptorCount = 6

    /// A structured candidate's feature vector: the task's structured meta-features, the family one-hot (worth 3
    /// standardized units), the precision one-hot, then its configuration as report.json's `config` gives it (a key
    /// the family does not have counts 0).
    static func structuredFeatures(
        meta: MetaFeatures, family: Family, precision: Precision, config: [String: ReportValue]
    ) -> [Double] {
        func number(_ key: String) -> Double {
            if case .ints(let values) = config[key] { return Double(values.first ?? 0) }
            return config[key]?.number ?? 0
        }
        func log2p(_ value: Double) -> Double { log2(1 + max(value, 0)) }
        return meta.vector + Family.allCases.map { $0 == family ? 3 : 0 }
            + Precision.allCases.map { $0 == precision ? 1 : 0 }
            + [
                number("buckets_log2"), log2p(number("hidden")), log2p(number("epochs")), log2p(number("rank")),
                number("depth"), log2p(number("train_rows")),
            ]
    }

    /// The `k` nearest past trials to the feature vector `x` with their distances and inverse-distance weights
    /// (1 / (distance + 0.25)).
    func neighbours(of x: [Double]) -> [(weight: Double, distance: Double, example: Example)] {
        let query = Self.standardize(x, mean: mean, scale: scale)
        return zip(standardizedExamples, examples).map { features, example -> (Double, Example) in
            (Self.distance(features, query), example)
        }.sorted { $0.0 < $1.0 }.prefix(k).map { (1 / ($0.0 + 0.25), $0.0, $0.1) }
    }

    /// The weighted mean gap; its standard deviation from the neighbours' spread, the floor and their distance
    /// (``DistanceWidening``); the weighted geometric mean latency of `nearest`; and the standard error a task of
    /// `rows` train rows would measure the gap with (the neighbours' standard errors scaled by √(their rows / rows),
    /// weighted geometric mean).
    func prediction(from nearest: [(weight: Double, distance: Double, example: Example)], rows: Int)
        -> CandidatePrediction
    {
        let total = nearest.reduce(0) { $0 + $1.weight }
        let gap = nearest.reduce(0) { $0 + $1.weight * $1.example.gap } / total
        let variance = nearest.reduce(0) { $0 + $1.weight * pow($1.example.gap - gap, 2) } / total
        let distance = nearest.reduce(0) { $0 + $1.weight * $1.distance } / total
        let latency = Self.weightedGeometricMean(
            nearest.compactMap { n in n.example.latency.map { (n.weight, $0) } })
        let differenceSE = Self.weightedGeometricMean(
            nearest.compactMap { n in
                n.example.differenceSE.flatMap { se in
                    se > 0 ? (n.weight, se * (Double(max(n.example.rows, 1)) / Double(max(rows, 1))).squareRoot()) : nil
                }
            })
        let fractions = nearest.compactMap { n in n.example.epochsFraction.map { (weight: n.weight, value: $0) } }
        let fractionWeight = fractions.reduce(0) { $0 + $1.weight }
        return CandidatePrediction(
            gap: gap,
            gapSD: widening.standardDeviation(spread: variance.squareRoot(), floor: floorSD, distance: distance),
            latencyMsP50: latency, neighbours: nearest.count, relativeDistance: widening.relative(distance),
            differenceSE: differenceSE,
            epochsFraction: fractions.isEmpty
                ? nil : fractions.reduce(0) { $0 + $1.weight * $1.value } / fractionWeight)
    }

    /// The share of its configured epochs (config `epochs`, or `rounds` for boosting) a past trial trained before
    /// early stopping ended its run, in (0, 1]; nil when it recorded no `epochs_run` or has no configured epochs
    /// (closed-form students).
    static func epochsFraction(of trial: TrialResult) -> Double? {
        guard let run = trial.epochsRun, run > 0 else { return nil }
        guard let configured = (trial.config["epochs"] ?? trial.config["rounds"])?.number.map(Int.init),
            configured > 0
        else { return nil }
        return min(1, Double(run) / Double(configured))
    }

    /// The prediction for a candidate of `family` at `precision` with this size and cost on a task with `meta`, or
    /// nil when the history holds no trial to compare with (or holds structured tasks: see
    /// ``predict(meta:candidate:)``).
    public func predict(meta: MetaFeatures, family: Family, precision: Precision, sizeBytes: Int, flops: Int)
        -> CandidatePrediction?
    {
        guard !examples.isEmpty, kind != TaskKind.structured.rawValue, meta.kind == kind else { return nil }
        return prediction(
            from: neighbours(
                of: Self.features(
                    vector: taskVector(meta), family: family, precision: precision, sizeBytes: sizeBytes, flops: flops)
            ), rows: meta.rows)
    }

    /// The prediction for the structured `candidate` on a structured task with `meta`, from similar structured tasks'
    /// trials; nil when this predictor is not over structured tasks or holds no trial.
    public func predict(meta: MetaFeatures, candidate: StructuredCandidate) -> CandidatePrediction? {
        guard let nearest = structuredNeighbours(meta: meta, candidate: candidate) else { return nil }
        return prediction(from: nearest, rows: meta.rows)
    }

    /// The exported size and FLOPs per example the structured `candidate` is predicted to have: the weighted geometric
    /// means of its nearest past trials' (a structured student's size is known only once trained).
    public func predictedCost(meta: MetaFeatures, candidate: StructuredCandidate) -> (sizeBytes: Int, flops: Int)? {
        guard let nearest = structuredNeighbours(meta: meta, candidate: candidate) else { return nil }
        func geometric(_ value: (Example) -> Int) -> Int {
            Int(
                (Self.weightedGeometricMean(nearest.map { ($0.weight, Double(max(value($0.example), 1))) }) ?? 1)
                    .rounded())
        }
        return (geometric(\.sizeBytes), geometric(\.flops))
    }

    /// `exp(Σ wᵢ log xᵢ / Σ wᵢ)` over positive values `xᵢ` with weights `wᵢ`; nil when there are none.
    static func weightedGeometricMean(_ values: [(weight: Double, value: Double)]) -> Double? {
        guard !values.isEmpty else { return nil }
        return exp(values.reduce(0) { $0 + $1.weight * log($1.value) } / values.reduce(0) { $0 + $1.weight })
    }

    /// Every structured candidate's prediction by id (the candidates the history cannot place are left out): what a
    /// structured search puts in `SearchSettings.predictions`.
    public func predictions(for candidates: [StructuredCandidate], meta: MetaFeatures) -> [String: CandidatePrediction]
    {
        var result: [String: CandidatePrediction] = [:]
        for candidate in candidates {
            result[candidate.id] = predict(meta: meta, candidate: candidate)
        }
        return result
    }

    func structuredNeighbours(meta: MetaFeatures, candidate: StructuredCandidate) -> [(
        weight: Double, distance: Double, example: Example
    )]? {
        guard !examples.isEmpty, kind == TaskKind.structured.rawValue, meta.kind == kind else { return nil }
        return neighbours(
            of: Self.structuredFeatures(
                meta: meta, family: candidate.family, precision: candidate.precision, config: candidate.config))
    }
}

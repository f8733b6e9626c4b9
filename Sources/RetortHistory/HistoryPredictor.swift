import Foundation
import GRDB
import RetortData
import RetortSearch
import RetortStudents

/// Predicts a candidate's validation gap to the teacher (and its latency) from past trials: k nearest neighbours over
/// standardized task meta-features plus candidate descriptors (family, precision, log size, log FLOPs), weighted by
/// inverse distance; the spread of the neighbours' gaps (with a floor) is the uncertainty.
public struct HistoryPredictor: Sendable {
    /// One past trial: where it ran and what it measured.
    struct Example: Sendable {
        let features: [Double]
        let gap: Double
        let latency: Double?
        let taskId: String
    }

    let examples: [Example]
    /// Each past task's meta vector, name, recommendation and best gap (for the evidence of `similarTasks`).
    let tasks: [String: (vector: [Double], summary: SimilarTask)]
    let mean: [Double]
    let scale: [Double]
    /// The examples' features standardized once, for every prediction's distances.
    let standardizedExamples: [[Double]]
    /// Distinct past tasks the examples come from.
    public let taskCount: Int
    /// Neighbours per prediction.
    public var k = 8
    /// The smallest standard deviation a prediction reports.
    public var floorSD = 0.01

    /// A predictor over the complete, full-fidelity trials of past runs on `kind` tasks scored by `metric`,
    /// leaving out the runs of the task `excludingTask` (leave-one-task-out evaluation).
    public init(store: HistoryStore, kind: String, metric: String, excludingTask: String? = nil) throws(HistoryError) {
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
        for (taskId, metaText, recordText) in rows where taskId != excludingTask {
            guard let meta = metas[taskId] ?? (try? decoder.decode(MetaFeatures.self, from: Data(metaText.utf8))),
                let trial = try? decoder.decode(TrialResult.self, from: Data(recordText.utf8)),
                let gap = trial.differenceToTeacher?.value
            else { continue }
            metas[taskId] = meta
            examples.append(
                Example(
                    features: Self.features(
                        meta: meta, family: trial.family, precision: trial.precision, sizeBytes: trial.sizeBytes,
                        flops: trial.flopsPerExample), gap: gap, latency: trial.latencyMsP50, taskId: taskId))
        }
        self.examples = examples
        taskCount = Set(examples.map(\.taskId)).count
        var tasks: [String: (vector: [Double], summary: SimilarTask)] = [:]
        if let runs = try? store.list() {
            for run in runs where run.kind == kind && run.taskId != excludingTask {
                guard let meta = metas[run.taskId] else { continue }
                let best = examples.filter { $0.taskId == run.taskId }.map(\.gap).max()
                tasks[run.taskId] = (
                    meta.vector,
                    SimilarTask(task: run.task, recommendation: run.recommendation, bestGap: best, distance: 0)
                )
            }
        }
        self.tasks = tasks
        let width = examples.first?.features.count ?? 0
        var (mean, scale) = Self.columnStatistics(examples.map(\.features))
        if !examples.isEmpty {
            // The family and precision one-hots keep their own scale (×3 for family, ×1 for precision).
            let oneHots = (width - 2 - Precision.allCases.count - Family.allCases.count)..<(width - 2)
            for j in oneHots {
                mean[j] = 0
                scale[j] = 1
            }
        }
        self.mean = mean
        self.scale = scale
        standardizedExamples = examples.map { Self.standardize($0.features, mean: mean, scale: scale) }
    }

    /// Per-column mean and standard deviation (at least 1e-6) of equal-length `rows`.
    static func columnStatistics(_ rows: [[Double]]) -> (mean: [Double], scale: [Double]) {
        let width = rows.first?.count ?? 0
        var mean = [Double](repeating: 0, count: width)
        var scale = [Double](repeating: 1, count: width)
        for j in 0..<width {
            let column = rows.map { $0[j] }
            mean[j] = column.reduce(0, +) / Double(column.count)
            let variance = column.reduce(0) { $0 + ($1 - mean[j]) * ($1 - mean[j]) } / Double(column.count)
            scale[j] = max(variance.squareRoot(), 1e-6)
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
        guard !tasks.isEmpty else { return [] }
        let (mean, scale) = Self.columnStatistics(tasks.values.map(\.vector))
        let query = Self.standardize(meta.vector, mean: mean, scale: scale)
        return tasks.values.map { entry -> SimilarTask in
            var summary = entry.summary
            summary.distance = Self.distance(Self.standardize(entry.vector, mean: mean, scale: scale), query)
            return summary
        }.sorted { ($0.distance, $0.task) < ($1.distance, $1.task) }.prefix(limit).map { $0 }
    }

    /// The feature vector: task meta-features, then the candidate's descriptors. The family one-hot is worth 3
    /// standardized units, so a different family is far even on a similar task.
    static func features(meta: MetaFeatures, family: Family, precision: Precision, sizeBytes: Int, flops: Int)
        -> [Double]
    {
        meta.vector + Family.allCases.map { $0 == family ? 3 : 0 } + Precision.allCases.map { $0 == precision ? 1 : 0 }
            + [log10(Double(max(sizeBytes, 1))), log10(Double(max(flops, 1)))]
    }

    /// The prediction for a candidate of `family` at `precision` with this size and cost on a task with `meta`, or
    /// nil when the history holds no trial to compare with.
    public func predict(meta: MetaFeatures, family: Family, precision: Precision, sizeBytes: Int, flops: Int)
        -> CandidatePrediction?
    {
        guard !examples.isEmpty else { return nil }
        let x = Self.features(meta: meta, family: family, precision: precision, sizeBytes: sizeBytes, flops: flops)
        let query = Self.standardize(x, mean: mean, scale: scale)
        let nearest = zip(standardizedExamples, examples).map { features, example -> (Double, Example) in
            (Self.distance(features, query), example)
        }.sorted { $0.0 < $1.0 }.prefix(k)
        let weights = nearest.map { 1 / ($0.0 + 0.25) }
        let total = weights.reduce(0, +)
        let gap = zip(weights, nearest).reduce(0) { $0 + $1.0 * $1.1.1.gap } / total
        let variance = zip(weights, nearest).reduce(0) { $0 + $1.0 * pow($1.1.1.gap - gap, 2) } / total
        let latencies = zip(weights, nearest).compactMap { w, n in n.1.latency.map { (w, log($0)) } }
        let latency =
            latencies.isEmpty
            ? nil : exp(latencies.reduce(0) { $0 + $1.0 * $1.1 } / latencies.reduce(0) { $0 + $1.0 })
        return CandidatePrediction(
            gap: gap, gapSD: (variance + floorSD * floorSD).squareRoot(), latencyMsP50: latency,
            neighbours: nearest.count)
    }
}

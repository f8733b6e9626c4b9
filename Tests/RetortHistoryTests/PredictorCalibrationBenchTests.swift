import Foundation
import RetortHistory
import RetortSearch
import Testing

/// Calibration of the history predictor on a real history (not in CI: needs RETORT_CALIBRATION_HISTORY=PATH, e.g. the
/// history.sqlite that `make bench-learning` builds, one exhaustive search per task). Every complete full-fidelity
/// trial of every task is predicted from the others, twice: leave one task out, and leave one dataset out (the task's
/// base and all its variants, named BASE-sub50, -merge, -drop, -noisy, -llm, are forgotten). Prints, per task and
/// overall, the share of measured gaps inside the predicted ± 2 sd with the distance widening and without it, and the
/// mean absolute error.
@Suite struct PredictorCalibrationBenchTests {
    static let path = ProcessInfo.processInfo.environment["RETORT_CALIBRATION_HISTORY"]
    static let enabled = path.map { FileManager.default.fileExists(atPath: $0) } ?? false

    static func dataset(_ name: String) -> String {
        for suffix in ["-sub50", "-merge", "-drop", "-noisy", "-llm"] where name.hasSuffix(suffix) {
            return String(name.dropLast(suffix.count))
        }
        return name
    }

    struct Tally {
        var count = 0
        var inside = 0
        var insideWithout = 0
        var error = 0.0

        mutating func add(measured: Double, prediction: CandidatePrediction, widening: DistanceWidening) {
            let error = abs(measured - prediction.gap)
            let extra = widening.perTypicalDistance * (prediction.relativeDistance ?? 0)
            let without = max(prediction.gapSD * prediction.gapSD - extra * extra, 0).squareRoot()
            count += 1
            inside += error <= 2 * prediction.gapSD ? 1 : 0
            insideWithout += error <= 2 * without ? 1 : 0
            self.error += error
        }

        mutating func merge(_ other: Tally) {
            count += other.count
            inside += other.inside
            insideWithout += other.insideWithout
            error += other.error
        }

        var text: String {
            guard count > 0 else { return "— | — | —" }
            return String(
                format: "%d/%d (%.0f%%) | %.0f%% | %.4f", inside, count, 100 * Double(inside) / Double(count),
                100 * Double(insideWithout) / Double(count), error / Double(count))
        }
    }

    @Test(
        "leave one task out and leave one dataset out: coverage of ± 2 sd with and without widening, and MAE",
        .enabled(if: enabled))
    func calibration() throws {
        let store = try HistoryStore(path: try #require(Self.path))
        let runs = try store.exportAll().runs
        var byDataset: [String: Set<String>] = [:]
        for run in runs { byDataset[Self.dataset(run.report.task), default: []].insert(run.taskId) }
        var totals: [String: (task: Tally, dataset: Tally)] = [:]
        print(
            "| task | kind | trials | LOTO inside ± 2 sd | without widening | MAE | LODO inside ± 2 sd | without widening | MAE | c (LODO) | median relative distance (LODO) |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for run in runs.sorted(by: { $0.report.task < $1.report.task }) {
            let report = run.report
            let kind = run.meta.kind
            let trials = report.candidates.filter { $0.status == .complete && $0.fidelity >= 1 }
            let leaveTask = try HistoryPredictor(
                store: store, kind: kind, metric: report.primaryMetric, excludingTask: run.taskId)
            let leaveDataset = try HistoryPredictor(
                store: store, kind: kind, metric: report.primaryMetric,
                excludingTasks: byDataset[Self.dataset(report.task)] ?? [])
            var task = Tally()
            var dataset = Tally()
            var distances: [Double] = []
            for trial in trials {
                guard let measured = trial.differenceToTeacher?.value else { continue }
                func predict(_ predictor: HistoryPredictor) -> CandidatePrediction? {
                    predictor.predict(
                        meta: run.meta, family: trial.family, precision: trial.precision, sizeBytes: trial.sizeBytes,
                        flops: trial.flopsPerExample)
                }
                if let prediction = predict(leaveTask) {
                    task.add(measured: measured, prediction: prediction, widening: leaveTask.widening)
                }
                if let prediction = predict(leaveDataset) {
                    dataset.add(measured: measured, prediction: prediction, widening: leaveDataset.widening)
                    distances.append(prediction.relativeDistance ?? .nan)
                }
            }
            var total = totals[kind] ?? (Tally(), Tally())
            total.task.merge(task)
            total.dataset.merge(dataset)
            totals[kind] = total
            distances.sort()
            let median = distances.isEmpty ? Double.nan : distances[distances.count / 2]
            print(
                "| \(report.task) | \(kind) | \(trials.count) | \(task.text) | \(dataset.text) | "
                    + String(format: "%.4f | %.2f |", leaveDataset.widening.perTypicalDistance, median))
            #expect(task.count > 0)
        }
        for (kind, total) in totals.sorted(by: { $0.key < $1.key }) {
            print("| all \(kind) | \(kind) | \(total.task.count) | \(total.task.text) | \(total.dataset.text) | | |")
        }
    }
}

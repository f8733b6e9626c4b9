import Foundation
import RetortData

/// What training one rung produced.
struct RungResult {
    /// Every group's output, replayed or trained, sorted by group key (deterministic whatever order workers finished).
    var outputs: [RungOutput]
    /// Work items the budget left unstarted.
    var unstarted: Int
}

extension SearchRun {
    /// Trains `plan` as rung `rung` of `rungCount`: groups whose records are all journaled replay them, the rest go to
    /// `settings.workers` parallel workers of `settings.executor` (nothing new starts after the deadline). Every record
    /// is journaled as it arrives, with a progress event.
    mutating func trainRung(_ plan: RungPlan, rung: Int, rungCount: Int) async throws -> RungResult {
        var work: [RungWork] = []
        var replayed: [RungOutput] = []
        for group in plan.groups {
            let members = group.members.filter { alive.contains($0.id) }
            let target = max(1, Int((plan.fidelity * Double(group.options.epochs)).rounded(.up)))
            let recorded = members.compactMap { resumeRecords["\($0.id)#\(rung)"]?.last }
            if recorded.count == members.count, let first = recorded.first {
                // Journaled before the interruption: replay, train nothing.
                replayed.append(
                    RungOutput(
                        groupKey: group.key, session: nil, records: recorded, cutByBudget: first.cutByBudget ?? false,
                        epochsTrained: 0))
                continue
            }
            let checkpoint = storage.map {
                $0.checkpoints.appendingPathComponent(SearchEngine.checkpointName(group.key))
            }
            work.append(
                RungWork(
                    group: group, features: features(group.featureKey), alive: members, targetEpochs: target,
                    rung: rung, session: sessions[group.key], checkpoint: checkpoint, deadline: deadline,
                    evaluator: teacher.validationEvaluator, teacherValidation: teacher.validation, metric: metric,
                    reported: reported, seed: settings.seed, resamples: settings.suite.resamples))
        }
        if let storage, !work.isEmpty {
            var queue = JournalRecord(type: "queue")
            queue.rung = rung
            queue.fidelity = plan.fidelity
            queue.candidates = work.flatMap { $0.alive.map(\.id) }
            queue.time = Date().timeIntervalSince1970
            try storage.journal.append(queue, sync: false)
        }
        var outputs = try await runWorkers(work, replayed: replayed, rung: rung, rungCount: rungCount)
        let unstarted = work.count - (outputs.count - replayed.count)
        outputs.sort { $0.groupKey < $1.groupKey }
        return RungResult(outputs: outputs, unstarted: unstarted)
    }

    /// Runs `work` on the executor, at most `settings.workers` at a time, starting none after the deadline; returns
    /// `replayed` followed by the outputs in the order they finished.
    mutating func runWorkers(
        _ work: [RungWork], replayed: [RungOutput], rung: Int, rungCount: Int
    ) async throws -> [RungOutput] {
        let totalInRung = work.count + replayed.count
        var finishedInRung = replayed.count
        var outputs = replayed
        let (task, storage, events, executor) = (task, storage, events, settings.executor)
        let (workers, deadline, metric, aliveCount) = (settings.workers, deadline, metric, alive.count)
        var best = best
        var trainingEnded = trainingEnded
        let secondsLeft = { [start, budget = settings.budgetSeconds] in
            max(0, budget - Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        try await withThrowingTaskGroup(of: RungOutput.self) { taskGroup in
            var next = 0
            func submit() throws {
                guard next < work.count else { return }
                let item = work[next]
                next += 1
                if let storage {
                    var start = JournalRecord(type: "start")
                    start.rung = rung
                    start.group = item.group.key
                    start.candidates = item.alive.map(\.id)
                    start.time = Date().timeIntervalSince1970
                    try storage.journal.append(start, sync: false)
                }
                taskGroup.addTask { try await executor.run(item, task: task) }
            }
            for _ in 0..<min(workers, work.count) { try submit() }
            while let output = try await taskGroup.next() {
                trainingEnded = DispatchTime.now().uptimeNanoseconds
                outputs.append(output)
                finishedInRung += 1
                for record in output.records.sorted(by: { ($0.candidate ?? "") < ($1.candidate ?? "") }) {
                    try storage?.journal.append(record)
                    if let value = record.metrics?[metric.rawValue]?.value,
                        best.map({ value > $0.value }) ?? true, let candidate = record.candidate
                    {
                        best = (candidate, value)
                    }
                }
                try events(
                    .progress(
                        SearchProgress(
                            rung: rung, rungs: rungCount, alive: aliveCount, best: best, secondsLeft: secondsLeft(),
                            finishedInRung: finishedInRung, totalInRung: totalInRung)))
                if DispatchTime.now().uptimeNanoseconds < deadline { try submit() }
            }
        }
        self.best = best
        self.trainingEnded = trainingEnded
        return outputs
    }

    /// Takes in a rung's outputs: sessions, epochs and seconds per training run, each candidate's latest record.
    /// Returns the candidates a budget cut decided (a run cut by the budget stops racing).
    mutating func absorb(_ outputs: [RungOutput]) -> [String] {
        var decided: [String] = []
        for output in outputs {
            if let session = output.session, output.epochsTrained > 0 { sessions[output.groupKey] = session }
            // Counted from the schedule (journaled epochs), so a resumed run reports what an uninterrupted one would.
            let reached = output.records.first?.epochs ?? 0
            candidateEpochs += Double(max(0, reached - (epochsSoFar[output.groupKey] ?? 0)))
            epochsSoFar[output.groupKey] = max(reached, epochsSoFar[output.groupKey] ?? 0)
            trainingRuns.insert(output.groupKey)
            trainSeconds[output.groupKey, default: 0] += output.records.first?.trainSeconds ?? 0
            if let seconds = output.records.first?.epochInFlightSeconds {
                epochInFlight = max(epochInFlight ?? 0, seconds)
            }
            if let seconds = output.records.first?.evaluationSeconds {
                cutEvaluation = max(cutEvaluation ?? 0, seconds)
            }
            for record in output.records {
                guard let id = record.candidate else { continue }
                latest[id] = record
                if output.cutByBudget {
                    budgetHit = true
                    alive.remove(id)
                    decided.append(id)
                }
            }
        }
        return decided
    }
}

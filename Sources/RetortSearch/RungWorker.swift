import Foundation
import RetortData
import RetortEvals
import RetortNumerics
import RetortStudents

extension SearchEngine {
    /// One group's work in one rung, run by a worker: restore or continue its session, train to the rung's epochs
    /// (stopping at the budget), checkpoint, and evaluate every alive member on validation.
    static func runRung(_ work: RungWork, task: TaskData) throws -> RungOutput {
        let group = work.group
        let (train, validation) = work.features.trainingSplits(of: task)
        // Training time includes making (initializing or restoring) the session: a 2^21-bucket embedding is itself
        // a quarter of a second of initialization, which fastText's timed fit also pays.
        let started = DispatchTime.now().uptimeNanoseconds
        var session: TrainingSession
        if let existing = work.session {
            session = existing
        } else if let checkpoint = work.checkpoint, let data = FileManager.default.contents(atPath: checkpoint.path) {
            session = try TrainingSession(
                restoring: data, file: checkpoint.lastPathComponent, architecture: group.architecture, train: train,
                options: group.options)
        } else {
            session = TrainingSession(
                architecture: group.architecture, train: train, options: group.options, seed: group.seed)
        }
        let before = session.epochsRun
        let deadline = work.deadline
        // Epoch by epoch, as `train(untilEpoch:shouldStop:)` runs them, timing each: the step that was running when
        // the budget ran out (making the session, or an epoch) is how far past the budget this training run went.
        var inFlight: Double?
        func timed(since begin: UInt64) {
            let now = DispatchTime.now().uptimeNanoseconds
            if begin < deadline && now > deadline { inFlight = max(inFlight ?? 0, Double(now - begin) / 1e9) }
        }
        timed(since: started)
        while session.epochsRun < work.targetEpochs && !session.isFinished
            && DispatchTime.now().uptimeNanoseconds < deadline
        {
            let epochStarted = DispatchTime.now().uptimeNanoseconds
            try session.runEpochs(1, train: train, validation: validation)
            timed(since: epochStarted)
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        let cut = !session.isFinished && session.epochsRun < work.targetEpochs
        let evaluationStarted = DispatchTime.now().uptimeNanoseconds
        var records: [JournalRecord] = []
        for candidate in work.alive {
            var record = JournalRecord(type: "rung")
            record.candidate = candidate.id
            record.group = group.key
            record.rung = work.rung
            record.epochs = session.epochsRun
            record.fidelity = session.isFinished ? 1 : Double(session.epochsRun) / Double(group.options.epochs)
            record.bestEpoch = session.bestEpoch
            record.finished = session.isFinished
            record.cutByBudget = cut
            record.trainSeconds = seconds
            record.epochInFlightSeconds = inFlight
            if session.epochsRun > 0 {
                let model = session.bestModel.quantized(to: candidate.precision)
                let predictions = try model.probabilities(work.features.validation(at: candidate.precision))
                    .argmaxPerRow()
                if case .trees(let trees) = model {
                    // A booster that stopped early is smaller than planned: report what it is.
                    let bundle = ModelBundle(
                        candidate: candidate.id, model: model, featurizer: work.features.featurizer, labels: [])
                    record.sizeBytes = bundle.sizeBytes
                    record.flops = trees.comparisonsPerExample
                }
                let evaluation = try work.evaluator.evaluate(predictions)
                record.metrics = Dictionary(
                    uniqueKeysWithValues: evaluation.estimates.filter { work.reported.contains($0.key) }.map {
                        ($0.key.rawValue, $0.value)
                    })
                record.differenceToTeacher = evaluation.difference(
                    to: work.teacherValidation, on: work.metric, resampler: work.evaluator.resampler)
            }
            records.append(record)
        }
        // Evaluating the members runs after the budget when training was cut by it: part of the overrun.
        if cut {
            let evaluation = Double(DispatchTime.now().uptimeNanoseconds - evaluationStarted) / 1e9
            for index in records.indices { records[index].evaluationSeconds = evaluation }
        }
        return RungOutput(
            groupKey: group.key, session: session, records: records, cutByBudget: cut,
            epochsTrained: session.epochsRun - before)
    }
}

import Foundation
import RetortData
import RetortEvals
import RetortStudents

/// A structured search's journal and checkpoints, so that `retort search --resume RUN_DIR` continues an interrupted
/// run: every decided candidate is journaled whole (a `rung` record with `trial`), and every scored student is kept
/// in the run's `checkpoints/ID/` with its validation answers. A resumed run restores those candidates (the student,
/// its answers and its journaled figures, latency included) and trains the rest, so its report equals the
/// uninterrupted run's except for the timings of what it trained again.
struct StructuredJournal {
    /// Where records and checkpoints go.
    let storage: RunStorage
    /// Decided trials of the interrupted run, by candidate id (complete at full fidelity, failed and skipped ones; a
    /// candidate the budget cut is decided again, and halving's pruning again from the screening scores).
    let restored: [String: TrialResult]
    /// Halving's screening scores of the interrupted run, by `ID#RUNG`.
    let screening: [String: TrialResult]

    /// Writes the header of a new run or checks the interrupted run's, and announces the candidates for a live view.
    init(storage: RunStorage, task: StructuredTaskData, settings: SearchSettings) throws {
        self.storage = storage
        let candidates = settings.catalog.structured
        try SearchEngine.writeOrCheckHeader(
            storage: storage, taskHash: SearchFingerprint.structuredTask(task),
            catalogHash: SearchFingerprint.structuredCatalog(candidates), settings: settings)
        var restored: [String: TrialResult] = [:]
        var screening: [String: TrialResult] = [:]
        for record in storage.resume ?? [] where record.type == "rung" {
            guard let trial = record.trial else { continue }
            if trial.status == .complete && trial.fidelity < 1 {
                screening["\(trial.id)#\(record.rung ?? -1)"] = trial
            } else if (trial.status == .complete && trial.fidelity >= 1) || [.failed, .skipped].contains(trial.status) {
                restored[trial.id] = trial
            }
        }
        self.restored = restored
        self.screening = screening
    }

    /// Journals a rung's candidates before any trains (a live view shows them queued).
    func queue(rung: Int, fidelity: Double, candidates: [String]) throws {
        var queue = JournalRecord(type: "queue")
        queue.rung = rung
        queue.fidelity = fidelity
        queue.candidates = candidates
        queue.time = Date().timeIntervalSince1970
        try storage.journal.append(queue, sync: false)
    }

    /// Journals that the training run of `members` began a rung (a live view shows them running).
    func started(_ members: [StructuredCandidate], rung: Int) throws {
        var record = JournalRecord(type: "start")
        record.rung = rung
        record.candidates = members.map(\.id)
        record.time = Date().timeIntervalSince1970
        try storage.journal.append(record, sync: false)
    }

    /// Keeps a scored student and its validation answers in the checkpoints (written whole, then renamed), then
    /// journals its trial; a trial without a student (failed, skipped, pruned) is journaled alone.
    func decided(
        _ trial: TrialResult, rung: Int, student: StructuredStudent? = nil,
        answers: [(answer: StructuredAnswer, confidence: Double)] = []
    ) throws {
        if let student {
            try StructuredCheckpoint.write(
                student, answers: answers, candidate: trial.id,
                to: storage.checkpoints.appendingPathComponent(trial.id))
        }
        try append(trial, rung: rung, finished: trial.status == .complete)
    }

    /// Journals a screening score of halving's rung `rung` (the candidate races on or is pruned after it).
    func screened(_ trial: TrialResult, rung: Int) throws {
        try append(trial, rung: rung, finished: false)
    }

    /// The screening scores of `members` at `rung` from the interrupted run, or nil unless every one has one.
    func screened(_ members: [StructuredCandidate], rung: Int) -> [TrialResult]? {
        let trials = members.compactMap { screening["\($0.id)#\(rung)"] }
        return trials.count == members.count && !trials.isEmpty ? trials : nil
    }

    /// A rung record carrying `trial` whole.
    private func append(_ trial: TrialResult, rung: Int, finished: Bool) throws {
        var record = JournalRecord(type: "rung")
        record.candidate = trial.id
        record.rung = rung
        record.fidelity = trial.fidelity
        record.finished = finished
        record.metrics = trial.metrics
        record.trainSeconds = trial.trainSeconds
        record.trial = trial
        try storage.journal.append(record)
    }

    /// The checkpointed student of a restored complete candidate and its validation answers, or nil when the
    /// checkpoint is missing or unreadable (the candidate then trains again).
    func checkpoint(_ id: String, rows: Int) -> (StructuredStudent, [(answer: StructuredAnswer, confidence: Double)])? {
        StructuredCheckpoint.read(storage.checkpoints.appendingPathComponent(id), rows: rows).map {
            ($0.student, $0.answers)
        }
    }
}

extension SearchFingerprint {
    /// Hash of a structured task: the schema, and every row of every split (ids, inputs, the teacher's raw answers,
    /// gold).
    public static func structuredTask(_ task: StructuredTaskData) -> String {
        var text = task.schema.properties.keys.sorted().map { key in
            let property = task.schema.properties[key]
            let allowed = property?.allowed?.map(\.description).joined(separator: ",") ?? "*"
            let required = task.schema.required.contains(key) ? "!" : "?"
            return "\(key)\(required):\(property?.type.map { "\($0)" } ?? "any"):\(allowed)"
        }.joined(separator: ";")
        for split in task.splits {
            text += "|\(split.name):\(split.count)"
            for index in 0..<split.count {
                text += "\u{1E}\(split.rows.ids[index])\u{1F}\(split.texts[index])\u{1F}"
                text += "\(split.teacherTexts[index] ?? split.teacher[index]?.canonicalJSON ?? "-")\u{1F}"
                text += split.gold[index]?.canonicalJSON ?? "-"
            }
        }
        return hash(text)
    }

    /// Hash of a structured catalog: every candidate's id and settings.
    public static func structuredCatalog(_ candidates: [StructuredCandidate]) -> String {
        hash(
            candidates.map {
                "\($0.id):\($0.bucketsLog2):\($0.hidden):\($0.epochs):\($0.rank):\($0.depth):\($0.trainRows):\($0.model)"
            }.joined(separator: ";"))
    }
}

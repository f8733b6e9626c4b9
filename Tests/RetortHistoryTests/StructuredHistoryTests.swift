import Foundation
import RetortData
import RetortHistory
import RetortReports
import RetortSearch
import RetortTestSupport
import Testing

/// A hand-made structured task whose meta-features can be counted by hand (see `structuredMetaFeatures`).
func handMadeStructuredTask() throws -> StructuredTaskData {
    func row(_ id: String, _ input: String, teacher: Any, gold: [String: Any]? = nil) -> [String: Any] {
        var row: [String: Any] = ["id": id, "input": input, "teacher": teacher]
        if let gold { row["gold"] = gold }
        return row
    }
    let train = [
        row("t1", "turn on the kitchen light", teacher: ["intent": "TurnOn", "area": "kitchen"]),
        row("t2", "turn off the office light", teacher: ["intent": "TurnOff", "area": "office"]),
        row("t3", "add Milk to my list", teacher: ["intent": "AddItem", "item": "milk"]),
        row(
            "t4", "set the garage light to 40 percent",
            teacher: ["intent": "SetBrightness", "area": "garage", "brightness": 40]),
        row("t5", "add bread to my list", teacher: ["intent": "AddItem", "item": "bread"]),
        row("t6", "turn on the hallway light", teacher: ["text": "Sure! I turned it on."]),
        row("t7", "switch on the sleeping room light", teacher: ["intent": "TurnOn", "area": "bedroom"]),
        row("t8", "add eggs to my list", teacher: ["intent": "AddItem", "item": "egg"]),
    ]
    let validation = [
        row(
            "v1", "turn on the kitchen light", teacher: ["intent": "TurnOn", "area": "kitchen"],
            gold: ["intent": "TurnOn", "area": "kitchen"]),
        row(
            "v2", "turn off the office light", teacher: ["intent": "TurnOff", "area": "office"],
            gold: ["intent": "TurnOff", "area": "office"]),
        row(
            "v3", "set the garage light to 40 percent",
            teacher: ["intent": "SetBrightness", "area": "garage", "brightness": 40.0],
            gold: ["intent": "SetBrightness", "area": "garage", "brightness": 40]),
        row(
            "v4", "add Milk to my list", teacher: ["intent": "TurnOn", "item": "milk"],
            gold: ["intent": "AddItem", "item": "milk"]),
    ]
    let test = [row("s1", "add tea to my list", teacher: ["intent": "AddItem", "item": "tea"])]
    let folder = SyntheticTasks.temporaryFolder().appendingPathComponent("hand-made")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    try SyntheticTasks.writeJSONL(train, to: folder.appendingPathComponent("train.jsonl"))
    try SyntheticTasks.writeJSONL(validation, to: folder.appendingPathComponent("validation.jsonl"))
    try SyntheticTasks.writeJSONL(test, to: folder.appendingPathComponent("test.jsonl"))
    let task: [String: Any] = [
        "name": "hand-made", "kind": "structured",
        "schema": [
            "type": "object",
            "properties": [
                "intent": ["type": "string", "enum": ["AddItem", "SetBrightness", "TurnOff", "TurnOn"]],
                "area": ["type": "string", "enum": ["kitchen", "office", "garage", "bedroom", "hallway"]],
                "brightness": ["type": "integer"], "item": ["type": "string"],
            ],
            "required": ["intent"],
        ],
    ]
    try JSONSerialization.data(withJSONObject: task).write(to: folder.appendingPathComponent("task.json"))
    return try StructuredTaskData.load(folder: folder)
}

/// Two nearest sizes and a fields student at two precisions: four structured candidates.
func structuredCatalog() throws -> CandidateCatalog {
    try CandidateCatalog(
        try YAMLValue.parse(
            "structured:\n  - {family: nearest, buckets_log2: [10, 12]}\n"
                + "  - {family: fields, buckets_log2: [10], epochs: 3, precision: [fp32, int8]}\n",
            file: "c.yaml"))
}

/// A finished structured search of `task` (a small catalog: two nearest sizes and a fields student) as the history
/// records it, through ``HistoryStore/record(finished:job:runId:structured:meta:report:)``.
func recordStructuredSearch(
    _ task: StructuredTaskData, into store: HistoryStore, job: String, runId: String = "20260101-000000",
    seconds: TimeInterval = 0
) throws -> (report: RunReport, meta: MetaFeatures, tasks: Int) {
    let outcome = try StructuredSearch.run(
        task: task, settings: SearchSettings(catalog: try structuredCatalog(), seed: 2))
    let report = RunReport(
        job: job, runId: runId, createdAt: Date(timeIntervalSince1970: seconds), outcome: outcome.outcome)
    let meta = MetaFeatures(structured: task)
    let tasks = try store.record(
        finished: SyntheticTasks.temporaryFolder(), job: job, runId: runId, structured: task, meta: meta,
        report: report)
    return (report, meta, tasks)
}

@Suite struct StructuredHistoryTests {
    @Test("structured meta-features equal hand counts on a hand-made task")
    func structuredMetaFeatures() throws {
        let task = try handMadeStructuredTask()
        let meta = MetaFeatures(structured: task)
        let structured = try #require(meta.structured)
        #expect(meta.kind == "structured" && meta.rows == 8)
        // Seven valid answers, all different; t6 is not JSON.
        #expect(meta.classes == 7 && abs(meta.classEntropy - log(7)) < 1e-12)
        #expect(structured.teacherInvalidShare == 1.0 / 8)
        // 14 string values (an intent and an area or item in each valid answer); copied: kitchen, office, Milk (case
        // ignored), garage, bread, egg (inside "eggs"); not copied: the seven intents and bedroom.
        #expect(structured.copiedValueShare == 6.0 / 14)
        // 4 keys; intent (4 values) and area (5) are closed.
        #expect(structured.keys == 4 && structured.closedKeyShare == 0.5)
        #expect(structured.meanValueSetSize == 4.5 && structured.maxValueSetSize == 5)
        // intent is in 7/7 answers; area 4/7, item 3/7, brightness 1/7 are optional.
        #expect(structured.optionalKeyShare == 0.75)
        #expect(abs(structured.meanAnswerFields - 15.0 / 7) < 1e-12)
        // Tokens 5+5+5+7+5+5+6+5 over 8 inputs.
        #expect(meta.meanTextLength == 43.0 / 8)
        // The teacher misses gold on v4 only (40.0 equals 40).
        #expect(meta.teacherGoldAccuracy == 0.75)
        // The retrieval probe finds v1–v3's inputs in train and answers as the teacher; on v4 the teacher says TurnOn
        // and the probe AddItem: one of its two pairs matches. Field F1 = 2·8 / (9 + 9).
        #expect(meta.probeCentroidAccuracy == 0.75)
        #expect(abs(structured.probeFieldF1 - 16.0 / 18) < 1e-12)
        #expect(meta.teacherMeanMaxProbability == 0 && meta.probeLinearAccuracy == 0)
        #expect(meta.vector.count == 17 && meta.vector.allSatisfy(\.isFinite))
        #expect(MetaFeatures(structured: task) == meta, "reproducible")
        #expect(StructuredMetaFeatures.copiedShare(inputs: ["a b"], answers: [nil]) == 0)
    }

    @Test("a label task's meta-features encode as before, and a record written before structured tasks still decodes")
    func labelRecordsUnchanged() throws {
        let old = """
            {"class_entropy":1.3,"classes":4,"dimension":120,"kind":"text","learning_curve_slope":0.01,\
            "mean_text_length":6.5,"probe_centroid_accuracy":0.8,"probe_linear_accuracy":0.7,"rows":240,\
            "teacher_gold_accuracy":0.9,"teacher_mean_entropy":0.4,"teacher_mean_max_probability":0.85}
            """
        let meta = try JSONDecoder().decode(MetaFeatures.self, from: Data(old.utf8))
        #expect(meta.structured == nil && meta.classes == 4 && meta.vector.count == 12 && meta.goldProbeHeadroom == nil)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        #expect(String(decoding: try encoder.encode(meta), as: UTF8.self) == old)
        let structured = MetaFeatures(structured: try handMadeStructuredTask())
        let again = try JSONDecoder().decode(MetaFeatures.self, from: try encoder.encode(structured))
        #expect(again == structured)
    }

    @Test("a structured run is recorded, listed, shown, exported and imported like a label run")
    func recordAndList() async throws {
        let folder = SyntheticTasks.temporaryFolder()
        let store = try HistoryStore(path: folder.appendingPathComponent("h.sqlite").path)
        let label = try await historyRun(try generatedTask(.text), job: "words-job")
        #expect(try store.record(label))
        let task = try StructuredTaskData.load(
            folder: try SyntheticStructured.writeTask(name: "ha-a", sizes: (240, 120, 120)))
        let recorded = try recordStructuredSearch(task, into: store, job: "ha-job", seconds: 10)
        #expect(recorded.tasks == 1)
        let list = try store.list()
        #expect(list.map(\.id) == ["words-job/20260101-000000", "ha-job/20260101-000000"])
        let row = try #require(list.last)
        #expect(row.kind == "structured" && row.task == "ha-a" && row.taskId == StructuredHistory.fingerprint(task))
        #expect(row.trials == recorded.report.candidates.count && row.trials == 4)
        #expect(try store.taskCount(kind: "structured") == 1 && store.taskCount(kind: "text") == 1)
        let shown = try #require(try store.runs(matching: "ha-a").first)
        #expect(shown.meta == recorded.meta && shown.meta.structured != nil)
        #expect(shown.report.taskKind == "structured")

        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let data = try encoder.encode(try store.exportAll())
        let other = try HistoryStore(path: folder.appendingPathComponent("other.sqlite").path)
        #expect(try other.importing(JSONDecoder().decode(HistoryExport.self, from: data)) == 2)
        #expect(try other.list() == list)
        #expect(try encoder.encode(other.exportAll()) == data)
        // The same rows give the same fingerprint wherever they live; other rows another.
        let copy = try StructuredTaskData.load(
            folder: try SyntheticStructured.writeTask(name: "ha-a", sizes: (240, 120, 120)))
        #expect(StructuredHistory.fingerprint(copy) == StructuredHistory.fingerprint(task))
        let different = try StructuredTaskData.load(
            folder: try SyntheticStructured.writeTask(name: "ha-a", seed: 8, sizes: (240, 120, 120)))
        #expect(StructuredHistory.fingerprint(different) != StructuredHistory.fingerprint(task))
        #expect(try store.forget("ha-a") == 1 && store.taskCount(kind: "structured") == 0)
    }

    @Test("structured predictions come from structured tasks only; label predictions ignore structured tasks")
    func predictionsFromStructuredNeighbours() async throws {
        let path = SyntheticTasks.temporaryFolder().appendingPathComponent("h.sqlite").path
        let store = try HistoryStore(path: path)
        #expect(try store.record(try await historyRun(try generatedTask(.text), job: "words-job")))
        let first = try StructuredTaskData.load(
            folder: try SyntheticStructured.writeTask(name: "ha-a", sizes: (240, 120, 120)))
        let second = try StructuredTaskData.load(
            folder: try SyntheticStructured.writeTask(name: "ha-b", seed: 11, sizes: (300, 120, 120), novelItems: true))
        let a = try recordStructuredSearch(first, into: store, job: "a")
        _ = try recordStructuredSearch(second, into: store, job: "b")
        var trials: [String: [String: Double]] = [:]
        for name in ["ha-a", "ha-b"] {
            for candidate in try store.runs(matching: name).flatMap(\.report.candidates) {
                trials[name, default: [:]][candidate.id] = candidate.differenceToTeacher?.value
            }
        }
        let gaps = trials.values.flatMap(\.values)
        #expect(gaps.count == 8, "every structured candidate of both tasks completed")
        let (low, high) = (try #require(gaps.min()), try #require(gaps.max()))

        var predictor = try HistoryPredictor(store: store, kind: "structured", metric: "exact_match")
        #expect(predictor.taskCount == 2 && predictor.kind == "structured")
        #expect(Set(predictor.similarTasks(to: a.meta).map(\.task)) == ["ha-a", "ha-b"])
        let candidates = try structuredCatalog().structured
        predictor.k = 100
        let predictions = predictor.predictions(for: candidates, meta: a.meta)
        #expect(Set(predictions.keys) == Set(candidates.map(\.id)))
        for prediction in predictions.values {
            // Every neighbour is one of the 8 structured trials (the text task's trials are never read).
            #expect(prediction.neighbours == 8)
            #expect(prediction.gap >= low - 1e-12 && prediction.gap <= high + 1e-12 && prediction.gapSD >= 0.01)
        }
        // The nearest neighbour of a candidate on a task already searched is its own trial there.
        predictor.k = 1
        for candidate in candidates {
            let own = try #require(trials["ha-a"]?[candidate.id])
            let predicted = try #require(predictor.predict(meta: a.meta, candidate: candidate))
            #expect(abs(predicted.gap - own) < 1e-12, "\(candidate.id)")
            let cost = try #require(predictor.predictedCost(meta: a.meta, candidate: candidate))
            #expect(cost.sizeBytes > 0 && cost.flops > 0)
        }
        // A structured predictor answers no label candidate, and a label predictor no structured one.
        let textMeta = try MetaFeatures(task: try generatedTask(.text))
        #expect(
            predictor.predict(meta: textMeta, family: .linear, precision: .fp32, sizeBytes: 1000, flops: 100) == nil)
        #expect(predictor.similarTasks(to: textMeta).isEmpty)
        let text = try HistoryPredictor(store: store, kind: "text", metric: "accuracy")
        #expect(text.taskCount == 1 && text.similarTasks(to: textMeta).map(\.task) == ["words"])
        #expect(text.predict(meta: a.meta, candidate: candidates[0]) == nil)

        // Leaving a task out leaves its trials out.
        let leftOut = try HistoryPredictor(
            store: store, kind: "structured", metric: "exact_match", excludingTask: StructuredHistory.fingerprint(first)
        )
        #expect(leftOut.taskCount == 1 && leftOut.similarTasks(to: a.meta).map(\.task) == ["ha-b"])

        // What a structured search calls: predictions for the catalog's structured candidates, with the evidence.
        var settings = SearchSettings(catalog: try structuredCatalog())
        #expect(try settings.learn(fromHistoryAt: path, structured: first, meta: a.meta) == 2)
        #expect(Set(settings.predictions.keys) == Set(candidates.map(\.id)) && settings.historyTasks == 2)
        #expect(settings.similarTasks.first?.task == "ha-a" && settings.strategy == .exhaustive)
        var empty = SearchSettings(catalog: try structuredCatalog())
        #expect(try empty.learn(fromHistoryAt: path + ".missing", structured: first, meta: a.meta) == 0)
        #expect(empty.predictions.isEmpty && empty.historyTasks == nil)
        // Another metric has no past structured task.
        let agreement = try StructuredHistory.predictions(
            fromHistoryAt: path, meta: a.meta, candidates: candidates, metric: "agreement")
        #expect(agreement.historyTasks == 0 && agreement.predictions.isEmpty)

        // suggest's table: every candidate predicted, sizes and FLOPs from the past trials.
        let suggestion = Suggestion.predict(
            structured: first, settings: settings, seed: 7, metric: "exact_match", predictor: predictor,
            confirm: "retort search --task ha-a")
        #expect(suggestion.candidates.count == 4 && suggestion.historyTasks == 2)
        #expect(suggestion.candidates.allSatisfy { $0.sizeBytes > 0 && $0.flopsPerExample > 0 })
        #expect(suggestion.candidates.contains { $0.onPredictedFrontier })
    }
}

import Foundation
import RetortData
import RetortNumerics

/// A trained part of a fields student.
enum TrainedPart: Sendable {
    case closed(FieldsStudent.ClosedPart)
    case tagger(StudentModel)
}

/// The parts' results as concurrent jobs finish, one slot per job.
final class PartResults: @unchecked Sendable {
    private let lock = NSLock()
    private var slots: [Result<TrainedPart, any Error>?]

    init(count: Int) { slots = Array(repeating: nil, count: count) }

    func set(_ index: Int, _ result: Result<TrainedPart, any Error>) {
        lock.lock()
        slots[index] = result
        lock.unlock()
    }

    var values: [Result<TrainedPart, any Error>?] {
        lock.lock()
        defer { lock.unlock() }
        return slots
    }
}

/// Builds a ``FieldsStudent`` from the valid train answers: decides the roles, then trains each part.
struct FieldsBuilder {
    let schema: StructuredSchema
    let config: FieldsConfig
    let texts: [String]
    let answers: [StructuredAnswer]
    let seed: UInt64
    var validationTexts: [String] = []
    var validationAnswers: [StructuredAnswer] = []
    let tokens: [[FieldToken]]

    init(schema: StructuredSchema, config: FieldsConfig, texts: [String], answers: [StructuredAnswer], seed: UInt64) {
        self.schema = schema
        self.config = config
        self.texts = texts
        self.answers = answers
        self.seed = seed
        tokens = texts.map(FieldText.tokens)
    }

    /// Where `value` of a key of `type` is written in `tokens`: a number in digits or words, a string as a token
    /// span (for a numeric key, a string the teacher gave is grown to the whole number phrase and must read as a
    /// number); nil when it is not found.
    static func locate(
        _ value: StructuredValue, type: StructuredSchema.ValueType?, in tokens: [FieldToken]
    ) -> ClosedRange<Int>? {
        switch value {
        case .number(let number): return FieldText.locate(number: number, in: tokens)
        case .bool: return nil
        case .string(let text):
            guard let span = FieldText.locate(text: text, in: tokens) else { return nil }
            guard type == .integer || type == .number else { return span }
            let phrase = FieldText.numberPhrase(around: span, in: tokens)
            return FieldText.number(in: tokens[phrase]) == nil ? nil : phrase
        }
    }

    /// Each key's role: closed for an enum, a boolean, or values rarely found in the input; else span.
    func roles() -> [String: FieldsStudent.Role] {
        var roles: [String: FieldsStudent.Role] = [:]
        for key in schema.keys {
            guard let property = schema.properties[key] else { continue }
            let enumerated = property.allowed != nil
            if property.type == .boolean || (enumerated && !config.enumSpans)
                || (enumerated
                    && !(property.allowed ?? []).allSatisfy({ if case .string = $0 { true } else { false } }))
            {
                roles[key] = .closed
                continue
            }
            var occurrences = 0
            var found = 0
            for (row, answer) in answers.enumerated() {
                guard let value = answer[key] else { continue }
                occurrences += 1
                if Self.locate(value, type: property.type, in: tokens[row]) != nil { found += 1 }
            }
            let share = occurrences == 0 ? 0 : Double(found) / Double(occurrences)
            roles[key] = share >= (enumerated ? FieldsStudent.enumSpanShare : FieldsStudent.spanShare) ? .span : .closed
        }
        return roles
    }

    func build() throws -> FieldsStudent {
        let roles = roles()
        let featurizer = HashedTextFeaturizer(bucketsLog2: config.bucketsLog2)
        let tokenFeaturizer = TokenFeaturizer(bucketsLog2: config.tokenBucketsLog2)
        let closedKeys = schema.keys.filter { roles[$0] == .closed }
        let spanKeys = schema.keys.filter { roles[$0] == .span }
        let trainFeatures = featurizer.features(for: texts)
        let validationFeatures = featurizer.features(for: validationTexts)
        let spans = spanKeys.map { FieldsStudent.SpanPart(key: $0, casing: casing(of: $0)) }
        let trainTokens = tokenFeaturizer.features(for: spans.isEmpty ? [] : tokens)
        let tokenNonzeros = FeatureMatrix.sparse(trainTokens).meanNonzerosPerRow
        // The parts are independent and each depends only on its own seed; they train one after another, the tagger
        // (the largest) first. (Concurrent callers of a multithreaded OpenBLAS are what the label search avoids with one
        // BLAS thread per worker; with the parts on concurrent threads, a fresh-clone test run saw an encoder-head
        // search in the same process train to chance.)
        let jobs = closedKeys.count + (spans.isEmpty ? 0 : 1)
        let results = PartResults(count: jobs)
        for job in 0..<jobs {
            do {
                if !spans.isEmpty && job == 0 {
                    let validationTokenized = validationTexts.map(FieldText.tokens)
                    let model = try train(
                        classes: 1 + 2 * spans.count, inputDimension: 1 << config.tokenBucketsLog2,
                        train: (trainTokens, tagLabels(spans: spans, tokens: tokens, answers: answers)),
                        validation: (
                            tokenFeaturizer.features(for: validationTokenized),
                            tagLabels(spans: spans, tokens: validationTokenized, answers: validationAnswers)
                        ), seed: seed &+ 0x7A6)
                    results.set(job, .success(.tagger(model)))
                } else {
                    let index = spans.isEmpty ? job : job - 1
                    let part = try closedPart(
                        key: closedKeys[index], train: trainFeatures, validation: validationFeatures,
                        seed: seed &+ UInt64(index) &+ 1)
                    results.set(job, .success(.closed(part)))
                }
            } catch {
                results.set(job, .failure(error))
            }
        }
        var closed: [FieldsStudent.ClosedPart] = []
        var tagger: StudentModel?
        for result in results.values {
            switch try result?.get() {
            case .tagger(let model): tagger = model
            case .closed(let part): closed.append(part)
            case nil: throw StudentError("fields: a part did not finish training")
            }
        }
        let tokenCount = tokens.reduce(0) { $0 + $1.count }
        let costs = FieldsStudent.Costs(
            inputNonzeros: FeatureMatrix.sparse(trainFeatures).meanNonzerosPerRow, tokenNonzeros: tokenNonzeros,
            tokensPerInput: Double(tokenCount) / Double(max(texts.count, 1)))
        return FieldsStudent(
            schema: schema, roles: roles, config: config, featurizer: featurizer, tokenFeaturizer: tokenFeaturizer,
            closed: closed, spans: spans, tagger: tagger, fallback: fallback(), costs: costs)
    }

    /// A closed key's classes (the schema-admitted values the teacher gave, sorted, then absent when optional) and
    /// its classifier; rows whose value the schema does not admit are left out of its training.
    func closedPart(
        key: String, train: SparseMatrix, validation: SparseMatrix, seed: UInt64
    ) throws -> FieldsStudent.ClosedPart {
        let property = schema.properties[key]
        let admitted = { (value: StructuredValue) in property?.admits(value) ?? false }
        let values = Array(Set(answers.compactMap { $0[key] }.filter(admitted))).sorted()
        let absent = !schema.required.contains(key)
        let index = Dictionary(uniqueKeysWithValues: values.enumerated().map { ($0.element, $0.offset) })
        func label(_ answer: StructuredAnswer) -> Int? {
            guard let value = answer[key] else { return absent ? values.count : nil }
            return index[value]
        }
        let classes = values.count + (absent ? 1 : 0)
        guard classes >= 2 else { return FieldsStudent.ClosedPart(key: key, values: values, absent: absent) }
        let trainRows = answers.indices.filter { label(answers[$0]) != nil }
        let validationRows = validationAnswers.indices.filter { label(validationAnswers[$0]) != nil }
        let model = try self.train(
            classes: classes, inputDimension: 1 << config.bucketsLog2,
            train: (train.gatheringRows(trainRows), trainRows.compactMap { label(answers[$0]) }),
            validation: (
                validation.gatheringRows(validationRows), validationRows.compactMap { label(validationAnswers[$0]) }
            ), seed: seed)
        return FieldsStudent.ClosedPart(key: key, values: values, absent: absent, model: model)
    }

    /// Per-token tags of the texts: O (0), or `1 + 2·k` / `2 + 2·k` on the first / later tokens of span key `k`'s
    /// value where the teacher's value is found (first match; a span overlapping an earlier key's is not tagged).
    func tagLabels(spans: [FieldsStudent.SpanPart], tokens: [[FieldToken]], answers: [StructuredAnswer]) -> [Int] {
        var labels: [Int] = []
        for (row, answer) in answers.enumerated() {
            var tags = [Int](repeating: 0, count: tokens[row].count)
            for (index, part) in spans.enumerated() {
                guard let value = answer[part.key],
                    let span = Self.locate(value, type: schema.properties[part.key]?.type, in: tokens[row]),
                    tags[span].allSatisfy({ $0 == 0 })
                else { continue }
                for position in span { tags[position] = position == span.lowerBound ? 1 + 2 * index : 2 + 2 * index }
            }
            labels.append(contentsOf: tags)
        }
        return labels
    }

    /// The casing that turns the most found spans of a string key into the teacher's value (as written on ties).
    func casing(of key: String) -> FieldsStudent.Casing {
        var counts: [FieldsStudent.Casing: Int] = [:]
        for (row, answer) in answers.enumerated() {
            guard case .string(let value) = answer[key], let span = FieldText.locate(text: value, in: tokens[row])
            else { continue }
            let text = texts[row]
            let copied = String(
                text[tokens[row][span.lowerBound].range.lowerBound..<tokens[row][span.upperBound].range.upperBound])
            for casing in FieldsStudent.Casing.allCases where casing.apply(copied) == value {
                counts[casing, default: 0] += 1
            }
        }
        let best = FieldsStudent.Casing.allCases.max { (counts[$0] ?? 0) < (counts[$1] ?? 0) }
        return (counts[.asWritten] ?? 0) >= (best.flatMap { counts[$0] } ?? 0) ? .asWritten : best ?? .asWritten
    }

    /// For each required key, the value it takes when nothing else can be predicted: its most frequent admitted
    /// teacher value, else the schema's first allowed value, else a default of its type.
    func fallback() -> [String: StructuredValue] {
        var result: [String: StructuredValue] = [:]
        for key in schema.required {
            guard let property = schema.properties[key] else { continue }
            var counts: [StructuredValue: Int] = [:]
            for answer in answers {
                if let value = answer[key], property.admits(value) { counts[value, default: 0] += 1 }
            }
            if let best = counts.max(by: { $0.value < $1.value || ($0.value == $1.value && $0.key > $1.key) }) {
                result[key] = best.key
            } else if let first = property.allowed?.first {
                result[key] = first
            } else {
                switch property.type {
                case .boolean: result[key] = .bool(false)
                case .integer, .number: result[key] = .number(0)
                case .string, nil: result[key] = .string("")
                }
            }
        }
        return result
    }

    /// A linear or one-hidden-layer student trained on hard targets with ``TrainingSession``, early-stopped on the
    /// validation cross-entropy when there are validation rows.
    func train(
        classes: Int, inputDimension: Int, train: (SparseMatrix, [Int]), validation: (SparseMatrix, [Int]),
        seed: UInt64
    ) throws -> StudentModel {
        let architecture = Architecture(
            family: config.family, hidden: config.hidden > 0 ? [config.hidden] : [], inputDimension: inputDimension,
            outputDimension: classes, sparseInput: true)
        func split(_ data: (SparseMatrix, [Int])) -> TrainingSplit {
            var targets = Matrix(rows: data.1.count, columns: classes)
            for (row, label) in data.1.enumerated() { targets[row, label] = 1 }
            return TrainingSplit(features: .sparse(data.0), teacherProbabilities: targets, hardLabels: data.1)
        }
        let trainSplit = split(train)
        let hasValidation = !validation.1.isEmpty
        let validationSplit = hasValidation ? split(validation) : trainSplit
        let options = TrainingOptions(
            epochs: config.epochs, batchSize: config.batchSize, learningRate: config.learningRate,
            patience: config.patience, loss: DistillationLoss(temperature: 1, alpha: 0),
            earlyStopping: hasValidation ? .agreement : .none)
        var session = TrainingSession(architecture: architecture, train: trainSplit, options: options, seed: seed)
        try session.train(untilEpoch: config.epochs, train: trainSplit, validation: validationSplit)
        return session.bestModel
    }
}

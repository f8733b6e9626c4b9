import Foundation
import RetortData

/// Reading `model.json`: every key checked, with what is wrong said in words (the key, what was expected, how to fix
/// it), before the typed decode, so a hand-edited or truncated manifest is an error and never a trap.
extension ModelBundle.Manifest {
    /// The allowed range of every number in model.json: wide enough for any exported student, narrow enough that
    /// layer sizes (`input × output`), tree sizes (`2^depth`) and bucket counts (`2^buckets_log2`) never overflow.
    enum Limits {
        /// Input dimension (hashed buckets, standardized columns, encoder width).
        static let inputDimension = 1...(1 << 24)
        /// Classes.
        static let outputDimension = 1...1_000_000
        /// A hidden width.
        static let width = 1...(1 << 20)
        /// Hidden layers.
        static let hiddenLayers = 8
        /// gbdt depth.
        static let depth = 1...16
        /// gbdt rounds.
        static let rounds = 1...100_000
        /// Hashed features: log2 of the bucket count.
        static let bucketsLog2 = 1...24
        /// Word and character n-gram lengths (0: that kind of n-gram is off).
        static let ngram = 0...16
        /// Encoder tokens per input.
        static let maxLength = 1...8192
        /// Encoder layers.
        static let layers = 1...128
    }

    /// Decodes model.json from `data`, read from `file`.
    static func decode(_ data: Data, file: String) throws(StudentError) -> ModelBundle.Manifest {
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: data) } catch {
            throw StudentError(
                "not valid JSON (\(DecodingProblem.syntax(error))); restore the file or export the model again",
                file: file, line: DecodingProblem.line(of: error, in: data))
        }
        try check(object, file: file)
        do {
            return try JSONDecoder().decode(ModelBundle.Manifest.self, from: data)
        } catch let error as DecodingError {
            throw StudentError(DecodingProblem.describe(error), file: file)
        } catch {
            throw StudentError("cannot be read as a Retort model manifest", file: file)
        }
    }

    /// Checks the keys whose values the typed decode would reject with a type dump, or accept and later trap on.
    static func check(_ object: Any, file: String) throws(StudentError) {
        func fail(_ message: String) -> StudentError { StudentError(message, file: file) }
        guard let top = object as? [String: Any] else {
            throw fail("expected a JSON object with family, precision, architecture, labels and featurizer")
        }
        func choice<T: RawRepresentable & CaseIterable>(
            _ value: Any?, key: String, what: String, of type: T.Type
        ) throws(StudentError) where T.RawValue == String {
            guard let value else { throw fail("missing key `\(key)`") }
            let names = T.allCases.map(\.rawValue)
            guard let text = value as? String, T(rawValue: text) != nil else {
                throw fail(
                    "key `\(key)`: unknown \(what) `\(value)` (expected one of \(names.joined(separator: ", ")))")
            }
        }
        func integer(_ value: Any?, key: String, in range: ClosedRange<Int>) throws(StudentError) -> Int? {
            guard let value, !(value is NSNull) else { return nil }
            guard let number = value as? NSNumber, !(value is String), type(of: value) != Bool.self,
                String(cString: number.objCType) != "c",
                let whole = Int(exactly: number.doubleValue)
            else {
                throw fail(
                    "key `\(key)`: expected a whole number in [\(range.lowerBound), \(range.upperBound)], got \(value)")
            }
            guard range.contains(whole) else {
                throw fail("key `\(key)`: must be in [\(range.lowerBound), \(range.upperBound)], got \(whole)")
            }
            return whole
        }
        try choice(top["family"], key: "family", what: "family", of: Family.self)
        try choice(top["precision"], key: "precision", what: "precision", of: Precision.self)
        guard let architecture = top["architecture"] as? [String: Any] else {
            throw fail("key `architecture`: expected an object with family, hidden, inputDimension, outputDimension")
        }
        try choice(architecture["family"], key: "architecture.family", what: "family", of: Family.self)
        _ = try integer(architecture["inputDimension"], key: "architecture.inputDimension", in: Limits.inputDimension)
        _ = try integer(
            architecture["outputDimension"], key: "architecture.outputDimension", in: Limits.outputDimension)
        guard let hidden = architecture["hidden"] as? [Any], hidden.count <= Limits.hiddenLayers else {
            throw fail("key `architecture.hidden`: expected a list of at most \(Limits.hiddenLayers) whole numbers")
        }
        if architecture["family"] as? String == Family.gbdt.rawValue {
            guard hidden.count == 2 else { throw fail("key `architecture.hidden`: a gbdt has [depth, rounds]") }
            _ = try integer(hidden[0], key: "architecture.hidden[0]", in: Limits.depth)
            _ = try integer(hidden[1], key: "architecture.hidden[1]", in: Limits.rounds)
        } else {
            for (index, width) in hidden.enumerated() {
                _ = try integer(width, key: "architecture.hidden[\(index)]", in: Limits.width)
            }
        }
        guard let labels = top["labels"] as? [Any], labels.allSatisfy({ $0 is String }) else {
            throw fail("key `labels`: expected a list of label strings")
        }
        guard let featurizer = top["featurizer"] as? [String: Any], featurizer["kind"] is String else {
            throw fail("key `featurizer`: expected an object with a kind (standardize, hashed-ngrams or encoder)")
        }
        let ranges: [(String, ClosedRange<Int>)] = [
            ("buckets_log2", Limits.bucketsLog2), ("max_word_ngram", Limits.ngram), ("min_char_ngram", Limits.ngram),
            ("max_char_ngram", Limits.ngram), ("dimension", Limits.inputDimension), ("max_length", Limits.maxLength),
            ("layers", Limits.layers),
        ]
        for (key, range) in ranges {
            _ = try integer(featurizer[key], key: "featurizer.\(key)", in: range)
        }
    }
}

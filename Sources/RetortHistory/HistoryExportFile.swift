import CZlib
import Foundation
import RetortData
import RetortSearch

extension HistoryExport {
    /// The export as `retort history export` writes it to a file or prints it: JSON with sorted keys, so the same
    /// runs give the same bytes. `path` names the output in the error.
    public func encoded(for path: String? = nil) throws(DataError) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        do { return try encoder.encode(self) } catch {
            throw DataError(.cannotCreateOutput, "cannot encode the export: \(error)", file: path)
        }
    }

    /// Writes ``encoded(for:)`` to `path`, gzip-compressed when `path` ends in `.gz` (written to a temporary file
    /// first, so a failed write leaves no half file behind).
    public func write(to path: String) throws(DataError) {
        let data = try encoded(for: path)
        if path.hasSuffix(".gz") {
            try Gzip.write(data, to: path)
        } else {
            do { try data.write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
                throw DataError(.cannotCreateOutput, "cannot write the export; is the folder writable?", file: path)
            }
        }
    }

    /// Reads an export written by `retort history export`, plain or gzip-compressed (told apart by its first bytes).
    public static func read(_ path: String) throws(DataError) -> HistoryExport {
        guard FileManager.default.fileExists(atPath: path) else {
            throw DataError(.missingInput, "cannot read the export: no such file", file: path)
        }
        let data = try Gzip.read(path)
        do { return try JSONDecoder().decode(HistoryExport.self, from: data) } catch {
            throw DataError(
                .badData, "not a Retort history export: \(DecodingProblem.describe(any: error))", file: path,
                line: DecodingProblem.line(of: error, in: data))
        }
    }

    /// The export without what learning and `retort history show` never read (see ``HistoryRun/compacted()``).
    public func compacted() -> HistoryExport {
        var copy = self
        copy.runs = runs.map { $0.compacted() }
        return copy
    }
}

extension HistoryRun {
    /// The run without what the history's readers never use: test figures, cascade curves, the selection and
    /// economics details, timings of the speed comparison, and the copy of each trial inside its rung records. Each
    /// candidate and rung keeps the primary metric's estimate, its gap to the teacher, size, FLOPs, latency, fidelity,
    /// status and prediction: everything ``HistoryPredictor``, ``Suggestion`` and the calibration read.
    public func compacted() -> HistoryRun {
        var copy = self
        let metric = report.primaryMetric
        func primaryOnly<Value>(_ metrics: [String: Value]) -> [String: Value] {
            metrics.filter { $0.key == metric }
        }
        copy.report.cascades = nil
        copy.report.selection = nil
        copy.report.economics = nil
        copy.report.speed = nil
        copy.report.recommendation.testMetrics = copy.report.recommendation.testMetrics.map { primaryOnly($0) }
        copy.report.teacher.metrics = primaryOnly(report.teacher.metrics)
        copy.report.teacher.validationMetrics = primaryOnly(report.teacher.validationMetrics)
        copy.report.candidates = report.candidates.map { trial in
            var trial = trial
            trial.metrics = primaryOnly(trial.metrics)
            trial.testMetrics = nil
            return trial
        }
        copy.rungs = rungs.map { rung in
            var rung = rung
            rung.trial = nil
            rung.metrics = rung.metrics.map { primaryOnly($0) }
            return rung
        }
        return copy
    }
}

/// Whole-file gzip through zlib's `gzFile` (which also reads an uncompressed file as it is).
enum Gzip {
    /// Writes `data` compressed at level 9 to `path`, through a temporary file renamed into place.
    static func write(_ data: Data, to path: String) throws(DataError) {
        let temporary = path + ".partial-\(ProcessInfo.processInfo.processIdentifier)"
        guard let file = gzopen(temporary, "wb9") else {
            throw DataError(.cannotCreateOutput, "cannot write the export; is the folder writable?", file: path)
        }
        var written = 0
        data.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return }
            while written < raw.count {
                let chunk = min(raw.count - written, 1 << 20)
                let count = gzwrite(file, base + written, UInt32(chunk))
                if count <= 0 { break }
                written += Int(count)
            }
        }
        let closed = gzclose(file)
        guard written == data.count, closed == Z_OK, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw DataError(.cannotCreateOutput, "cannot write the compressed export (disk full?)", file: path)
        }
    }

    /// The whole content of `path`, decompressed when it is gzip.
    static func read(_ path: String) throws(DataError) -> Data {
        guard let file = gzopen(path, "rb") else {
            throw DataError(.missingInput, "cannot read the export", file: path)
        }
        defer { gzclose(file) }
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = gzread(file, &buffer, UInt32(buffer.count))
            if count < 0 {
                throw DataError(.badData, "not a readable gzip file (truncated or corrupt)", file: path)
            }
            if count == 0 { break }
            data.append(buffer, count: Int(count))
        }
        return data
    }
}

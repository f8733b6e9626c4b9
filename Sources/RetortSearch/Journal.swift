import Foundation
import RetortData

/// An append-only JSONL journal: each record is one line, written and fsynced before `append` returns.
///
/// A write that fails (disk full, folder no longer writable) throws a located error and stops the search: the records
/// before it are intact, so `--resume` continues from the last good one.
///
/// `@unchecked Sendable`: the file descriptor and the byte and line counts are only touched while holding `lock`.
public final class Journal: @unchecked Sendable {
    /// The open journal file (internal for tests, which point it at a device that fails writes).
    let descriptor: Int32
    private let lock = NSLock()
    private let encoder: JSONEncoder
    /// Bytes of complete lines in the file.
    private var size: off_t
    /// Complete lines in the file.
    private var lines: Int
    /// The journal file.
    public let url: URL

    /// Opens (creating or appending to) the journal at `url`. A last line cut mid-write by a crash is cut off, so the
    /// records appended after it start on a line of their own.
    public init(url: URL) throws {
        self.url = url
        descriptor = open(url.path, O_RDWR | O_CREAT | O_APPEND, 0o644)
        guard descriptor >= 0 else {
            throw DataError(
                .cannotCreateOutput,
                "cannot open the journal (\(String(cString: strerror(errno)))); make its folder writable",
                file: url.relativePath)
        }
        let existing = FileManager.default.contents(atPath: url.path) ?? Data()
        let complete =
            existing.lastIndex(of: 0x0A).map { existing.distance(from: existing.startIndex, to: $0) + 1 } ?? 0
        size = off_t(complete)
        lines = existing.prefix(complete).reduce(0) { $1 == 0x0A ? $0 + 1 : $0 }
        if complete < existing.count { _ = ftruncate(descriptor, size) }
        encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    }

    deinit { close(descriptor) }

    /// Appends `record` as one JSON line and fsyncs (progress records that `--resume` does not need pass
    /// `sync: false`). A failed write throws a `FILE:LINE` error naming the line that could not be written and why;
    /// the bytes of a line written in part are cut off again when possible.
    public func append(_ record: some Encodable, sync: Bool = true) throws {
        var line = try encoder.encode(record)
        line.append(0x0A)
        try lock.withLock {
            // A short write is continued: the call after it returns the reason (no space, file too large).
            var written = 0
            var reason: Int32 = 0
            line.withUnsafeBytes { bytes in
                guard let base = bytes.baseAddress else { return }
                while written < bytes.count {
                    let count = write(descriptor, base + written, bytes.count - written)
                    if count > 0 {
                        written += count
                    } else if count < 0 && errno == EINTR {
                        continue
                    } else {
                        reason = count < 0 ? errno : EIO
                        return
                    }
                }
            }
            if written == line.count {
                size += off_t(written)
                lines += 1
                if !sync || fsync(descriptor) == 0 { return }
                throw failure(record: lines, "flushing it to disk failed (\(String(cString: strerror(errno))))")
            }
            // Part of the line went out: take it back so the journal ends on a whole record.
            if written > 0 { _ = ftruncate(descriptor, size) }
            let part = written > 0 ? " after \(written) of its \(line.count) bytes" : ""
            throw failure(record: lines + 1, "writing it failed\(part) (\(String(cString: strerror(reason))))")
        }
    }

    /// The error for a record that could not be journaled: where, why, and how to go on.
    private func failure(record: Int, _ why: String) -> DataError {
        let folder = url.deletingLastPathComponent().relativePath
        return DataError(
            .io,
            "cannot journal record \(record): \(why); the search stopped. Free disk space or make \(folder) writable, "
                + "then continue from the last good record with `retort search --resume \(folder)`",
            file: url.relativePath, line: record)
    }
}

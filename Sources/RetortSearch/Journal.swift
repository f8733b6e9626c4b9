import Foundation

/// An append-only JSONL journal: each record is one line, written and fsynced before `append` returns.
///
/// `@unchecked Sendable`: the file descriptor is only touched while holding `lock`.
public final class Journal: @unchecked Sendable {
    private let descriptor: Int32
    private let lock = NSLock()
    private let encoder: JSONEncoder
    /// The journal file.
    public let url: URL

    /// Opens (creating or appending to) the journal at `url`.
    public init(url: URL) throws {
        self.url = url
        descriptor = open(url.path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        guard descriptor >= 0 else {
            throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: url.path])
        }
        encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    }

    deinit { close(descriptor) }

    /// Appends `record` as one JSON line and fsyncs (progress records that `--resume` does not need pass
    /// `sync: false`).
    public func append(_ record: some Encodable, sync: Bool = true) throws {
        var line = try encoder.encode(record)
        line.append(0x0A)
        try lock.withLock {
            let written = line.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            guard written == line.count, !sync || fsync(descriptor) == 0 else {
                throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: url.path])
            }
        }
    }
}

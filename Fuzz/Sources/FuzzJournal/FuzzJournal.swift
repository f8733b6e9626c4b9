import Foundation
import FuzzSupport
import RetortSearch

/// libFuzzer entry: a search's journal.jsonl read as `retort search --resume` reads it.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    _ = try? JournalRecord.parse(FuzzInput(bytes, size).data, path: "journal.jsonl")
    return 0
}

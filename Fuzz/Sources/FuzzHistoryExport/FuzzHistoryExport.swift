import Foundation
import FuzzSupport
import RetortHistory

/// Where each input is written: `retort history import` reads an export from a file (plain or gzip, told apart by
/// its first bytes), so the harness does too.
let exportPath = NSTemporaryDirectory() + "fuzz-history-export-\(getpid()).json"

/// libFuzzer entry: a history export (`retort history export`, `history/starter.json.gz`) read as `retort history
/// import` and the starter import read it.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard FileManager.default.createFile(atPath: exportPath, contents: FuzzInput(bytes, size).data) else { return 0 }
    _ = try? HistoryExport.read(exportPath)
    return 0
}

import Foundation
import FuzzSupport
import RetortData

/// The row kinds the JSONL reader knows; a new kind (structured rows) is one more line here.
let rowKinds: [(name: String, parse: @Sendable (Data) throws -> Void)] = [
    ("label rows, train", { _ = try RowReader.parse($0, path: "train.jsonl", requireTeacher: true) }),
    ("label rows, test", { _ = try RowReader.parse($0, path: "test.jsonl", requireTeacher: false) }),
    ("structured rows", { _ = try RowReader.parseStructured($0, path: "train.jsonl", schema: nil) }),
]

/// libFuzzer entry: every row kind parses the input; a thrown error is a finding for the user, not a bug.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = FuzzInput(bytes, size)
    for kind in rowKinds { _ = try? kind.parse(input.data) }
    return 0
}

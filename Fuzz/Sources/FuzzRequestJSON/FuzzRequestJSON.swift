import Foundation
import FuzzSupport
import RetortTeacher

/// libFuzzer entry: a request body through the gateway's JSON reader; what parses is written back and must reparse
/// to the same value.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let value = try? JSON.parse(FuzzInput(bytes, size).data) else { return 0 }
    guard let again = try? JSON.parse(value.data), again == value else {
        fatalError("the JSON the gateway writes does not read back as the same value: \(value.text)")
    }
    return 0
}

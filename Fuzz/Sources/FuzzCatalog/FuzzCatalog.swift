import Foundation
import FuzzSupport
import RetortData
import RetortSearch

/// libFuzzer entry: a candidates/*.yaml catalog parsed and expanded.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let text = FuzzInput(bytes, size).utf8Text else { return 0 }
    _ = try? CandidateCatalog(YAMLValue.parse(text, file: "candidates.yaml"))
    return 0
}

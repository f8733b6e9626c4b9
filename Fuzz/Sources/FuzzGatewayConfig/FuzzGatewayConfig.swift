import Foundation
import FuzzSupport
import RetortTeacher

/// libFuzzer entry: a gateway.yaml parsed and validated as `retort gateway serve` would.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let text = FuzzInput(bytes, size).utf8Text else { return 0 }
    _ = try? GatewayConfig.parse(text, file: "gateway.yaml", folder: "/nonexistent")
    return 0
}

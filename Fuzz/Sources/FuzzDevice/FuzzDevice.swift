import Foundation
import FuzzSupport
import RetortData

/// libFuzzer entry: a devices/*.yaml profile.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let text = FuzzInput(bytes, size).utf8Text else { return 0 }
    _ = try? DeviceProfile(YAMLValue.parse(text, file: "device.yaml"))
    return 0
}

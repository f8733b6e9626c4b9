import Foundation
import FuzzSupport
import RetortStudents

/// libFuzzer entry: a model.safetensors file, every tensor read back as the student loaders read it.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let (tensors, _) = try? Safetensors.decode(FuzzInput(bytes, size).data, file: "model.safetensors") else {
        return 0
    }
    for tensor in tensors.values {
        _ = tensor.floats()
        _ = tensor.int8s()
        _ = tensor.int16s()
    }
    return 0
}

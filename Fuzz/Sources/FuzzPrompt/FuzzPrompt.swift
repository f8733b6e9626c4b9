import Foundation
import FuzzSupport
import RetortData
import RetortLabeling

/// libFuzzer entry: a labelling prompt file (FORMATS.md §7).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let text = FuzzInput(bytes, size).utf8Text else { return 0 }
    _ = try? LabelPrompt.load(
        YAMLValue.parse(text, file: "prompt.yaml"), at: URL(fileURLWithPath: "/nonexistent/prompt.yaml"))
    return 0
}

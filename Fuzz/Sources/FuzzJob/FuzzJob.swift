import Foundation
import FuzzSupport
import RetortData

/// libFuzzer entry: a job file (YAML or JSON) parsed and validated as `retort search --job` would.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let text = FuzzInput(bytes, size).utf8Text else { return 0 }
    _ = try? Job.load(YAMLValue.parse(text, file: "job.yaml"), at: URL(fileURLWithPath: "/nonexistent/job.yaml"))
    return 0
}

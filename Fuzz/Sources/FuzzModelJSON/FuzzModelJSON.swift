import Foundation
import FuzzSupport
import RetortData
import RetortStudents

/// libFuzzer entry: a model folder, model.json before the first NUL byte and model.safetensors after it; what loads
/// must run on an input.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let (manifest, weights) = FuzzInput(bytes, size).split
    guard
        let bundle = try? ModelBundle.load(
            manifest: manifest, weights: weights, folder: URL(fileURLWithPath: "/nonexistent/model"))
    else { return 0 }
    let input: ExampleInput
    if case .basic(.numeric(let standardizer)) = bundle.featurizer {
        input = .numeric([Float](repeating: 0.5, count: standardizer.mean.count))
    } else {
        input = .text("where is my order #1234?")
    }
    _ = try? bundle.probabilities(for: [input])
    return 0
}

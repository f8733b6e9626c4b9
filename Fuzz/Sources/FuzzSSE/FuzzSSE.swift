import Foundation
import FuzzSupport
import RetortTeacher

/// libFuzzer entry: a provider's event stream fed to the SSE reader in chunks of varying size (the first byte picks
/// the chunk size), which must give the same events as feeding it whole.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let data = FuzzInput(bytes, size).data
    guard let first = data.first else { return 0 }
    let stream = data.dropFirst()
    var whole = ServerSentEventParser()
    let expected = whole.feed(stream)
    var chunked = ServerSentEventParser()
    var events: [ServerSentEvent] = []
    let step = Int(first % 16) + 1
    var start = stream.startIndex
    while start < stream.endIndex {
        let end = min(start + step, stream.endIndex)
        events += chunked.feed(stream[start..<end])
        start = end
    }
    if events != expected { fatalError("chunked SSE parsing differs from whole: \(events) vs \(expected)") }
    return 0
}

import Foundation

/// One libFuzzer input: the bytes as `Data`, as text, and split into parts at NUL bytes (for harnesses that need
/// more than one file, such as model.json beside model.safetensors).
public struct FuzzInput {
    /// The raw bytes.
    public let data: Data

    /// Copies `size` bytes at `bytes` (libFuzzer may pass a null pointer with size 0).
    public init(_ bytes: UnsafePointer<UInt8>?, _ size: Int) {
        if let bytes, size > 0 { data = Data(bytes: bytes, count: size) } else { data = Data() }
    }

    /// The bytes decoded as UTF-8 (invalid sequences become U+FFFD, as a file read leniently would).
    public var text: String { String(decoding: data, as: UTF8.self) }

    /// The bytes as UTF-8 text, or nil when they are not valid UTF-8 (the YAML loaders refuse such files before
    /// parsing, so their harnesses skip them).
    public var utf8Text: String? { String(data: data, encoding: .utf8) }

    /// The bytes before the first NUL and those after it (empty when there is none).
    public var split: (head: Data, tail: Data) {
        guard let nul = data.firstIndex(of: 0) else { return (data, Data()) }
        return (data[data.startIndex..<nul], data[(nul + 1)...])
    }
}

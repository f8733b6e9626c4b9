import Foundation

/// A tensor for the safetensors format: dtype, shape and raw little-endian bytes.
public struct Tensor: Sendable, Equatable {
    /// Element type.
    public enum DType: String, Sendable {
        /// 32-bit IEEE float.
        case f32 = "F32"
        /// IEEE half-precision float.
        case f16 = "F16"
        /// Signed 8-bit integer.
        case i8 = "I8"
        /// Signed 16-bit integer.
        case i16 = "I16"
        /// Signed 32-bit integer (the `nearest` student's index).
        case i32 = "I32"
        /// Signed 64-bit integer (read, e.g. the position ids BERT checkpoints carry; never written by Retort).
        case i64 = "I64"

        var byteWidth: Int {
            switch self {
            case .f32: 4
            case .f16: 2
            case .i8: 1
            case .i16: 2
            case .i32: 4
            case .i64: 8
            }
        }
    }

    /// Element type.
    public var dtype: DType
    /// Shape.
    public var shape: [Int]
    /// Raw bytes (little-endian).
    public var bytes: Data

    /// An F32 tensor.
    public init(_ values: [Float], shape: [Int]) {
        precondition(values.count == shape.reduce(1, *), "shape does not match the element count")
        dtype = .f32
        self.shape = shape
        bytes = values.withUnsafeBufferPointer { Data(buffer: $0) }
    }

    /// An I8 tensor.
    public init(_ values: [Int8], shape: [Int]) {
        precondition(values.count == shape.reduce(1, *), "shape does not match the element count")
        dtype = .i8
        self.shape = shape
        bytes = values.withUnsafeBufferPointer { Data(buffer: $0) }
    }

    /// An F16 tensor.
    public init(_ values: [Float16], shape: [Int]) {
        precondition(values.count == shape.reduce(1, *), "shape does not match the element count")
        dtype = .f16
        self.shape = shape
        bytes = values.withUnsafeBufferPointer { Data(buffer: $0) }
    }

    /// The elements as floats (F32, or F16 widened).
    public func floats() -> [Float]? {
        switch dtype {
        case .f32: return bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        case .f16: return bytes.withUnsafeBytes { $0.bindMemory(to: Float16.self).map(Float.init) }
        case .i8, .i16, .i32, .i64: return nil
        }
    }

    /// An I16 tensor.
    public init(_ values: [Int16], shape: [Int]) {
        precondition(values.count == shape.reduce(1, *), "shape does not match the element count")
        dtype = .i16
        self.shape = shape
        bytes = values.withUnsafeBufferPointer { Data(buffer: $0) }
    }

    /// The elements as int16 (I16 only).
    public func int16s() -> [Int16]? {
        guard dtype == .i16 else { return nil }
        return bytes.withUnsafeBytes { Array($0.bindMemory(to: Int16.self)) }
    }

    /// An I32 tensor.
    public init(_ values: [Int32], shape: [Int]) {
        precondition(values.count == shape.reduce(1, *), "shape does not match the element count")
        dtype = .i32
        self.shape = shape
        bytes = values.withUnsafeBufferPointer { Data(buffer: $0) }
    }

    /// The elements as int32 (I32 only).
    public func int32s() -> [Int32]? {
        guard dtype == .i32 else { return nil }
        return bytes.withUnsafeBytes { Array($0.bindMemory(to: Int32.self)) }
    }

    /// The elements as int8 (I8 only).
    public func int8s() -> [Int8]? {
        guard dtype == .i8 else { return nil }
        return bytes.withUnsafeBytes { Array($0.bindMemory(to: Int8.self)) }
    }
}

/// The safetensors file format: an 8-byte little-endian header length, a JSON header mapping each tensor name to
/// `{"dtype", "shape", "data_offsets": [begin, end]}` (plus optional `"__metadata__"` strings), then the raw bytes.
public enum Safetensors {
    /// Serializes `tensors` (in name order) with `metadata`.
    public static func encode(_ tensors: [String: Tensor], metadata: [String: String] = [:]) throws -> Data {
        var header: [String: Any] = [:]
        var body = Data()
        for (name, tensor) in tensors.sorted(by: { $0.key < $1.key }) {
            header[name] = [
                "dtype": tensor.dtype.rawValue, "shape": tensor.shape,
                "data_offsets": [body.count, body.count + tensor.bytes.count],
            ]
            body.append(tensor.bytes)
        }
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }
        var length = UInt64(json.count).littleEndian
        var data = Data(bytes: &length, count: 8)
        data.append(json)
        data.append(body)
        return data
    }

    /// Parses a safetensors file, checking every offset against the file size.
    public static func decode(_ data: Data, file: String) throws(StudentError) -> (
        tensors: [String: Tensor], metadata: [String: String]
    ) {
        guard data.count >= 8 else { throw StudentError("too short to be a safetensors file", file: file) }
        let length = data.prefix(8).enumerated().reduce(UInt64(0)) {
            $0 | (UInt64($1.element) << (8 * UInt64($1.offset)))
        }
        guard length <= UInt64(data.count - 8) else {
            throw StudentError(
                "header length \(length) exceeds the file size; the file is truncated or not safetensors", file: file)
        }
        let headerEnd = 8 + Int(length)
        let headerData = data.subdata(in: (data.startIndex + 8)..<(data.startIndex + headerEnd))
        guard let header = try? JSONSerialization.jsonObject(with: headerData) as? [String: Any] else {
            throw StudentError("the safetensors header is not a JSON object", file: file)
        }
        var tensors: [String: Tensor] = [:]
        var metadata: [String: String] = [:]
        let bodyCount = data.count - headerEnd
        for (name, value) in header {
            if name == "__metadata__" {
                metadata = value as? [String: String] ?? [:]
                continue
            }
            guard let entry = value as? [String: Any], let dtypeName = entry["dtype"] as? String,
                let dtype = Tensor.DType(rawValue: dtypeName), let shape = entry["shape"] as? [Int],
                let offsets = entry["data_offsets"] as? [Int], offsets.count == 2, offsets[0] >= 0,
                offsets[0] <= offsets[1], offsets[1] <= bodyCount,
                let bytes = byteCount(shape: shape, width: dtype.byteWidth), offsets[1] - offsets[0] == bytes
            else {
                throw StudentError(
                    "tensor \"\(name)\" has a bad header entry: dtype (F32, F16, I8, I16, I32 or I64), shape (sizes ≥ 0) and data_offsets [begin, end] must agree and lie inside the file",
                    file: file)
            }
            let start = data.startIndex + headerEnd
            tensors[name] = Tensor(
                dtype: dtype, shape: shape, bytes: data.subdata(in: (start + offsets[0])..<(start + offsets[1])))
        }
        return (tensors, metadata)
    }
}

extension Safetensors {
    /// Bytes of a tensor of `shape` with elements of `width` bytes, or nil when a size is negative or the product
    /// overflows (a corrupt header).
    static func byteCount(shape: [Int], width: Int) -> Int? {
        var total = width
        for size in shape {
            guard size >= 0 else { return nil }
            let (product, overflow) = total.multipliedReportingOverflow(by: size)
            guard !overflow else { return nil }
            total = product
        }
        return total
    }
}

extension Tensor {
    init(dtype: DType, shape: [Int], bytes: Data) {
        self.dtype = dtype
        self.shape = shape
        self.bytes = bytes
    }
}

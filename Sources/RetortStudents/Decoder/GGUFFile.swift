import Foundation
import RetortNumerics

/// A GGUF file (llama.cpp's model format, versions 2 and 3): the metadata key/values, the tensor table and the tensor
/// data, read from memory with every offset and size checked, so a truncated or damaged file is a ``StudentError``
/// naming the file and what is wrong, never a trap.
///
/// Layout: `"GGUF"`, version (u32), tensor count and metadata count (u64), the metadata (key string, value type u32,
/// value), the tensor infos (name, dimension count u32, dimensions u64 with the fastest-varying first, type u32, offset
/// u64 from the data section), then padding to ``alignment`` (metadata `general.alignment`, default 32) and the data.
/// Strings are a u64 byte count and UTF-8 bytes; everything is little-endian.
public struct GGUFFile: Sendable {
    /// One metadata value.
    public enum Value: Sendable, Equatable {
        /// Value type 0.
        case uint8(UInt8)
        /// Value type 1.
        case int8(Int8)
        /// Value type 2.
        case uint16(UInt16)
        /// Value type 3.
        case int16(Int16)
        /// Value type 4.
        case uint32(UInt32)
        /// Value type 5.
        case int32(Int32)
        /// Value type 6.
        case float32(Float)
        /// Value type 7.
        case bool(Bool)
        /// Value type 8.
        case string(String)
        /// Value type 9: elements of one type (nested arrays allowed).
        case array([Value])
        /// Value type 10.
        case uint64(UInt64)
        /// Value type 11.
        case int64(Int64)
        /// Value type 12.
        case float64(Double)

        /// The value as an integer, when it is one of the integer types (or a bool).
        public var integer: Int? {
            switch self {
            case .uint8(let v): Int(v)
            case .int8(let v): Int(v)
            case .uint16(let v): Int(v)
            case .int16(let v): Int(v)
            case .uint32(let v): Int(v)
            case .int32(let v): Int(v)
            case .uint64(let v): Int(exactly: v)
            case .int64(let v): Int(v)
            case .bool(let v): v ? 1 : 0
            default: nil
            }
        }

        /// The value as a floating-point number, when it is a number.
        public var double: Double? {
            switch self {
            case .float32(let v): Double(v)
            case .float64(let v): v
            default: integer.map(Double.init)
            }
        }

        /// The value as a string, when it is one.
        public var string: String? {
            if case .string(let v) = self { v } else { nil }
        }

        /// The elements, when the value is an array.
        public var array: [Value]? {
            if case .array(let v) = self { v } else { nil }
        }
    }

    /// Tensor element types (ggml's `ggml_type` numbering). Only some can be dequantized (``isSupported``).
    public enum TensorType: UInt32, Sendable, CaseIterable {
        /// 32-bit floats.
        case f32 = 0
        /// 16-bit floats.
        case f16 = 1
        /// Blocks of 32: an f16 scale `d`, 16 bytes of 4-bit codes; `x = (q − 8)·d`.
        case q4_0 = 2
        /// Blocks of 32: f16 `d` and `m`, 16 bytes of 4-bit codes; `x = q·d + m`.
        case q4_1 = 3
        /// Blocks of 32 (5-bit).
        case q5_0 = 6
        /// Blocks of 32 (5-bit with a minimum).
        case q5_1 = 7
        /// Blocks of 32: an f16 scale `d`, 32 signed bytes; `x = q·d`.
        case q8_0 = 8
        /// Blocks of 32 (8-bit with a sum).
        case q8_1 = 9
        /// Super-blocks of 256 (2-bit).
        case q2_K = 10
        /// Super-blocks of 256 (3-bit).
        case q3_K = 11
        /// Super-blocks of 256 (4-bit).
        case q4_K = 12
        /// Super-blocks of 256 (5-bit).
        case q5_K = 13
        /// Super-blocks of 256 (6-bit).
        case q6_K = 14
        /// Super-blocks of 256 (8-bit).
        case q8_K = 15
        /// Bytes.
        case i8 = 24
        /// 16-bit integers.
        case i16 = 25
        /// 32-bit integers.
        case i32 = 26
        /// 64-bit integers.
        case i64 = 27
        /// 64-bit floats.
        case f64 = 28
        /// bfloat16.
        case bf16 = 30

        /// Elements per block and bytes per block.
        public var block: (elements: Int, bytes: Int) {
            switch self {
            case .f32, .i32: (1, 4)
            case .f16, .bf16, .i16: (1, 2)
            case .i8: (1, 1)
            case .i64, .f64: (1, 8)
            case .q4_0: (32, 18)
            case .q4_1: (32, 20)
            case .q5_0: (32, 22)
            case .q5_1: (32, 24)
            case .q8_0: (32, 34)
            case .q8_1: (32, 36)
            case .q2_K: (256, 84)
            case .q3_K: (256, 110)
            case .q4_K: (256, 144)
            case .q5_K: (256, 176)
            case .q6_K: (256, 210)
            case .q8_K: (256, 292)
            }
        }

        /// Whether ``GGUFFile/floats(_:)`` can dequantize it (F32, F16, BF16, Q4_0, Q4_1, Q8_0).
        public var isSupported: Bool { [.f32, .f16, .bf16, .q4_0, .q4_1, .q8_0].contains(self) }

        /// ggml's name (`Q4_1`, `F32`, ...).
        public var name: String { "\(self)".uppercased() }
    }

    /// One tensor's entry in the table.
    public struct TensorInfo: Sendable, Equatable {
        /// Its name (`blk.0.attn_q.weight`).
        public let name: String
        /// Dimensions, fastest-varying first (ggml's `ne`): a `rows × columns` matrix is `[columns, rows]`.
        public let dimensions: [Int]
        /// Element type.
        public let type: TensorType
        /// Byte offset of its data from the start of the file.
        public let offset: Int
        /// Elements.
        public var elementCount: Int { dimensions.reduce(1, *) }
        /// Bytes of data.
        public var byteCount: Int { elementCount / type.block.elements * type.block.bytes }
    }

    /// The format version (2 or 3).
    public let version: Int
    /// Metadata, by key.
    public let metadata: [String: Value]
    /// Metadata keys in file order.
    public let metadataKeys: [String]
    /// Tensor infos in file order.
    public let tensorInfos: [TensorInfo]
    /// Data alignment in bytes.
    public let alignment: Int
    /// Where the data section starts.
    public let dataOffset: Int
    /// The path used in error messages.
    public let file: String
    private let data: Data
    private let index: [String: Int]

    /// Reads (memory-maps when it can) the file at `url`.
    public init(url: URL) throws(StudentError) {
        guard let data = try? Data(contentsOf: url, options: .mappedIfSafe) else {
            throw StudentError(
                "cannot read the GGUF file; check the path (`make models` fetches SmolLM2)", file: url.path)
        }
        self = try Self.read(data, file: url.path)
    }

    /// Parses a GGUF file held in `data`; `file` names it in errors.
    public static func read(_ data: Data, file: String = "<memory>") throws(StudentError) -> GGUFFile {
        var reader = Reader(data: data, file: file)
        guard data.count >= 4, data.prefix(4).elementsEqual("GGUF".utf8) else {
            throw StudentError("not a GGUF file: bad magic (the first 4 bytes are not \"GGUF\")", file: file)
        }
        reader.position = 4
        let version = Int(try reader.u32("the version"))
        guard version == 2 || version == 3 else {
            throw StudentError(
                "GGUF version \(version) is not supported (2 and 3 are); re-convert the model", file: file)
        }
        let tensorCount = try reader.count("the tensor count", limit: 1 << 20)
        let keyCount = try reader.count("the metadata count", limit: 1 << 20)
        var metadata: [String: Value] = [:]
        var keys: [String] = []
        for _ in 0..<keyCount {
            let key = try reader.string("a metadata key")
            let type = try reader.u32("the type of \"\(key)\"")
            let value = try reader.value(type: type, key: key, depth: 0)
            guard metadata.updateValue(value, forKey: key) == nil else {
                throw StudentError("metadata key \"\(key)\" appears twice", file: file)
            }
            keys.append(key)
        }
        var alignment = 32
        if let value = metadata["general.alignment"] {
            guard let a = value.integer, a > 0, a <= 1 << 20, a & (a - 1) == 0 else {
                throw StudentError("general.alignment must be a power of two, got \(value)", file: file)
            }
            alignment = a
        }
        var raw: [(name: String, dimensions: [Int], type: TensorType, offset: Int)] = []
        for _ in 0..<tensorCount {
            let name = try reader.string("a tensor name")
            let rank = Int(try reader.u32("the dimension count of \"\(name)\""))
            guard (1...4).contains(rank) else {
                throw StudentError("tensor \"\(name)\" has \(rank) dimensions; GGUF allows 1 to 4", file: file)
            }
            var dimensions: [Int] = []
            var elements = 1
            for _ in 0..<rank {
                let d = try reader.count("a dimension of \"\(name)\"", limit: 1 << 40)
                guard d > 0, elements.multipliedReportingOverflow(by: d).overflow == false,
                    elements * d <= 1 << 40
                else { throw StudentError("tensor \"\(name)\" has an impossible shape", file: file) }
                elements *= d
                dimensions.append(d)
            }
            let code = try reader.u32("the type of \"\(name)\"")
            guard let type = TensorType(rawValue: code) else {
                throw StudentError("tensor \"\(name)\" has unknown type \(code)", file: file)
            }
            guard dimensions[0] % type.block.elements == 0 else {
                throw StudentError(
                    "tensor \"\(name)\" (\(type.name)) has a row of \(dimensions[0]), not a multiple of its block of "
                        + "\(type.block.elements)", file: file)
            }
            let offset = try reader.count("the offset of \"\(name)\"", limit: 1 << 50)
            guard offset % alignment == 0 else {
                throw StudentError("tensor \"\(name)\" starts at \(offset), not a multiple of \(alignment)", file: file)
            }
            raw.append((name, dimensions, type, offset))
        }
        let dataOffset = (reader.position + alignment - 1) / alignment * alignment
        var infos: [TensorInfo] = []
        var index: [String: Int] = [:]
        for entry in raw {
            let info = TensorInfo(
                name: entry.name, dimensions: entry.dimensions, type: entry.type, offset: dataOffset + entry.offset)
            guard info.offset + info.byteCount <= data.count else {
                throw StudentError(
                    "truncated: tensor \"\(info.name)\" needs bytes \(info.offset)..<\(info.offset + info.byteCount) "
                        + "but the file has \(data.count); download it again", file: file)
            }
            guard index.updateValue(infos.count, forKey: info.name) == nil else {
                throw StudentError("tensor \"\(info.name)\" appears twice", file: file)
            }
            infos.append(info)
        }
        return GGUFFile(
            version: version, metadata: metadata, metadataKeys: keys, tensorInfos: infos, alignment: alignment,
            dataOffset: dataOffset, file: file, data: data, index: index)
    }

    private init(
        version: Int, metadata: [String: Value], metadataKeys: [String], tensorInfos: [TensorInfo], alignment: Int,
        dataOffset: Int, file: String, data: Data, index: [String: Int]
    ) {
        (self.version, self.metadata, self.metadataKeys, self.tensorInfos) = (
            version, metadata, metadataKeys, tensorInfos
        )
        (self.alignment, self.dataOffset, self.file, self.data, self.index) = (alignment, dataOffset, file, data, index)
    }

    /// The tensor named `name`, if the file has it.
    public func tensor(_ name: String) -> TensorInfo? { index[name].map { tensorInfos[$0] } }

    /// The raw bytes of a tensor.
    public func bytes(_ name: String) throws(StudentError) -> Data {
        guard let info = tensor(name) else { throw StudentError("no tensor \"\(name)\"", file: file) }
        let start = data.startIndex + info.offset
        return data[start..<(start + info.byteCount)]
    }

    /// A tensor's elements dequantized to fp32, fastest-varying dimension first (row-major for a matrix).
    public func floats(_ name: String) throws(StudentError) -> [Float] {
        guard let info = tensor(name) else { throw StudentError("no tensor \"\(name)\"", file: file) }
        guard info.type.isSupported else {
            throw StudentError(
                "tensor \"\(name)\" is \(info.type.name), which Retort cannot dequantize (F32, F16, BF16, Q4_0, Q4_1 "
                    + "and Q8_0 only); use such a quantization of the model", file: file)
        }
        let count = info.elementCount
        return data.withUnsafeBytes { (buffer: UnsafeRawBufferPointer) -> [Float] in
            let base = UnsafeRawBufferPointer(rebasing: buffer[info.offset..<(info.offset + info.byteCount)])
            return [Float](unsafeUninitializedCapacity: count) { out, initialized in
                Self.dequantize(info.type, from: base, into: out)
                initialized = count
            }
        }
    }

    /// A 2-D tensor as a `rows × columns` matrix (`dimensions == [columns, rows]`), checked against the shape wanted.
    public func matrix(_ name: String, rows: Int, columns: Int) throws(StudentError) -> Matrix {
        guard let info = tensor(name) else {
            throw StudentError("no tensor \"\(name)\"; is this a Llama-architecture model?", file: file)
        }
        guard info.dimensions == [columns, rows] || (rows == 1 && info.dimensions == [columns]) else {
            throw StudentError(
                "tensor \"\(name)\" has dimensions \(info.dimensions), expected [\(columns), \(rows)]", file: file)
        }
        return Matrix(rows: rows, columns: columns, storage: try floats(name))
    }

    /// Decodes blocks of `type` from `source` into `out` (`out.count` elements).
    static func dequantize(
        _ type: TensorType, from source: UnsafeRawBufferPointer, into out: UnsafeMutableBufferPointer<Float>
    ) {
        func half(_ offset: Int) -> Float {
            Float(Float16(bitPattern: source.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
        }
        switch type {
        case .f32:
            for i in 0..<out.count { out[i] = source.loadUnaligned(fromByteOffset: 4 * i, as: Float.self) }
        case .f16:
            for i in 0..<out.count { out[i] = half(2 * i) }
        case .bf16:
            for i in 0..<out.count {
                let bits = UInt32(source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16
                out[i] = Float(bitPattern: bits)
            }
        case .q8_0:
            for block in 0..<(out.count / 32) {
                let at = block * 34
                let d = half(at)
                for j in 0..<32 { out[block * 32 + j] = Float(Int8(bitPattern: source[at + 2 + j])) * d }
            }
        case .q4_0, .q4_1:
            let (size, codes) = type == .q4_0 ? (18, 2) : (20, 4)
            for block in 0..<(out.count / 32) {
                let at = block * size
                let d = half(at)
                let m = type == .q4_0 ? -8 * d : half(at + 2)
                for j in 0..<16 {
                    let q = source[at + codes + j]
                    out[block * 32 + j] = Float(q & 0x0F) * d + m
                    out[block * 32 + j + 16] = Float(q >> 4) * d + m
                }
            }
        default:
            break
        }
    }

    /// An integer metadata value, or an error naming the key.
    public func integer(_ key: String) throws(StudentError) -> Int {
        guard let value = metadata[key]?.integer else {
            throw StudentError("metadata \"\(key)\" is missing or not an integer", file: file)
        }
        return value
    }

    /// A numeric metadata value, or an error naming the key.
    public func double(_ key: String) throws(StudentError) -> Double {
        guard let value = metadata[key]?.double else {
            throw StudentError("metadata \"\(key)\" is missing or not a number", file: file)
        }
        return value
    }

    /// A string metadata value, or an error naming the key.
    public func string(_ key: String) throws(StudentError) -> String {
        guard let value = metadata[key]?.string else {
            throw StudentError("metadata \"\(key)\" is missing or not a string", file: file)
        }
        return value
    }

    /// A little-endian cursor whose every read is bounds-checked.
    private struct Reader {
        let data: Data
        let file: String
        var position = 0

        mutating func take(_ count: Int, _ what: String) throws(StudentError) -> Data {
            guard count >= 0, count <= data.count - position else {
                throw StudentError(
                    "truncated: \(what) needs \(count) bytes at offset \(position) but the file has \(data.count)",
                    file: file)
            }
            let start = data.startIndex + position
            position += count
            return data[start..<(start + count)]
        }

        mutating func load<T: FixedWidthInteger>(_ type: T.Type, _ what: String) throws(StudentError) -> T {
            let bytes = try take(MemoryLayout<T>.size, what)
            var value = T.zero
            for (shift, byte) in bytes.enumerated() { value |= T(truncatingIfNeeded: byte) << (8 * shift) }
            return value
        }

        mutating func u32(_ what: String) throws(StudentError) -> UInt32 { try load(UInt32.self, what) }

        mutating func count(_ what: String, limit: Int) throws(StudentError) -> Int {
            let value = try load(UInt64.self, what)
            guard value <= UInt64(limit) else {
                throw StudentError(
                    "\(what) is \(value), more than the \(limit) allowed; is the file truncated or damaged?", file: file
                )
            }
            return Int(value)
        }

        mutating func string(_ what: String) throws(StudentError) -> String {
            let length = try count("the length of \(what)", limit: 1 << 30)
            let bytes = try take(length, what)
            guard let text = String(data: bytes, encoding: .utf8) else {
                throw StudentError("\(what) at offset \(position - length) is not UTF-8", file: file)
            }
            return text
        }

        mutating func value(type: UInt32, key: String, depth: Int) throws(StudentError) -> Value {
            let what = "the value of \"\(key)\""
            switch type {
            case 0: return .uint8(try load(UInt8.self, what))
            case 1: return .int8(try load(Int8.self, what))
            case 2: return .uint16(try load(UInt16.self, what))
            case 3: return .int16(try load(Int16.self, what))
            case 4: return .uint32(try load(UInt32.self, what))
            case 5: return .int32(try load(Int32.self, what))
            case 6: return .float32(Float(bitPattern: try load(UInt32.self, what)))
            case 7:
                let byte = try load(UInt8.self, what)
                guard byte <= 1 else { throw StudentError("\(what) is a bool of \(byte), not 0 or 1", file: file) }
                return .bool(byte == 1)
            case 8: return .string(try string(what))
            case 9:
                guard depth < 8 else { throw StudentError("\(what) nests arrays too deeply", file: file) }
                let elementType = try u32("the element type of \"\(key)\"")
                let count = try self.count("the length of \"\(key)\"", limit: data.count - position)
                var elements: [Value] = []
                elements.reserveCapacity(count)
                for _ in 0..<count { elements.append(try value(type: elementType, key: key, depth: depth + 1)) }
                return .array(elements)
            case 10: return .uint64(try load(UInt64.self, what))
            case 11: return .int64(try load(Int64.self, what))
            case 12: return .float64(Double(bitPattern: try load(UInt64.self, what)))
            default:
                throw StudentError(
                    "metadata \"\(key)\" has unknown value type \(type); is the file damaged?", file: file)
            }
        }
    }
}

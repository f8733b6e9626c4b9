import Foundation

/// A deployment target (`devices/*.yaml`): sustained FLOP/s, the memory a model may take, and a price.
///
/// ```yaml
/// name: phone
/// flops_per_second: 4.0e9
/// memory_bytes: 8MB
/// usd_per_hour: 0.05        # optional
/// ```
public struct DeviceProfile: Sendable, Equatable, Codable {
    /// Name.
    public var name: String
    /// Sustained single-precision FLOP/s.
    public var flopsPerSecond: Double
    /// Largest model the device takes, bytes.
    public var memoryBytes: Int
    /// Price of an hour of the device, where it applies.
    public var usdPerHour: Double?

    enum CodingKeys: String, CodingKey {
        case name
        case flopsPerSecond = "flops_per_second"
        case memoryBytes = "memory_bytes"
        case usdPerHour = "usd_per_hour"
    }

    /// Parses a profile.
    public init(_ value: YAMLValue) throws(DataError) {
        let fields = try value.mapping(
            allowed: ["name", "flops_per_second", "memory_bytes", "usd_per_hour"],
            required: ["name", "flops_per_second", "memory_bytes"])
        guard let name = fields["name"], let flops = fields["flops_per_second"], let memory = fields["memory_bytes"]
        else {
            throw value.error("a device needs name, flops_per_second and memory_bytes")
        }
        self.name = try name.string()
        flopsPerSecond = try flops.double(in: .positive(upTo: 1e18), unit: "FLOP/s")
        memoryBytes = try memory.byteSize(in: 1...ByteSize.maximum)
        usdPerHour = try fields["usd_per_hour"]?.double(in: JobLimits.usdPerHour, unit: "USD")
    }

    /// The built-in profiles (the same text as devices/*.yaml).
    public static let builtIn: [String: String] = [
        "phone": "name: phone\nflops_per_second: 4.0e9\nmemory_bytes: 8MB\n",
        "edge-cpu": "name: edge-cpu\nflops_per_second: 1.0e9\nmemory_bytes: 2MB\n",
        "server-vcpu": "name: server-vcpu\nflops_per_second: 5.0e10\nmemory_bytes: 512MB\nusd_per_hour: 0.05\n",
    ]

    /// A profile by built-in name, or from a YAML file path.
    public static func named(_ nameOrPath: String) throws(DataError) -> DeviceProfile {
        if let text = builtIn[nameOrPath] {
            return try DeviceProfile(try YAMLValue.parse(text, file: "devices/\(nameOrPath).yaml"))
        }
        guard FileManager.default.fileExists(atPath: nameOrPath) else {
            throw DataError(
                .usage,
                "unknown device \"\(nameOrPath)\"; use \(builtIn.keys.sorted().joined(separator: ", ")) or a devices/*.yaml file"
            )
        }
        return try DeviceProfile(try YAMLValue.load(URL(fileURLWithPath: nameOrPath)))
    }
}

import Foundation
import RetortData
import Testing

@Suite struct DeviceProfileTests {
    @Test("the built-in device profiles are the files in devices/")
    func builtInMatchesFiles() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        for name in DeviceProfile.builtIn.keys.sorted() {
            let file = try DeviceProfile(try YAMLValue.load(root.appendingPathComponent("devices/\(name).yaml")))
            #expect(try DeviceProfile.named(name) == file)
            #expect(file.name == name && file.flopsPerSecond > 0 && file.memoryBytes > 0)
        }
        #expect(try DeviceProfile.named("phone").memoryBytes == 8_000_000)
    }

    @Test("a bad profile names the key and line; an unknown device lists the known ones")
    func badProfiles() {
        #expect {
            try DeviceProfile(try YAMLValue.parse("name: x\nflops_per_second: -1\nmemory_bytes: 1MB\n", file: "d.yaml"))
        } throws: { error in (error as? DataError)?.line == 2 }
        #expect {
            try DeviceProfile(try YAMLValue.parse("name: x\nflops: 1e9\nmemory_bytes: 1MB\n", file: "d.yaml"))
        } throws: { error in (error as? DataError)?.description.contains("flops") == true }
        #expect {
            try DeviceProfile.named("toaster")
        } throws: { error in (error as? DataError)?.message.contains("phone") == true }
    }
}

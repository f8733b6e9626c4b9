import RetortData
import RetortTestSupport
import Testing

/// Sizes and durations as users write them in job files and flags.
@Suite struct SizeAndDurationTests {
    @Test(
        "sizes: plain bytes, decimal KB/MB/GB and binary KiB/MiB",
        arguments: [
            ("500KB", 500_000), ("1.5MB", 1_500_000), ("2MiB", 2_097_152), ("512KiB", 524_288), ("2MB", 2_000_000),
            ("1GB", 1_000_000_000), ("2000000", 2_000_000), ("10", 10), ("0", 0), ("812 B", 812), (" 2 mb ", 2_000_000),
        ])
    func byteSizes(text: String, bytes: Int) {
        #expect(ByteSize.parse(text) == bytes)
    }

    @Test("text that is not a size is rejected", arguments: ["lots", "", "-5", "MB", "1.5XB", "inf", "nan"])
    func notSizes(text: String) {
        #expect(ByteSize.parse(text) == nil)
    }

    @Test(
        "durations: seconds, s, m, ms and h",
        arguments: [
            ("120", 120.0), ("120s", 120), ("2m", 120), ("500ms", 0.5), ("1.5m", 90), ("1h", 3600), ("0.25", 0.25),
        ])
    func durations(text: String, seconds: Double) throws {
        let parsed = try #require(DurationText.parse(text))
        #expect(approximatelyEqual(parsed, seconds, within: 1e-9))
    }

    @Test("text that is not a duration is rejected", arguments: ["soon", "", "-3s", "2 minutes", "ms"])
    func notDurations(text: String) {
        #expect(DurationText.parse(text) == nil)
    }

    @Test("sizes print in short human form")
    func formatSizes() {
        #expect(ByteSize.format(812) == "812 B")
        #expect(ByteSize.format(44_100) == "44.1 KB")
        #expect(ByteSize.format(2_500_000) == "2.50 MB")
    }
}

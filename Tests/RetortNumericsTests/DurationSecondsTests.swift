import RetortNumerics
import Testing

@Suite struct DurationSecondsTests {
    @Test func secondsAndMilliseconds() {
        #expect(Duration.milliseconds(1500).inSeconds == 1.5)
        #expect(Duration.milliseconds(1500).inMilliseconds == 1500)
        #expect(abs(Duration.nanoseconds(1).inSeconds - 1e-9) < 1e-21)
        #expect(Duration.seconds(0).inSeconds == 0)
    }

    /// A negative duration's whole seconds and attoseconds share its sign, so the sum is the signed value.
    @Test func negative() {
        #expect(Duration.milliseconds(-1500).inSeconds == -1.5)
        #expect(abs(Duration.nanoseconds(-250).inMilliseconds + 0.00025) < 1e-15)
    }
}

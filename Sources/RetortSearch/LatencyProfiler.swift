import Foundation
import RetortData
import RetortNumerics
import RetortStudents

/// Measured latency of one student, end to end on raw inputs (featurize + predict).
public struct LatencyProfile: Sendable, Equatable {
    /// Median single-input latency, ms.
    public var p50: Double
    /// 95th-percentile single-input latency, ms.
    public var p95: Double
    /// Batch throughput, examples per second.
    public var throughput: Double
}

/// Times a model on raw inputs: warm-up calls, then timed single-input calls cycling over sample inputs (300 by
/// default; p50, p95), then batched calls for throughput. Slow students (a decoder language model answering in a
/// second) pass fewer calls and a smaller batch.
public enum LatencyProfiler {
    /// Profiles `bundle` on `inputs` (a sample of real rows).
    public static func profile(_ bundle: ModelBundle, inputs: [ExampleInput], calls: Int = 300, warmup: Int = 30)
        throws -> LatencyProfile
    {
        try profile(inputs: inputs, calls: calls, warmup: warmup) { try bundle.probabilities(for: $0).storage[0] }
    }

    /// Profiles `predict` on `inputs` (a sample of real rows, raw): `predict` answers a batch end to end and returns a
    /// number of its answer, summed so the calls are not optimised away. `batch` inputs at most go into one batched call.
    public static func profile<Input>(
        inputs: [Input], calls: Int = 300, warmup: Int = 30, batch batchSize: Int = 256,
        predict: ([Input]) throws -> Float
    ) throws -> LatencyProfile {
        precondition(!inputs.isEmpty, "profiling needs at least one input")
        var sink: Float = 0
        for index in 0..<warmup {
            sink += try predict([inputs[index % inputs.count]])
        }
        var samples: [Double] = []
        samples.reserveCapacity(calls)
        for index in 0..<max(calls, 1) {
            let input = [inputs[index % inputs.count]]
            let start = DispatchTime.now().uptimeNanoseconds
            let answer = try predict(input)
            let end = DispatchTime.now().uptimeNanoseconds
            sink += answer
            samples.append(Double(end - start) / 1e6)
        }
        samples.sort()
        let batch = Array(inputs.prefix(max(1, batchSize)))
        var batchedExamples = 0
        let batchStart = DispatchTime.now().uptimeNanoseconds
        var elapsed: UInt64 = 0
        repeat {
            sink += try predict(batch)
            batchedExamples += batch.count
            elapsed = DispatchTime.now().uptimeNanoseconds - batchStart
        } while elapsed < 20_000_000 && batchedExamples < 100_000
        if sink.isNaN { samples.append(0) }  // keeps `sink` alive so the calls are not optimised away
        return LatencyProfile(
            p50: percentile(samples, 0.5), p95: percentile(samples, 0.95),
            throughput: Double(batchedExamples) / (Double(elapsed) / 1e9))
    }

    /// The `q` quantile of ascending `sorted` (`Quantile.interpolated`: linear between closest ranks; NaN when empty).
    public static func percentile(_ sorted: [Double], _ q: Double) -> Double { Quantile.interpolated(sorted, q) }
}

import Foundation
import RetortData

extension SearchRun {
    /// Where latency is measured: once per complete candidate of `decided`, serially, after its rung (no worker
    /// trains meanwhile), on up to 512 validation inputs (see ``LatencyProfiler``). A resumed run reuses journaled
    /// latencies. Sets p50, p95, throughput and the serving cost (p50 × the vCPU price), then announces the trial.
    mutating func measureLatency(_ decided: Set<String>) throws {
        for id in decided.sorted() {
            guard var trial = trials[id], trial.status == .complete, trial.epochsRun ?? 0 > 0, member[id] != nil else {
                continue
            }
            let profile: LatencyProfile
            if let record = latencyRecords[id], let p50 = record.p50, let p95 = record.p95 {
                profile = LatencyProfile(p50: p50, p95: p95, throughput: record.throughput ?? 0)
            } else {
                guard let bundle = try bundle(id, epochs: trial.epochsRun ?? 0) else { continue }
                profile = try LatencyProfiler.profile(bundle, inputs: Array(task.validation.inputs.prefix(512)))
                var record = JournalRecord(type: "latency")
                record.candidate = id
                record.p50 = profile.p50
                record.p95 = profile.p95
                record.throughput = profile.throughput
                try storage?.journal.append(record)
            }
            trial.latencyMsP50 = profile.p50
            trial.latencyMsP95 = profile.p95
            trial.throughputPerSecond = profile.throughput
            trial.costPer1MUSD = profile.p50 / 1000 * 1e6 * settings.usdPerVCPUHour / 3600
            trials[id] = trial
            try announce(trial)
        }
    }
}

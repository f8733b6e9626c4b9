import Foundation
import Glibc
import RetortNumerics

/// CPU time from Linux's /proc: what a process used (user + system) and how busy the whole machine was, so a
/// latency benchmark can say whether its processes were waiting for a core. Elsewhere every reading is nil.
public enum CPUTime {
    /// Clock ticks per second of /proc's counters (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
    static let ticksPerSecond = Double(max(1, sysconf(Int32(_SC_CLK_TCK))))

    /// CPU seconds (user + system) process `pid` has used, all its threads, from /proc/PID/stat; nil when unreadable.
    public static func processSeconds(pid: Int32) -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let ticks = processTicks(stat)
        else { return nil }
        return Double(ticks) / ticksPerSecond
    }

    /// utime + stime (fields 14 and 15) of a /proc/PID/stat line. The command name (field 2) is in parentheses and
    /// may hold spaces and parentheses itself, so the fields are counted from the last ")".
    static func processTicks(_ stat: String) -> Int? {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
        // fields[0] is field 3 (state), so utime (14) and stime (15) are fields[11] and fields[12].
        guard fields.count > 12, let user = Int(fields[11]), let system = Int(fields[12]) else { return nil }
        return user + system
    }

    /// The machine's CPU ticks so far, all cores together: (busy, total), from the first line of /proc/stat.
    public static func machineTicks() -> (busy: Int, total: Int)? {
        guard let stat = try? String(contentsOfFile: "/proc/stat", encoding: .utf8) else { return nil }
        return machineTicks(stat)
    }

    /// (busy, total) from /proc/stat's `cpu` line: user nice system idle iowait irq softirq steal (guest time is
    /// already inside user and nice); idle and iowait are the idle part.
    static func machineTicks(_ stat: String) -> (busy: Int, total: Int)? {
        guard let line = stat.split(separator: "\n").first, line.hasPrefix("cpu ") else { return nil }
        let values = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().prefix(8).compactMap {
            Int($0)
        }
        guard values.count >= 4 else { return nil }
        let total = values.reduce(0, +)
        let idle = values[3] + (values.count > 4 ? values[4] : 0)
        return (total - idle, total)
    }

    /// A reading to compare a later one against: the CPU seconds of `pids` (summed) and of this process, and the
    /// machine's ticks.
    public struct Reading: Sendable {
        let start: ContinuousClock.Instant
        let processes: Double?
        let own: Double?
        let machine: (busy: Int, total: Int)?

        /// Reads now.
        public init(pids: [Int32]) {
            start = .now
            let each = pids.map { CPUTime.processSeconds(pid: $0) }
            processes = each.contains { $0 == nil } ? nil : each.compactMap { $0 }.reduce(0, +)
            own = CPUTime.processSeconds(pid: getpid())
            machine = CPUTime.machineTicks()
        }
    }

    /// What happened between two readings: the cores `pids` used on average, the cores this process used, and the
    /// share of the machine's cores that were busy (0–1); nil where /proc could not be read.
    public struct Usage: Sendable, Equatable {
        /// Average cores the measured processes used.
        public var processCores: Double?
        /// Average cores this process used.
        public var ownCores: Double?
        /// Busy share of all the machine's cores.
        public var machineBusy: Double?
    }

    /// The usage from `before` to `after` (the same pids).
    public static func usage(from before: Reading, to after: Reading) -> Usage {
        let elapsed = after.start - before.start
        let seconds = elapsed.inSeconds
        guard seconds > 0 else { return Usage() }
        func cores(_ a: Double?, _ b: Double?) -> Double? {
            guard let a, let b else { return nil }
            return max(0, b - a) / seconds
        }
        var busy: Double?
        if let a = before.machine, let b = after.machine, b.total > a.total {
            busy = Double(b.busy - a.busy) / Double(b.total - a.total)
        }
        return Usage(
            processCores: cores(before.processes, after.processes), ownCores: cores(before.own, after.own),
            machineBusy: busy)
    }
}

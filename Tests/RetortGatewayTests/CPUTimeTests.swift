import Foundation
import Glibc
import Testing

@testable import RetortBenchmarks

@Suite struct CPUTimeTests {
    @Test("a process's ticks are user + system counted from the last ')', whatever the command name holds")
    func processTicks() {
        // Fields 3 to 52, each holding its own number, but utime (14) = 700 and stime (15) = 45.
        var numbers = Array(3...52)
        numbers[14 - 3] = 700
        numbers[15 - 3] = 45
        let fields = numbers.map(String.init).joined(separator: " ")
        #expect(CPUTime.processTicks("4242 (retort) " + fields) == 745)
        #expect(CPUTime.processTicks("4242 (a (b) c) " + fields) == 745)
        #expect(CPUTime.processTicks("4242 (retort) S 1 2") == nil)
        #expect(CPUTime.processTicks("no parentheses") == nil)
    }

    @Test("the machine's busy ticks leave out idle and iowait")
    func machineTicks() throws {
        let stat = "cpu  100 5 50 800 20 1 2 3 0 0\ncpu0 50 2 25 400 10 0 1 1 0 0\n"
        let ticks = try #require(CPUTime.machineTicks(stat))
        #expect(ticks.total == 981 && ticks.busy == 161)
        #expect(CPUTime.machineTicks("cpu0 1 2 3 4\n") == nil)
        #expect(CPUTime.machineTicks("cpu  1 2\n") == nil)
    }

    @Test("work done between two readings shows as this process's cores and the machine's busy share")
    func liveUsage() throws {
        let before = CPUTime.Reading(pids: [getpid()])
        let start = try #require(CPUTime.processSeconds(pid: getpid()))
        // Spin until the kernel has counted at least 50 ms of this process's CPU time (ticks are 10 ms apart).
        var sink = 0.0
        var spun = 0
        while (CPUTime.processSeconds(pid: getpid()) ?? start) - start < 0.05, spun < 200_000_000 {
            for index in 0..<10_000 { sink += sin(Double(index + spun)) }
            spun += 10_000
        }
        let usage = CPUTime.usage(from: before, to: CPUTime.Reading(pids: [getpid()]))
        #expect(sink.isFinite)
        let cores = try #require(usage.processCores)
        let own = try #require(usage.ownCores)
        let busy = try #require(usage.machineBusy)
        // The same process read twice a moment apart: a tick may land between the two reads, so no equality.
        #expect(cores > 0 && own > 0, "\(usage)")
        #expect(busy > 0 && busy <= 1, "\(usage)")
        #expect(CPUTime.Reading(pids: [getpid(), -1]).processes == nil)
    }
}

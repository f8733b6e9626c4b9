import Foundation
import Synchronization
import Testing

@testable import RetortTeacher

/// A batch writer that records what it was given, how many writes overlapped, and fails the batches holding a row of
/// a failing session.
final class RecordingBatchWriter: Sendable {
    /// The failure of a batch that holds a row of the failing session.
    struct Refused: Error {}

    private struct Books {
        var batches: [[LedgerRow]] = []
        var inFlight = 0
        var mostInFlight = 0
    }

    private let books = Mutex(Books())
    let failingSession: String?

    init(failingSession: String? = nil) { self.failingSession = failingSession }

    var batches: [[LedgerRow]] { books.withLock { $0.batches } }
    var mostInFlight: Int { books.withLock { $0.mostInFlight } }

    func write(_ rows: [LedgerRow]) throws {
        books.withLock {
            $0.inFlight += 1
            $0.mostInFlight = max($0.mostInFlight, $0.inFlight)
        }
        // A server round trip: long enough for other requests to arrive and wait.
        Thread.sleep(forTimeInterval: 0.002)
        let failed = rows.contains { $0.session == failingSession }
        books.withLock {
            $0.inFlight -= 1
            if !failed { $0.batches.append(rows) }
        }
        if failed { throw Refused() }
    }
}

@Suite struct LedgerRowGroupTests {
    @Test("group commit: every row committed once, one batch at a time, rows that arrive meanwhile share a batch")
    func everyRowOnce() async throws {
        let writer = RecordingBatchWriter()
        let group = LedgerRowGroup { rows in try writer.write(rows) }
        let rows = (0..<300).map { sampleRow($0, session: "s-\($0)") }
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            for row in rows { tasks.addTask { try await group.record(row) } }
            try await tasks.waitForAll()
        }
        let written = writer.batches.flatMap { $0 }.map { $0.session }
        #expect(written.count == rows.count)
        #expect(Set(written) == Set(rows.map { $0.session }))
        #expect(writer.mostInFlight == 1)
        // 300 requests against 2 ms writes: later rows wait and share batches.
        #expect(writer.batches.count < rows.count)
        #expect(writer.batches.allSatisfy { $0.count <= LedgerRowGroup.maximumBatch })
        // Idle again: a lone row is its own batch, with no timer to wait for.
        try await group.record(sampleRow(1000, session: "alone"))
        #expect(writer.batches.last?.map(\.session) == ["alone"])
    }

    @Test("a batch that fails fails exactly the requests whose rows were in it; the group goes on with the next")
    func failedBatch() async throws {
        let writer = RecordingBatchWriter(failingSession: "bad")
        let group = LedgerRowGroup { rows in try writer.write(rows) }
        try await group.record(sampleRow(200, session: "before"))
        let rows = (0..<120).map { sampleRow($0, session: $0 == 60 ? "bad" : "s-\($0)") }
        let outcomes = await withTaskGroup(of: (String, Bool).self) { tasks in
            for row in rows {
                tasks.addTask {
                    do {
                        try await group.record(row)
                        return (row.session, true)
                    } catch is RecordingBatchWriter.Refused {
                        return (row.session, false)
                    } catch {
                        Issue.record("a failed batch threw something else: \(error)")
                        return (row.session, false)
                    }
                }
            }
            var outcomes: [String: Bool] = [:]
            for await (session, stored) in tasks { outcomes[session] = stored }
            return outcomes
        }
        let written = Set(writer.batches.flatMap { $0 }.map { $0.session })
        #expect(outcomes["bad"] == false)
        // A request was answered as stored exactly when its row is in the ledger.
        for (session, stored) in outcomes { #expect(stored == written.contains(session), "\(session)") }
        #expect(written.contains("before") && !written.contains("bad"))
        try await group.record(sampleRow(500, session: "after"))
        #expect(writer.batches.last?.map(\.session) == ["after"])
    }
}

@testable import PurserGateway
import PurserProtocol
@testable import PurserRuntime
import Synchronization
import Testing

/// A run's gateway call records are written behind the calls, in batches, by the
/// write-behind timer: the timer and the store's threads are the test's own here, stepped
/// by hand, so nothing depends on how fast the machine is.
@Suite("Run account write-behind", .timeLimit(.minutes(1)))
struct RunAccountTests {
    /// The write-behind timers and the store threads' queue, run when the test says.
    final class Steps: Sendable {
        let timers = Mutex<[@Sendable () -> Void]>([])
        let queued = Mutex<[@Sendable () -> Void]>([])
        let batches = Mutex<[[String]]>([])

        /// `inline`: a write runs at once, on the thread that asks for it, instead of queued.
        func account(inline: Bool = false) -> RunAccount {
            RunAccount(
                budget: Credits(whole: 100), team: nil, onRecord: { _ in },
                writer: { batch in self.batches.withLock { $0.append(batch.map(\.record.path)) } },
                threads: { work in inline ? work() : self.queued.withLock { $0.append(work) } },
                after: { _, work in self.timers.withLock { $0.append(work) } })
        }

        func fireTimers() {
            let due = timers.withLock { timers in
                let due = timers
                timers = []
                return due
            }
            for timer in due { timer() }
        }

        /// Runs what is queued on the "store threads" now (not what that queues in turn).
        func runQueued() {
            let now = queued.withLock { queued in
                let now = queued
                queued = []
                return now
            }
            for work in now { work() }
        }

        var queuedCount: Int { queued.withLock { $0.count } }
    }

    static func record(_ path: String) -> GatewayCallRecord {
        GatewayCallRecord(
            integration: "x", method: "GET", path: path, status: 200, reason: nil, latencyMicros: 1, credits: .zero,
            cached: false, attempts: 1)
    }

    /// Once the run is being settled (`drain`), nothing new may hold credits on its account:
    /// a call or tunnel of a kept worker's proxy that raced its run's end would be charged
    /// after the run's report was settled, and never billed.
    @Test func nothingHoldsOnceTheRunIsDrained() async {
        let steps = Steps()
        let account = steps.account(inline: true)
        #expect(account.hold(Credits(whole: 1)))
        account.settle(held: Credits(whole: 1), charged: Credits(whole: 1), record: Self.record("/0"))
        steps.fireTimers()
        await account.drain()
        #expect(!account.hold(Credits(whole: 1)), "a hold after the run was drained is charged after it is settled")
        #expect(account.charged == Credits(whole: 1))
    }

    /// Records of calls that end while a batch is written wait for their own timer, as the
    /// first did; written at once after each batch, a busy run wrote a transaction every
    /// few calls.
    @Test func recordsThatComeDuringAWriteWaitForTheirTimer() async {
        let steps = Steps()
        let account = steps.account()
        account.settle(held: nil, charged: .zero, record: Self.record("/0"))
        steps.fireTimers()
        #expect(steps.queuedCount == 1)
        // While /0 is being written (queued, not yet run), /1 and /2 end.
        account.settle(held: nil, charged: .zero, record: Self.record("/1"))
        account.settle(held: nil, charged: .zero, record: Self.record("/2"))
        steps.runQueued()
        #expect(steps.batches.withLock { $0 } == [["/0"]])
        #expect(steps.queuedCount == 0, "what came in during the write was written at once, not by its timer")
        steps.fireTimers()
        steps.runQueued()
        #expect(steps.batches.withLock { $0 } == [["/0"], ["/1", "/2"]])
        await account.drain()
    }

    /// A timer that fires while a batch is written is not lost: what it was for is written
    /// right after that batch.
    @Test func aTimerThatFiresDuringAWriteHasItsRecordsWrittenRightAfter() async {
        let steps = Steps()
        let account = steps.account()
        account.settle(held: nil, charged: .zero, record: Self.record("/0"))
        steps.fireTimers()
        account.settle(held: nil, charged: .zero, record: Self.record("/1"))
        steps.fireTimers()
        steps.runQueued()
        #expect(steps.queuedCount == 1)
        steps.runQueued()
        #expect(steps.batches.withLock { $0 } == [["/0"], ["/1"]])
        await account.drain()
    }

    /// A drain writes what waits without waiting for its timer (which never fires here),
    /// and returns once it is written.
    @Test func aDrainWritesWhatWaits() async {
        let steps = Steps()
        let account = steps.account(inline: true)
        account.settle(held: nil, charged: .zero, record: Self.record("/0"))
        await account.drain()
        #expect(steps.batches.withLock { $0 } == [["/0"]])
    }
}

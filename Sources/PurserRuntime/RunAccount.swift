import Dispatch
import PurserGateway
import PurserLedger
import PurserProtocol
import Synchronization

/// What a run has spent and set aside, for the gateway's pre-authorisation and the run's
/// report: its own reported credits, what gateway calls were charged, and what calls in
/// flight hold. Their sum never exceeds the run's budget.
///
/// Each call's charge and audit record are written to the ledger behind the call, in
/// batches: at most `writeBehindMs` after the call ends, and all of them before the run
/// is settled. A supervisor that dies loses at most that last moment's records (their
/// credits return with the hold when it is reclaimed); the worker was never able to spend
/// past its hold either way.
final class RunAccount: GatewayAccount {
    static let writeBehindMs = 50

    private struct State {
        var reported = Credits.zero
        var charged = Credits.zero
        var steps = Credits.zero
        var held = Credits.zero
        var unwritten: [(record: GatewayCallRecord, charged: Credits)] = []
        var flushScheduled = false
        /// A batch is being written, on the store's threads: one at a time, in order.
        var writing = false
        /// A timer fired while a batch was being written: what waits is due.
        var flushDue = false
        /// Calls and steps holding credits (as `holding` counts them).
        var holds = 0
        /// `drain`s waiting for every record to be written.
        var drained: [CheckedContinuation<Void, Never>] = []
        /// The run is being settled: no new hold (see `drain`).
        var closed = false
    }

    let budget: Credits
    /// The team the run's reservation is drawn from, for the gateway's cache scope; nil
    /// without a ledger.
    let team: String?
    private let state = Mutex(State())
    /// Calls holding credits.
    private let holding = DispatchGroup()
    private let onRecord: @Sendable (GatewayCallRecord) -> Void
    private let writer: (@Sendable ([(record: GatewayCallRecord, charged: Credits)]) -> Void)?
    /// Where `drain` waits; the writes run on `threads`.
    private let records = DispatchQueue(label: "purser.run.records")
    /// Runs a batch's write: the store's threads.
    private let threads: @Sendable (@escaping @Sendable () -> Void) -> Void
    /// Runs a flush after so many milliseconds: the write-behind timer.
    private let after: @Sendable (Int, @escaping @Sendable () -> Void) -> Void

    /// `onRecord` sees each call as it ends; `writer` gets them in batches, one at a time,
    /// on the store's threads (`StoreThreads`). A test passes its own `threads` and `after`,
    /// to step through the writes.
    init(
        budget: Credits, team: String?, onRecord: @escaping @Sendable (GatewayCallRecord) -> Void,
        writer: (@Sendable ([(record: GatewayCallRecord, charged: Credits)]) -> Void)?,
        threads: @escaping @Sendable (@escaping @Sendable () -> Void) -> Void = { StoreThreads.shared.submit($0) },
        after: (@Sendable (Int, @escaping @Sendable () -> Void) -> Void)? = nil
    ) {
        self.budget = budget
        self.team = team
        self.onRecord = onRecord
        self.writer = writer
        self.threads = threads
        self.after = after ?? { [records] ms, work in records.asyncAfter(deadline: .now() + .milliseconds(ms), execute: work) }
    }

    func hold(_ credits: Credits) -> Bool {
        let granted = take(credits, newHold: true)
        if granted { holding.enter() }
        return granted
    }

    func extend(_ credits: Credits) -> Bool { take(credits, newHold: false) }

    private func take(_ credits: Credits, newHold: Bool) -> Bool {
        state.withLock { state -> Bool in
            guard !(newHold && state.closed), state.reported + state.charged + state.steps + state.held + credits <= budget else {
                return false
            }
            state.held = state.held + credits
            if newHold { state.holds += 1 }
            return true
        }
    }

    func settle(held: Credits?, charged: Credits, record: GatewayCallRecord) {
        let schedule = state.withLock { state -> Bool in
            if let held {
                state.held = state.held - held
                state.holds -= 1
            }
            state.charged = state.charged + charged
            guard writer != nil else { return false }
            state.unwritten.append((record, charged))
            defer { state.flushScheduled = true }
            return !state.flushScheduled
        }
        onRecord(record)
        if schedule {
            after(Self.writeBehindMs) { self.flush() }
        }
        if held != nil { holding.leave() }
    }

    /// A child step ended: its hold is released, what it used stays spent.
    func settleStep(held: Credits, used: Credits) {
        state.withLock { state in
            state.held = state.held - held
            state.holds -= 1
            state.steps = state.steps + used
        }
        holding.leave()
    }

    /// Writes what is waiting, unless a batch is being written (it writes the rest after).
    private func flush() {
        let batch = state.withLock { state -> [(record: GatewayCallRecord, charged: Credits)]? in
            state.flushScheduled = false
            guard !state.unwritten.isEmpty else { return nil }
            guard !state.writing else {
                state.flushDue = true
                return nil
            }
            state.writing = true
            defer { state.unwritten = [] }
            return state.unwritten
        }
        if let batch { write(batch) }
    }

    private func write(_ batch: [(record: GatewayCallRecord, charged: Credits)]) {
        threads {
            self.writer?(batch)
            let (next, drained) = self.state.withLock { state in
                // What came in during this write waits for its own timer, unless that
                // fired already or a drain waits: written at once, batch after batch, the
                // records of a busy run would cost a transaction every few calls.
                if !state.unwritten.isEmpty, state.flushDue || !state.drained.isEmpty {
                    state.flushDue = false
                    defer { state.unwritten = [] }
                    return (Optional(state.unwritten), [CheckedContinuation<Void, Never>]())
                }
                state.writing = false
                state.flushDue = false
                guard state.unwritten.isEmpty else { return (nil, []) }
                defer { state.drained = [] }
                return (nil, state.drained)
            }
            if let next { self.write(next) }
            for waiter in drained { waiter.resume() }
        }
    }

    /// The worker's own running total, from its usage notifications.
    func setReported(_ credits: Credits) {
        state.withLock { $0.reported = credits }
    }

    var charged: Credits { state.withLock { $0.charged } }
    var stepCredits: Credits { state.withLock { $0.steps } }

    /// Waits until no call holds credits, then until every record is written. From here on
    /// nothing new holds credits: a call or tunnel that raced the run's end (a kept worker's
    /// egress proxy serves on between runs) would be charged after the run was settled.
    func drain() async {
        let busy = state.withLock { state -> Bool in
            state.closed = true
            return state.holds > 0 || state.writing || !state.unwritten.isEmpty
        }
        // Nothing held and nothing to write (a run without calls): no hop to `records` and back.
        guard busy else { return }
        await withCheckedContinuation { continuation in
            holding.notify(queue: records) {
                let idle = self.state.withLock { state -> Bool in
                    guard state.writing || !state.unwritten.isEmpty else { return true }
                    state.drained.append(continuation)
                    return false
                }
                if idle { continuation.resume() } else { self.flush() }
            }
        }
    }
}

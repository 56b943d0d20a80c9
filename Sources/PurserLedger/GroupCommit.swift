import Dispatch
import Logging
import Synchronization

/// Group commit: concurrent transactions share one COMMIT, and so one fsync.
///
/// A caller queues its transaction and waits. Whoever finds no batch running becomes the
/// leader: it takes everything queued, runs it, commits once, and wakes the rest; then it
/// takes the next batch, if any. Callers who queue while a batch runs join it until its
/// COMMIT starts. Nobody is answered before the COMMIT that holds their work returns, so
/// a grant is durable when its caller sees it.
///
/// Batched work (`SQLDriver.batch`) changes rows only in the connection's `NodeRows`, and
/// only once it can no longer fail, so it needs no savepoint; the rows are written before
/// COMMIT. Any other transaction runs in a savepoint of its own, after the rows so far are
/// written. If the batch as a whole fails, each transaction in it runs again alone, so one
/// failure is only its own.
final class GroupCommit<Connection: SQLSession>: Sendable {
    private let state = Mutex(GroupState())
    /// Only the leader touches it, one at a time.
    private nonisolated(unsafe) let connection: Connection
    private let begin: @Sendable (Connection) throws(LedgerError) -> Void
    private let execute: @Sendable (Connection, String) throws(LedgerError) -> Void
    private let commit: @Sendable (Connection) throws(LedgerError) -> Void

    /// `commit` ends a batch's transaction: COMMIT, after any check that must come first.
    init(
        connection: Connection, begin: @escaping @Sendable (Connection) throws(LedgerError) -> Void,
        execute: @escaping @Sendable (Connection, String) throws(LedgerError) -> Void,
        commit: @escaping @Sendable (Connection) throws(LedgerError) -> Void
    ) {
        self.connection = connection
        self.begin = begin
        self.execute = execute
        self.commit = commit
    }

    func run<T>(batched: Bool, _ body: (Connection) throws(LedgerError) -> T) throws(LedgerError) -> T {
        try withoutActuallyEscaping(body) { (body) throws(LedgerError) -> T in
            // The body runs on the leader's thread while this caller waits for it.
            let slot = ResultSlot<T>()
            let connection = self.connection
            let pending = Pending(batched: batched) {
                do throws(LedgerError) {
                    slot.result = .success(try body(connection))
                    return nil
                } catch {
                    slot.result = .failure(error)
                    return error
                }
            } fail: { error in
                slot.result = .failure(error)
            }
            submit(pending)
            return try (slot.result ?? .failure(LedgerError(.storeFailed, "transaction was not run"))).get()
        }
    }

    private func submit(_ pending: Pending) {
        let leads = state.withLock { state -> Bool in
            state.queue.append(pending)
            guard !state.leading else { return false }
            state.leading = true
            return true
        }
        if !leads {
            pending.done.wait()
            pending.wakeFollowers()
            return
        }
        while let batch = nextBatch() { commit(batch, own: pending) }
    }

    private func nextBatch() -> [Pending]? {
        state.withLock { state in
            guard !state.queue.isEmpty else {
                state.leading = false
                return nil
            }
            defer { state.queue = [] }
            return state.queue
        }
    }

    /// Takes what was queued meanwhile, leaving this leader in charge.
    private func joiners(after count: Int) -> [Pending]? {
        guard count < Self.largestBatch else { return nil }
        return state.withLock { state in
            guard !state.queue.isEmpty else { return nil }
            defer { state.queue = [] }
            return state.queue
        }
    }

    private func commit(_ queued: [Pending], own: Pending) {
        var batch = queued
        if let error = attempt(&batch, joining: true) {
            if batch.count == 1 {
                batch[0].fail(error)
            } else {
                for pending in batch {
                    var alone = [pending]
                    if let error = attempt(&alone, joining: false) { pending.fail(error) }
                }
            }
        }
        // The body is the caller's non-escaping closure: let go of it before the caller returns.
        for pending in batch { pending.run = nil }
        wake(batch, own: own)
    }

    /// Runs the batch in one transaction; returns what made the whole of it fail.
    private func attempt(_ batch: inout [Pending], joining: Bool) -> LedgerError? {
        let connection = self.connection
        do throws(LedgerError) {
            try begin(connection)
            try runAll(&batch, connection, joining: joining)
            try connection.rows.flush(connection)
            let committing = ContinuousClock.now
            try commit(connection)
            StoreMetrics.committed("sqlite", since: committing)
            return nil
        } catch {
            connection.rows.reset()
            do throws(LedgerError) {
                try execute(connection, "ROLLBACK")
            } catch let rollback {
                // The batch's own error is what its callers hear; the rollback's is a detail of it (debug).
                Logger(label: "purser.store").debug("ROLLBACK failed", metadata: ["error": "\(rollback)", "after": "\(error)"])
            }
            return error
        }
    }

    /// Runs the batch and, while `joining`, whoever queues before it is done: the callers of
    /// the last batch wake while this one runs, and each that makes it in shares this fsync
    /// instead of waiting through it for the next. Rows are written as it goes, all but the
    /// open ones, which the next joiners may change again.
    private func runAll(_ batch: inout [Pending], _ connection: Connection, joining: Bool) throws(LedgerError) {
        var next = 0
        while true {
            while next < batch.count {
                try run(batch[next], connection)
                next += 1
            }
            if joining, let more = joiners(after: batch.count) {
                batch += more
                continue
            }
            try connection.rows.flush(connection, deferringOpenRows: true)
            guard joining, let more = joiners(after: batch.count) else { return }
            batch += more
        }
    }

    /// Bounds how long the first caller of a batch can wait on those who join it.
    private static var largestBatch: Int { 1024 }

    private func run(_ pending: Pending, _ connection: Connection) throws(LedgerError) {
        let rows = connection.rows
        if pending.batched {
            // A refusal is the caller's answer; a failing store fails the batch.
            if let error = pending.run?(), error.code == .storeFailed || error.code == .constraint {
                throw error
            }
            return
        }
        // Its own SQL may change rows behind the cache: write them first, forget them after.
        try rows.flush(connection)
        rows.reset()
        try execute(connection, "SAVEPOINT op")
        if pending.run?() != nil {
            rows.reset()
            try execute(connection, "ROLLBACK TO SAVEPOINT op")
        } else {
            try rows.flush(connection)
            rows.reset()
        }
        try execute(connection, "RELEASE SAVEPOINT op")
    }

    /// Wakes the batch as a tree: the leader wakes one caller, and each caller a few more.
    /// A wake-up costs the waker a system call and often its CPU; this way the leader pays
    /// for one, not for the whole batch, and is back at work sooner.
    private func wake(_ batch: [Pending], own: Pending) {
        // The leader's own transaction has nobody waiting on it.
        let waiting = batch.filter { $0 !== own }
        guard let root = waiting.first else { return }
        let fanOut = Self.wakeFanOut
        for index in waiting.indices {
            let first = fanOut * index + 1
            waiting[index].followers = first < waiting.count ? Array(waiting[first..<min(first + fanOut, waiting.count)]) : []
        }
        root.done.signal()
    }

    /// Of 2, 4 and 8, four did best on two cores, if narrowly: the deeper the tree, the
    /// later its last callers wake, and the fewer of them make it into the next batch.
    private static var wakeFanOut: Int { 4 }
}

/// Outside the generic class, so that taking the lock needs no generic type looked up.
private struct GroupState {
    var queue: [Pending] = []
    var leading = false
}

/// Written by the leader, read by the caller after the leader signals it.
private final class ResultSlot<T>: @unchecked Sendable {
    var result: Result<T, LedgerError>?
}

/// One queued transaction: it runs on the leader's thread while its caller waits.
private final class Pending: @unchecked Sendable {
    let batched: Bool
    /// Returns the error if the transaction's body failed. Cleared once answered.
    var run: (() -> LedgerError?)?
    let fail: (LedgerError) -> Void
    let done = DispatchSemaphore(value: 0)
    /// Whom this caller wakes once it is woken: set by the leader before it wakes anyone.
    var followers: [Pending] = []

    init(batched: Bool, run: @escaping () -> LedgerError?, fail: @escaping (LedgerError) -> Void) {
        self.batched = batched
        self.run = run
        self.fail = fail
    }

    func wakeFollowers() {
        for follower in followers { follower.done.signal() }
        followers = []
    }
}

/// Moves a value across a boundary the compiler cannot see is safe: here, a frame that
/// waits until the leader is done with it, or a connection only the leader touches.
struct UnsafeTransfer<Value>: @unchecked Sendable {
    var value: Value
    init(_ value: Value) { self.value = value }
}

import Dispatch
import Synchronization

/// Group commit: concurrent transactions share one COMMIT, and so one fsync.
///
/// A caller queues its transaction and waits. Whoever finds no batch running becomes the
/// leader: it takes everything queued, runs it, commits once, and wakes the rest; then it
/// takes the next batch, if any. Nobody is answered before the COMMIT that holds their
/// work returns, so a grant is durable when its caller sees it.
///
/// Batched work (`SQLDriver.batch`) changes rows only in the connection's `NodeRows`, and
/// only once it can no longer fail, so it needs no savepoint; the rows are written once,
/// before COMMIT. Any other transaction runs in a savepoint of its own, after the rows so
/// far are written. If the batch as a whole fails, each transaction in it runs again
/// alone, so one failure is only its own.
final class GroupCommit<Connection: SQLSession>: Sendable {
    private struct State {
        var queue: [Pending] = []
        var leading = false
    }

    private let state = Mutex(State())
    private let connection: UnsafeTransfer<Connection>
    private let begin: @Sendable (Connection) throws(LedgerError) -> Void
    private let execute: @Sendable (Connection, String) throws(LedgerError) -> Void

    init(
        connection: Connection, begin: @escaping @Sendable (Connection) throws(LedgerError) -> Void,
        execute: @escaping @Sendable (Connection, String) throws(LedgerError) -> Void
    ) {
        self.connection = UnsafeTransfer(connection)
        self.begin = begin
        self.execute = execute
    }

    func run<T>(batched: Bool, _ body: (Connection) throws(LedgerError) -> T) throws(LedgerError) -> T {
        try withoutActuallyEscaping(body) { (body) throws(LedgerError) -> T in
            // The body runs on the leader's thread while this caller waits for it.
            let slot = ResultSlot<T>()
            let body = UnsafeTransfer(body)
            let pending = Pending(batched: batched) { (connection: Any) in
                do throws(LedgerError) {
                    slot.result = .success(try body.value(connection as! Connection))
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
            return
        }
        while let batch = nextBatch() { commit(batch) }
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

    private func commit(_ batch: [Pending]) {
        if let error = attempt(batch) {
            if batch.count == 1 {
                batch[0].fail(error)
            } else {
                for pending in batch {
                    if let error = attempt([pending]) { pending.fail(error) }
                }
            }
        }
        for pending in batch {
            // The body is the caller's non-escaping closure: let go of it before the caller returns.
            pending.run = nil
            pending.done.signal()
        }
    }

    /// Runs the batch in one transaction; returns what made the whole of it fail.
    private func attempt(_ batch: [Pending]) -> LedgerError? {
        let connection = self.connection.value
        let rows = connection.rows
        do throws(LedgerError) {
            try begin(connection)
            for pending in batch {
                if pending.batched {
                    // A refusal is the caller's answer; a failing store fails the batch.
                    if let error = pending.run?(connection), error.code == .storeFailed || error.code == .constraint {
                        throw error
                    }
                    continue
                }
                // Its own SQL may change rows behind the cache: write them first, forget them after.
                try rows.flush(connection)
                rows.reset()
                try execute(connection, "SAVEPOINT op")
                if pending.run?(connection) != nil {
                    rows.reset()
                    try execute(connection, "ROLLBACK TO SAVEPOINT op")
                } else {
                    try rows.flush(connection)
                    rows.reset()
                }
                try execute(connection, "RELEASE SAVEPOINT op")
            }
            try rows.flush(connection)
            try execute(connection, "COMMIT")
            return nil
        } catch {
            rows.reset()
            try? execute(connection, "ROLLBACK")
            return error
        }
    }
}

/// Written by the leader, read by the caller after the leader signals it.
private final class ResultSlot<T>: @unchecked Sendable {
    var result: Result<T, LedgerError>?
}

/// One queued transaction: it runs on the leader's thread while its caller waits.
private final class Pending: @unchecked Sendable {
    let batched: Bool
    /// Returns the error if the transaction's body failed. Cleared once answered.
    var run: ((Any) -> LedgerError?)?
    let fail: (LedgerError) -> Void
    let done = DispatchSemaphore(value: 0)

    init(batched: Bool, run: @escaping (Any) -> LedgerError?, fail: @escaping (LedgerError) -> Void) {
        self.batched = batched
        self.run = run
        self.fail = fail
    }
}

/// Moves a value across a boundary the compiler cannot see is safe: here, a frame that
/// waits until the leader is done with it, or a connection only the leader touches.
struct UnsafeTransfer<Value>: @unchecked Sendable {
    var value: Value
    init(_ value: Value) { self.value = value }
}

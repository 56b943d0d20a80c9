import Dispatch
import Synchronization

/// Group commit: concurrent transactions share one COMMIT, and so one fsync.
///
/// A caller queues its transaction and waits. Whoever finds no batch running becomes the
/// leader: it takes everything queued, runs each in its own SAVEPOINT (so one failure
/// rolls back only itself), commits once, and wakes the rest; then it takes the next
/// batch, if any. Nobody is answered before the COMMIT that holds their work returns, so
/// a grant is durable when its caller sees it.
final class GroupCommit<Connection>: Sendable {
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

    func run<T>(_ body: (Connection) throws(LedgerError) -> T) throws(LedgerError) -> T {
        try withoutActuallyEscaping(body) { (body) throws(LedgerError) -> T in
            // The body runs on the leader's thread while this caller waits for it.
            let slot = ResultSlot<T>()
            let body = UnsafeTransfer(body)
            let pending = Pending { (connection: Any) in
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
        let connection = self.connection.value
        do throws(LedgerError) {
            try begin(connection)
            for pending in batch {
                try execute(connection, "SAVEPOINT op")
                if pending.run?(connection) != nil {
                    try execute(connection, "ROLLBACK TO SAVEPOINT op")
                }
                try execute(connection, "RELEASE SAVEPOINT op")
            }
            try execute(connection, "COMMIT")
        } catch {
            try? execute(connection, "ROLLBACK")
            for pending in batch { pending.fail(error) }
        }
        for pending in batch {
            // The body is the caller's non-escaping closure: let go of it before the caller returns.
            pending.run = nil
            pending.done.signal()
        }
    }
}

/// Written by the leader, read by the caller after the leader signals it.
private final class ResultSlot<T>: @unchecked Sendable {
    var result: Result<T, LedgerError>?
}

/// One queued transaction: it runs on the leader's thread while its caller waits.
private final class Pending: @unchecked Sendable {
    /// Returns the error if the transaction's body failed. Cleared once run.
    var run: ((Any) -> LedgerError?)?
    let fail: (LedgerError) -> Void
    let done = DispatchSemaphore(value: 0)

    init(run: @escaping (Any) -> LedgerError?, fail: @escaping (LedgerError) -> Void) {
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

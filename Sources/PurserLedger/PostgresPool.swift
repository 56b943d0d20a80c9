import CLibPQ
import Dispatch
import Synchronization

/// A few connections to one database, each used by one call at a time: a call that waits
/// (on a row another transaction holds, on a slow COMMIT) holds up only its own
/// connection, not every call of the supervisor. Connections are opened as calls need
/// them, up to `size`, and kept; each prepares its own statements and reconnects on its
/// own (`PostgresConnection.connect`), sharing what the pool knows of an outage.
final class PostgresPool: Sendable {
    private struct State {
        var idle: [PostgresBox] = []
    }

    private let url: String
    private let outage = PostgresOutage()
    private let state: Mutex<State>
    /// Counts the connections a call may take: the idle ones and those not opened yet.
    private let free: DispatchSemaphore

    /// Opens the first connection now: a store never reached is a setting to fix.
    init(url: String, size: Int) throws(LedgerError) {
        self.url = url
        let first = try PostgresConnection(url: url, outage: outage)
        state = Mutex(State(idle: [PostgresBox(first)]))
        free = DispatchSemaphore(value: max(size, 1))
    }

    /// Runs `body` on a connection of its own, waiting for one if all are in use.
    func with<T>(_ body: (PostgresConnection) throws(LedgerError) -> T) throws(LedgerError) -> T {
        free.wait()
        let box: PostgresBox
        do throws(LedgerError) {
            box = try take()
        } catch {
            free.signal()
            throw error
        }
        defer {
            state.withLock { $0.idle.append(box) }
            free.signal()
        }
        return try body(box.connection)
    }

    /// The connection used last, whose statements are prepared; a new one only when every
    /// open one is in use.
    private func take() throws(LedgerError) -> PostgresBox {
        if let box = state.withLock({ $0.idle.popLast() }) { return box }
        return PostgresBox(try PostgresConnection(starting: url, outage: outage))
    }
}

/// Since when the store has been away, shared by a pool's connections: a call that finds
/// it away counts from when any connection first did, and once one has given up, later
/// calls on any connection try once and fail at once, until a reconnect succeeds.
final class PostgresOutage: Sendable {
    private struct State {
        var downSince: ContinuousClock.Instant?
        var gaveUp = false
    }

    private let state = Mutex(State())

    /// When the outage began: now, if none was known.
    func begin() -> ContinuousClock.Instant {
        state.withLock { state in
            if let since = state.downSince { return since }
            let now = ContinuousClock.now
            state.downSince = now
            return now
        }
    }

    /// A reconnect succeeded.
    func end() {
        state.withLock { $0 = State() }
    }

    /// A call gave up; returns whether one had before in this outage.
    func giveUp() -> Bool {
        state.withLock { state in
            defer { state.gaveUp = true }
            return state.gaveUp
        }
    }
}

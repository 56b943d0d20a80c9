import CLibPQ
import Glibc

/// Getting the connection back after PostgreSQL went away: a restart, a failover, a
/// dropped link. Only ever called by the one call using the connection.
extension PostgresConnection {
    /// SQLSTATEs that end the session: connection exceptions (class 08) and the server
    /// shutting down or not yet taking connections (57P01–57P03).
    static func endsSession(_ state: String) -> Bool {
        state.hasPrefix("08") || state == "57P01" || state == "57P02" || state == "57P03"
    }

    /// Returns with the connection up: at once if it is, else once a reconnect succeeds.
    /// Reconnects again and again, backing off, until `retry.windowMs` has passed since the
    /// store was first found away; then throws `storeFailed`. A call made after that tries
    /// once (for at most 2 s) and throws if that fails.
    func connect(_ retry: StoreRetry) throws(LedgerError) {
        startAttempt()
        guard needsReset || PQstatus(handle) != CONNECTION_OK else { return }
        if !hasConnected, PQstatus(handle) != CONNECTION_BAD, drive(until: .now + .seconds(2), { PQconnectPoll($0) }) {
            return connected()
        }
        let since = outage.begin()
        let deadline = since + .milliseconds(retry.windowMs)
        var attempt = 0
        while true {
            attempt += 1
            if reset(until: max(deadline, .now + .seconds(2))) {
                retry.onNotice(
                    "PostgreSQL at \(displayURL): the connection was lost; reconnected after \(StoreRetry.format(ms: Self.ms(since: since)))")
                return connected()
            }
            let reason = PostgresConnection.trimmed(PQerrorMessage(handle)).split(separator: "\n").first.map(String.init) ?? ""
            let left = retry.windowMs - Self.ms(since: since)
            guard left > 0 else {
                let away = StoreRetry.format(ms: Self.ms(since: since))
                let message = "PostgreSQL at \(displayURL) unreachable for \(away): gave up "
                    + "(the store retry window is \(StoreRetry.format(ms: retry.windowMs)), PURSER_STORE_RETRY): \(reason)"
                let again = outage.giveUp()
                retry.onNotice(again ? "PostgreSQL at \(displayURL) still unreachable (\(away)): a call failed at once" : message)
                throw LedgerError(.storeFailed, message)
            }
            let pause = min(StoreRetry.pauseMs(attempt: attempt), left)
            retry.onNotice(
                "PostgreSQL at \(displayURL) unreachable (\(reason)): retry \(attempt) in \(StoreRetry.format(ms: pause)), "
                    + "giving up in \(StoreRetry.format(ms: left))")
            usleep(UInt32(pause * 1000))
        }
    }

    /// A new session: what an old one prepared is gone with it.
    private func connected() {
        outage.end()
        hasConnected = true
        needsReset = false
        prepared = [:]
    }

    /// Milliseconds from `start` to now (negative while `start` is ahead).
    private static func ms(since start: ContinuousClock.Instant) -> Int64 {
        let elapsed = start.duration(to: .now).components
        return elapsed.seconds * 1000 + elapsed.attoseconds / 1_000_000_000_000_000
    }

    /// Reconnects without blocking past `deadline`: libpq's PQreset would wait on a host
    /// that does not answer for as long as TCP does.
    private func reset(until deadline: ContinuousClock.Instant) -> Bool {
        guard PQresetStart(handle) == 1 else { return false }
        return drive(until: deadline) { PQresetPoll($0) }
    }

    /// Drives a connection attempt with `step` (PQconnectPoll, PQresetPoll) until it ends
    /// or `deadline` passes: whether it connected.
    private func drive(until deadline: ContinuousClock.Instant, _ step: (OpaquePointer) -> PostgresPollingStatusType) -> Bool {
        var status = PGRES_POLLING_WRITING
        while true {
            switch status {
            case PGRES_POLLING_OK: return PQstatus(handle) == CONNECTION_OK
            case PGRES_POLLING_FAILED: return false
            default: break
            }
            let left = -Self.ms(since: deadline)
            guard left > 0, Self.waitForSocket(PQsocket(handle), reading: status == PGRES_POLLING_READING, timeoutMs: Int32(clamping: left))
            else {
                return false
            }
            status = step(handle)
        }
    }

    /// poll(2) on a connection's socket, again after EINTR: whether it became ready.
    static func waitForSocket(_ socket: Int32, reading: Bool, timeoutMs: Int32) -> Bool {
        var entry = pollfd(fd: socket, events: Int16(reading ? POLLIN : POLLOUT), revents: 0)
        guard entry.fd >= 0 else { return false }
        while true {
            let ready = poll(&entry, 1, timeoutMs)
            if ready >= 0 { return ready > 0 }
            guard errno == EINTR else { return false }
        }
    }
}

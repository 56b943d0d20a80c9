import CLibPQ
import Glibc
public import Logging
import Synchronization

/// One connection that LISTENs on the fleet's channel, so that a host hears at once when a
/// submit, an admission, a cancel or another host makes work (`FleetSQL.notify`). A hint
/// on top of polling, never relied on: a notification sent while the connection is down is
/// lost, and the host polls fast until it is back. It blocks a thread of its own in poll(2),
/// and reconnects, backing off, when the connection drops.
public final class PostgresListener: Sendable {
    private let url: String
    private let applicationName: String
    private let logger: Logger
    private let stopped = Atomic<Bool>(false)
    /// How long a wait in poll(2) lasts before `stop` is looked at again.
    static let stopCheckMs: Int32 = 500
    /// Pauses between failed reconnects grow to this: a store that is down for long is
    /// knocked on every few seconds by each host, not many times a second.
    static let maxPauseMs: Int64 = 5_000

    /// `applicationName` names the connection in `pg_stat_activity`.
    init(url: String, applicationName: String, logger: Logger) {
        self.url = url
        self.applicationName = applicationName
        self.logger = logger
    }

    /// Listens until `stop`, blocking the calling thread. `heard(look)` comes at each batch
    /// of notifications (`look`: more than new ready routines, so the host should look at
    /// everything), and once each time the connection is made, for what it missed while
    /// away; `live` as the connection comes and goes.
    public func run(heard: (_ look: Bool) -> Void, live: (Bool) -> Void) {
        var failures = 0
        while !isStopped {
            let handle: OpaquePointer
            do throws(LedgerError) {
                handle = try connect()
            } catch {
                failures += 1
                let pause = StoreRetry.pauseMs(attempt: failures, capMs: Self.maxPauseMs)
                logger.notice(
                    "reconnecting the wake-up connection failed",
                    metadata: ["attempt": "\(failures)", "retryInMs": "\(pause)", "error": "\(error.message)"])
                pauseUnlessStopped(ms: pause)
                continue
            }
            logger.info("listening for wake-ups", metadata: ["channel": "\(FleetSQL.channel)", "failedAttempts": "\(failures)"])
            failures = 0
            live(true)
            heard(true)
            let reason = listen(handle, heard)
            PQfinish(handle)
            live(false)
            guard let reason else { return }
            logger.warning(
                "the wake-up connection was lost: polling at the fast interval until it is back", metadata: ["error": "\(reason)"])
        }
    }

    /// Ends `run` within `stopCheckMs`.
    public func stop() { stopped.store(true, ordering: .relaxed) }

    private var isStopped: Bool { stopped.load(ordering: .relaxed) }

    /// Waits for notifications until the connection drops (why) or `stop` (nil).
    private func listen(_ handle: OpaquePointer, _ heard: (_ look: Bool) -> Void) -> String? {
        let socket = PQsocket(handle)
        guard socket >= 0 else { return "the connection has no socket" }
        while !isStopped {
            if PostgresConnection.waitForSocket(socket, reading: true, timeoutMs: Self.stopCheckMs), PQconsumeInput(handle) != 1 {
                return PostgresConnection.trimmed(PQerrorMessage(handle))
            }
            var look: Bool?
            while let note = PQnotifies(handle) {
                // The payload is any session's text: only its one known value narrows the look.
                let payload = note.pointee.extra.map { String(cString: $0) }
                look = (look ?? false) || payload != FleetSQL.Wake.ready.rawValue
                PQfreemem(note)
            }
            if let look { heard(look) }
            if PQstatus(handle) == CONNECTION_BAD { return PostgresConnection.trimmed(PQerrorMessage(handle)) }
        }
        return nil
    }

    /// A connection that listens. Keywords before `dbname` are defaults the location may
    /// override (how long to wait for the server, TCP keepalives so that a silent link is
    /// found dead); the name after it is always this one's.
    private func connect() throws(LedgerError) -> OpaquePointer {
        let pairs = [
            ("connect_timeout", "10"), ("keepalives_idle", "30"), ("keepalives_interval", "10"), ("keepalives_count", "3"),
            ("dbname", url), ("application_name", applicationName),
        ]
        let keywords = pairs.map { strdup($0.0).map { UnsafePointer($0) } } + [nil]
        let values = pairs.map { strdup($0.1).map { UnsafePointer($0) } } + [nil]
        defer { for pointer in keywords + values { free(UnsafeMutablePointer(mutating: pointer)) } }
        guard let handle = PQconnectdbParams(keywords, values, 1) else { throw LedgerError(.storeFailed, "out of memory") }
        PQsetNoticeProcessor(handle, { _, _ in }, nil)
        guard PQstatus(handle) == CONNECTION_OK else { throw failed(handle) }
        let result = PQexec(handle, "LISTEN \(FleetSQL.channel)")
        defer { PQclear(result) }
        guard PQresultStatus(result) == PGRES_COMMAND_OK else { throw failed(handle) }
        return handle
    }

    private func failed(_ handle: OpaquePointer) -> LedgerError {
        let message = PostgresConnection.trimmed(PQerrorMessage(handle)).split(separator: "\n").first.map(String.init) ?? ""
        PQfinish(handle)
        return LedgerError(.storeFailed, "PostgreSQL at \(PostgresConnection.redacted(url)): \(message)")
    }

    private func pauseUnlessStopped(ms: Int64) {
        var left = ms
        while left > 0, !isStopped {
            let step = min(left, Int64(Self.stopCheckMs))
            usleep(UInt32(step * 1000))
            left -= step
        }
    }
}

extension LedgerLocation {
    /// A listener for the fleet's wake-ups at `location`: nil for SQLite, whose hosts share
    /// one machine and poll its file.
    public static func listener(_ location: String, applicationName: String, logger: Logger) -> PostgresListener? {
        isPostgres(location) ? PostgresListener(url: location, applicationName: applicationName, logger: logger) : nil
    }
}

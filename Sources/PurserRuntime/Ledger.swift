import Dispatch
import Glibc
public import Logging
public import PurserLedger
import PurserProtocol
import PurserSandbox
import Synchronization

/// The runtime's side of the ledger: one store, one lease for this supervisor, and the
/// reserve → run → settle bracket around every run.
public final class RuntimeLedger: Sendable {
    public let store: any LedgerStore
    private let lease = Mutex<Holder?>(nil)
    private let heartbeat = Mutex<UncheckedTimer?>(nil)
    /// How long a lease lasts without a heartbeat (renewed every third of it):
    /// `$PURSER_LEASE_MS`, by default 10 minutes. A supervisor that dies leaves its holds
    /// for at most this long before the next one to start reclaims them; the next one to
    /// start on its host reclaims them at once (`isDeadHolder`).
    public static let leaseMs: Int64 = {
        if let value = getenv("PURSER_LEASE_MS"), let ms = Int64(String(cString: value)), ms > 0 { return ms }
        return 10 * 60_000
    }()

    /// The store's files, which no untrusted worker may see (none for PostgreSQL).
    public let files: [String]
    /// Who hears of the store's retries, reconnects and give-ups.
    public let notices = StoreNotices()
    /// Where failures nobody waits for go: a heartbeat, a settle after the run has answered.
    public let logger: Logger

    /// Where the store is (a file or a PostgreSQL location), and how long it is waited for.
    public let location: String
    private let retry: StoreRetry

    public init(location: String, logger: Logger = Logger(label: "purser.ledger")) throws(RuntimeError) {
        self.logger = logger
        self.location = location
        files = LedgerLocation.isPostgres(location) ? [] : [location, location + "-wal", location + "-shm"]
        let notices = self.notices
        let retry = StoreRetry(windowMs: try StoreNotices.retryWindowMs()) { notices.say($0) }
        self.retry = retry
        do {
            store = try LedgerLocation.open(location, retry: retry)
            // Holds of supervisors that died (their leases ran out, or they were of this host
            // and their process is gone) go back to their parents.
            _ = try store.reclaimExpired()
            _ = try store.reclaim(leases: try store.liveLeases().filter(Self.isDeadHolder))
        } catch where error.code == .invalid {
            throw RuntimeError(code: .invalidRequest, message: "\(LedgerLocation.redacted(location)): \(error)")
        } catch {
            throw RuntimeError(code: .ledger, message: "ledger \(LedgerLocation.redacted(location)): \(error)")
        }
    }

    /// The fleet's queue and hosts, in the same store, over a connection of their own.
    public func fleetStore() throws(RuntimeError) -> any FleetStore {
        do throws(LedgerError) {
            return try LedgerLocation.openFleet(location, retry: retry)
        } catch {
            throw RuntimeError(error, context: "ledger \(LedgerLocation.redacted(location))")
        }
    }

    /// `$PURSER_LEDGER` if set, else the SQLite file in `$PURSER_HOME`.
    public static func defaultLocation(home: String) -> String {
        if let value = getenv("PURSER_LEDGER"), value.pointee != 0 { return String(cString: value) }
        return home + "/purser.db"
    }

    /// This supervisor's lease (taken on first use, then heartbeated).
    public func holder() throws(LedgerError) -> Holder {
        if let holder = lease.withLock({ $0 }) {
            try store.heartbeat(holder, ttlMs: Self.leaseMs)
            return holder
        }
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, host.count)
        let id = "purser-\(String(cString: host))-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            + (SupervisorIdentity.current.map { "@" + $0.global } ?? "")
        let holder = try store.acquireLease(holder: id, ttlMs: Self.leaseMs)
        lease.withLock { $0 = holder }
        startHeartbeat(holder)
        return holder
    }

    /// Whether a lease's holder is a supervisor of this host (same boot, same PID namespace)
    /// whose process is gone: its id ends "@" and its `SupervisorIdentity`. Holders of other
    /// hosts, and ids without one, wait for their lease to lapse.
    static func isDeadHolder(_ id: String) -> Bool {
        guard let at = id.lastIndex(of: "@") else { return false }
        return SupervisorIdentity(id[id.index(after: at)...])?.isDead ?? false
    }

    /// Renews the lease while this supervisor lives; when it dies, the lease runs out and
    /// the next supervisor to start reclaims its holds.
    private func startHeartbeat(_ holder: Holder) {
        let timer = DispatchSource.makeTimerSource(queue: .global(qos: .utility))
        let interval = DispatchTimeInterval.milliseconds(Int(max(Self.leaseMs / 3, 1)))
        timer.schedule(deadline: .now() + interval, repeating: interval)
        let (store, logger) = (self.store, self.logger)
        // The renewal runs on the store's threads: a store that waits holds up no timer.
        // One at a time: renewals that would queue behind a waiting one add nothing.
        let renewing = Flag()
        timer.setEventHandler {
            guard !renewing.value.exchange(true, ordering: .acquiringAndReleasing) else { return }
            StoreThreads.shared.submit {
                defer { renewing.value.store(false, ordering: .releasing) }
                do {
                    try store.heartbeat(holder, ttlMs: Self.leaseMs)
                } catch {
                    // Nobody waits on a heartbeat: unlogged, a lease that is about to lapse goes unseen.
                    logger.error("lease heartbeat failed", metadata: ["holder": "\(holder.id)", "error": "\(error)"])
                }
            }
        }
        timer.activate()
        let box = UncheckedTimer(timer: timer)
        heartbeat.withLock { $0 = box }
    }

    deinit {
        heartbeat.withLock { $0?.timer.cancel() }
    }

    /// Reserves the run's amounts from its team; nil and a message when the team cannot grant them.
    func reserve(_ request: RunRequest) async throws(RuntimeError) -> (node: Node?, holder: Holder?, denial: String?) {
        do throws(LedgerError) {
            return try await StoreThread.run { () throws(LedgerError) in try self.reserveNow(request) }
        } catch where error.code == .unknownTeam {
            throw RuntimeError(code: .invalidRequest, message: "--team: \(error.message)")
        } catch {
            throw RuntimeError(error)
        }
    }

    private func reserveNow(_ request: RunRequest) throws(LedgerError) -> (node: Node?, holder: Holder?, denial: String?) {
        do throws(LedgerError) {
            let team = if let name = request.team { try store.team(named: name) } else { try LocalTeam.open(in: store) }
            let holder = try holder()
            let node = try store.reserve(.run(
                .routine, name: request.pluginName, plugin: request.pluginName,
                amounts: Amounts(credits: request.credits, timeMs: request.wallTimeMs, memoryBytes: request.memoryBytes),
                from: team.id, tools: request.tools, holder: holder))
            return (node, holder, nil)
        } catch where error.code == .insufficient || error.code == .toolNotPermitted || error.code == .frozen {
            return (nil, nil, error.message)
        }
    }

    /// Settles the run's node with what the run used, on the store's threads; returns what
    /// the ledger charged and gave back.
    func settle(_ node: Node, holder: Holder?, report: RunReport) async throws(RuntimeError) -> Settlement {
        let settled = await StoreThread.run { () -> Result<Settlement, RuntimeError> in
            Result { () throws(RuntimeError) in try self.settleNow(node, holder: holder, report: report) }
        }
        return try settled.get()
    }

    /// A node found closed already counts only if it was closed as this run (an earlier
    /// try whose answer was lost with the connection: the store charged it once); one
    /// closed otherwise did not charge this run's usage, and that is said.
    @discardableResult
    func settleNow(_ node: Node, holder: Holder?, report: RunReport) throws(RuntimeError) -> Settlement {
        let outcome = LedgerOutcome.of(report.verdict)
        let settled: Settlement
        do {
            settled = try store.settle(
                node.id,
                usage: report.declaredUsage, outcome: outcome, holder: holder)
        } catch {
            throw RuntimeError(error, context: "ledger: settling node \(node.id)")
        }
        guard settled.outcome == outcome else {
            throw RuntimeError(
                code: .ledger,
                message: "ledger: node \(node.id) was closed already (\(settled.outcome), \(Credits(micros: settled.used.credits)) "
                    + "credits charged): this run's \(report.usage.credits) credits were not charged")
        }
        return settled
    }
}

/// A flag closures can share.
final class Flag: Sendable {
    let value = Atomic<Bool>(false)
}

/// A Dispatch timer is thread-safe; it is just not marked Sendable.
struct UncheckedTimer: @unchecked Sendable {
    let timer: any DispatchSourceTimer
}

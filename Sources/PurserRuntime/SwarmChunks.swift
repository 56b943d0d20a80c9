import Logging
public import PurserLedger
import Synchronization

/// A host's chunks of one swarm's hold. With many hosts running one swarm, every routine's
/// reserve and settle would update the swarm's node and the team's seat count: two rows that
/// every host waits on. Instead a host reserves a chunk of the swarm's hold (credits and time
/// for some dozens of routines, memory and worker seats for its own slots) and reserves its
/// routines from the chunk: the swarm's and the team's rows change twice a chunk, not twice
/// a routine. A chunk is a hold like any other (held by the host's lease, reclaimed with it,
/// checked by `ledger verify`); what it holds unused returns when its routines are done with
/// it: when it cannot fit the next one, or the swarm runs nothing on this host.
public final class SwarmChunks: Sendable {
    /// What one chunk holds: nil when the swarm's hold is too small to cut (a chunk would
    /// keep from the other hosts what their routines need), and then routines reserve from
    /// the swarm, one by one, as `purser run` does.
    let size: Resources?
    private let swarmName: String
    private let tools: [String]
    private let state = Mutex<State>(State())
    private let logger: Logger

    struct Chunk {
        let id: NodeID
        let holder: Holder
        /// Routines reserving from it or running in it now.
        var live = 0
        /// It takes no more routines; it closes once `live` is 0.
        var retired = false
    }

    struct State {
        /// The slots the host gives the swarm (a chunk's memory, and its worker seats when
        /// the team has no worker cap): nil until the host allows chunks for the swarm.
        var slots: Int64?
        /// Whether the team caps its workers: read with the first chunk.
        var teamCapsWorkers: Bool?
        /// After a chunk was refused, routines reserve from the swarm until then, rather than
        /// each try first for a chunk that cannot be had.
        var noChunkUntil = ContinuousClock.now
        var chunks: [Chunk] = []
        /// A chunk is being reserved: routines reserving meanwhile take their holds from the
        /// swarm, rather than each take a chunk of its own.
        var opening = false
    }

    /// At most this many routines' worth in one chunk, and at most an eighth of the swarm's
    /// hold: the rest stays with the swarm for its other hosts.
    static let routinesPerChunk: Int64 = 64
    static let shareOfSwarm: Int64 = 8
    /// A closed chunk's outcome in the ledger.
    static let outcome = "returned"

    init(swarm: Resources, largestRoutine unit: Resources, swarmName: String, tools: [String], logger: Logger) {
        let credits = min(unit.credits * Self.routinesPerChunk, swarm.credits / Self.shareOfSwarm)
        let time = min(unit.timeMs * Self.routinesPerChunk, swarm.timeMs / Self.shareOfSwarm)
        let worthIt = credits >= 2 * unit.credits && time >= 2 * unit.timeMs
        size = worthIt ? Resources(credits: credits, timeMs: time, memoryBytes: unit.memoryBytes) : nil
        self.swarmName = swarmName
        self.tools = tools
        self.logger = logger
    }

    /// Lets this host reserve chunks, each with `seats` worker seats (its slots for the
    /// swarm) and memory for as many routines. A team that preempts does not: a preemption
    /// stops routines to return their holds to the swarm, not to a chunk.
    public func allow(seats: Int) {
        guard size != nil, seats > 0 else { return }
        state.withLock { $0.slots = Int64(seats) }
    }

    /// Reserves a routine's hold from one of this host's chunks, taking a new chunk when none
    /// has room; from the swarm itself when chunks are not allowed or the swarm cannot give
    /// one. Runs on a store thread. The caller calls `released` with the hold's parent after
    /// the routine's settle.
    func reserve(_ request: ReserveRequest, swarm: NodeID, holder: Holder, store: any LedgerStore) throws(LedgerError) -> Node {
        // A hold bigger than a whole chunk (the adaptive strategy's, say) would only use up
        // chunks that cannot take it.
        guard let size, request.amounts.credits <= size.credits, request.amounts.timeMs <= size.timeMs else {
            return try store.reserve(request)
        }
        for _ in 0..<2 {
            guard let chunk = take(holder) ?? open(swarm: swarm, holder: holder, store: store) else { break }
            var asked = request
            asked.parent = chunk
            do throws(LedgerError) {
                return try store.reserve(asked)
            } catch {
                let spent = error.code == .insufficient || error.code == .closed || error.code == .fenced
                logger.debug("a chunk cannot hold the routine", metadata: ["chunk": "\(chunk)", "error": "\(error.message)"])
                if spent { retire(chunk) }
                released(chunk, store: store)
                if !spent { throw error }
            }
        }
        return try store.reserve(request)
    }

    /// A routine's hold from `parent` has been settled (or will be, by a retry): if `parent`
    /// is a retired chunk of this host that nothing runs in any more, it closes.
    func released(_ parent: NodeID, store: any LedgerStore) {
        if let done = release(parent) { close(done, store: store) }
    }

    /// `released` without the store: the chunk to close, if any (the caller closes it on a
    /// store thread), so that a routine's end costs no store thread when nothing closes.
    func release(_ parent: NodeID) -> Chunk? {
        state.withLock { state -> Chunk? in
            guard let at = state.chunks.firstIndex(where: { $0.id == parent }) else { return nil }
            state.chunks[at].live -= 1
            return state.chunks[at].retired && state.chunks[at].live == 0 ? state.chunks[at] : nil
        }
    }

    /// The swarm runs nothing on this host now: its chunks close, and what they hold unused
    /// goes back to the swarm for the other hosts. Runs on a store thread.
    public func closeIdle(store: any LedgerStore) {
        let idle = state.withLock { state -> [Chunk] in
            for at in state.chunks.indices where state.chunks[at].live == 0 { state.chunks[at].retired = true }
            return state.chunks.filter { $0.retired && $0.live == 0 }
        }
        for chunk in idle { close(chunk, store: store) }
    }

    public var isEmpty: Bool { state.withLock { $0.chunks.isEmpty } }

    private func take(_ holder: Holder) -> NodeID? {
        state.withLock { state in
            guard let at = state.chunks.firstIndex(where: { !$0.retired && $0.holder == holder }) else { return nil }
            state.chunks[at].live += 1
            return state.chunks[at].id
        }
    }

    private func retire(_ id: NodeID) {
        state.withLock { state in
            if let at = state.chunks.firstIndex(where: { $0.id == id }) { state.chunks[at].retired = true }
        }
    }

    /// A new chunk of the swarm's hold, taken with one routine in it; nil (logged) when the
    /// swarm or the team cannot give one now.
    private func open(swarm: NodeID, holder: Holder, store: any LedgerStore) -> NodeID? {
        guard let size else { return nil }
        let now = ContinuousClock.now
        let slots = state.withLock { state -> Int64? in
            guard let slots = state.slots, !state.opening, now >= state.noChunkUntil else { return nil }
            state.opening = true
            return slots
        }
        guard let slots else { return nil }
        defer { state.withLock { $0.opening = false } }
        do throws(LedgerError) {
            var request = ReserveRequest(
                parent: swarm, kind: .swarm, name: "\(swarmName) chunk of \(holder.id)",
                amounts: Resources(credits: size.credits, timeMs: size.timeMs, memoryBytes: size.memoryBytes * slots),
                tools: tools, holder: holder)
            // Seats taken ahead would be kept from the team's other work under a worker cap
            // (a step of this very routine, another swarm's routine): there, each routine
            // takes its own at the team.
            request.seats = try teamCapsWorkers(swarm, store) ? nil : slots
            let node = try store.reserve(request)
            state.withLock { $0.chunks.append(Chunk(id: node.id, holder: holder, live: 1)) }
            return node.id
        } catch {
            state.withLock { $0.noChunkUntil = now + Self.retryAfter }
            logger.debug("no chunk: reserving from the swarm", metadata: ["swarm": "\(swarm)", "error": "\(error.message)"])
            return nil
        }
    }

    private func teamCapsWorkers(_ swarm: NodeID, _ store: any LedgerStore) throws(LedgerError) -> Bool {
        if let known = state.withLock({ $0.teamCapsWorkers }) { return known }
        let caps = try store.team(named: store.node(swarm).team).workersCap != nil
        state.withLock { $0.teamCapsWorkers = caps }
        return caps
    }

    static let retryAfter = Duration.seconds(1)

    /// Settles a chunk nothing runs in: only once the ledger agrees it has no open hold under
    /// it (a run whose settle the store has not taken yet keeps it open: settling the chunk
    /// would close that hold as abandoned and lose what it used).
    func close(_ chunk: Chunk, store: any LedgerStore) {
        do throws(LedgerError) {
            guard try store.openChildren(of: chunk.id).isEmpty else { return }
            _ = try store.settle(chunk.id, usage: .none, outcome: Self.outcome, holder: chunk.holder)
        } catch where error.code == .storeFailed {
            logger.warning("a chunk's settle waits for the store", metadata: ["chunk": "\(chunk.id)", "error": "\(error.message)"])
            return
        } catch {
            // Closed or reclaimed already (the swarm ended, or this host was found lost).
            logger.notice("a chunk was closed without this host", metadata: ["chunk": "\(chunk.id)", "error": "\(error.message)"])
        }
        state.withLock { state in state.chunks.removeAll { $0.id == chunk.id && $0.live == 0 } }
    }
}

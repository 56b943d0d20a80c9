import Logging
import PurserLedger
@testable import PurserRuntime
import PurserTestSupport
import Testing

/// A host's chunks of a swarm's hold (`SwarmChunks`), against a real ledger file.
@Suite("Chunks of a swarm's hold")
struct SwarmChunksTests {
    let credit: Int64 = 1_000_000
    let store: any LedgerStore
    let swarm: Node
    let holder: Holder

    init() throws {
        store = try SQLiteLedger(path: Fixtures.temporaryHome() + "/purser.db")
        let team = try store.createTeam(TeamSpec(name: "t", caps: Resources(credits: 1000 * 1_000_000, timeMs: 1 << 40, memoryBytes: 1 << 40), workers: 8))
        swarm = try store.reserve(ReserveRequest(
            parent: team.id, kind: .swarm, name: "s", amounts: Resources(credits: 160 * 1_000_000, timeMs: 1 << 30, memoryBytes: 1 << 32)))
        holder = try store.acquireLease(holder: "host:a", ttlMs: 60_000)
    }

    func chunks(of swarm: Node? = nil) -> SwarmChunks {
        let chunks = SwarmChunks(
            swarm: (swarm ?? self.swarm).cap, largestRoutine: Resources(credits: credit, timeMs: 1_000, memoryBytes: 1 << 20), swarmName: "s",
            tools: [], logger: Logger(label: "test"))
        chunks.allow(seats: 2)
        return chunks
    }

    func routine(_ credits: Int64) -> ReserveRequest {
        ReserveRequest(parent: swarm.id, kind: .routine, name: "r", amounts: Resources(credits: credits, timeMs: 1_000, memoryBytes: 1 << 20), holder: holder)
    }

    @Test func routinesShareOneChunkAndItClosesWhenIdle() throws {
        let chunks = chunks()
        let first = try chunks.reserve(routine(credit), swarm: swarm.id, holder: holder, store: store)
        let second = try chunks.reserve(routine(credit), swarm: swarm.id, holder: holder, store: store)
        #expect(first.parent != swarm.id && first.parent == second.parent, "both from one chunk")
        let chunk = try store.node(first.parent!)
        #expect(chunk.cap.credits == 20 * credit, "an eighth of the swarm, below 64 routines' worth")
        for node in [first, second] {
            _ = try store.settle(node.id, usage: Usage(credits: credit / 2, timeMs: 10, memoryPeakBytes: 0), outcome: "ok", holder: holder)
            chunks.released(node.parent!, store: store)
        }
        #expect(try store.node(chunk.id).isOpen, "a chunk stays while the swarm runs on the host")
        chunks.closeIdle(store: store)
        let closed = try store.node(chunk.id)
        #expect(!closed.isOpen && closed.consumed.credits == credit && chunks.isEmpty)
        #expect(try store.verify().isEmpty)
    }

    @Test func aHoldBiggerThanAChunkComesFromTheSwarm() throws {
        let chunks = chunks()
        let big = try chunks.reserve(routine(30 * credit), swarm: swarm.id, holder: holder, store: store)
        #expect(big.parent == swarm.id)
        #expect(try store.tree(team: "t").filter { $0.kind == .swarm && $0.parent != nil && $0.name.contains("chunk") }.isEmpty, "no chunk was taken for it")
    }

    @Test func aFullChunkIsRetiredAndClosesWithItsLastRoutine() throws {
        let chunks = chunks()
        let first = try chunks.reserve(routine(15 * credit), swarm: swarm.id, holder: holder, store: store)
        let second = try chunks.reserve(routine(15 * credit), swarm: swarm.id, holder: holder, store: store)
        #expect(first.parent != second.parent && second.parent != swarm.id, "the second did not fit the first chunk: a new one")
        _ = try store.settle(first.id, usage: .none, outcome: "ok", holder: holder)
        chunks.released(first.parent!, store: store)
        #expect(!(try store.node(first.parent!).isOpen), "the full chunk closed with its last routine")
        #expect(try store.node(second.parent!).isOpen)
        #expect(try store.verify().isEmpty)
    }
    /// A chunk takes a team seat for each slot the host gives the swarm, used or not. With one
    /// routine running in it and a team of two workers, the team's second worker must still
    /// find a seat: a step of that routine, or a routine of another swarm, as without chunks
    /// (there, one routine holds one seat). Review finding: both are refused "no free worker
    /// slot", which fails the step and denies the other swarm's routine.
    @Test func aChunksUnusedSeatsDoNotStarveTheTeam() throws {
        let store = try SQLiteLedger(path: Fixtures.temporaryHome() + "/purser.db")
        let team = try store.createTeam(TeamSpec(name: "w", caps: Resources(credits: 1000 * credit, timeMs: 1 << 40, memoryBytes: 1 << 40), workers: 2))
        let amounts = Resources(credits: 160 * credit, timeMs: 1 << 30, memoryBytes: 1 << 32)
        let swarm = try store.reserve(ReserveRequest(parent: team.id, kind: .swarm, name: "s", amounts: amounts))
        let other = try store.reserve(ReserveRequest(parent: team.id, kind: .swarm, name: "o", amounts: amounts))
        let holder = try store.acquireLease(holder: "host:a", ttlMs: 60_000)
        let chunks = chunks(of: swarm)
        let run = Resources(credits: credit, timeMs: 1_000, memoryBytes: 1 << 20)
        let routine = try chunks.reserve(
            ReserveRequest(parent: swarm.id, kind: .routine, name: "r", amounts: run, holder: holder), swarm: swarm.id, holder: holder,
            store: store)
        #expect(routine.parent != swarm.id, "from a chunk")
        let step = try #require(try? store.reserve(ReserveRequest(
            parent: routine.id, kind: .step, name: "p", amounts: Resources(credits: credit / 2, timeMs: 500, memoryBytes: 1 << 19),
            holder: holder)), "one worker runs; the team allows two: its step gets the second")
        _ = try store.settle(step.id, usage: .none, outcome: "ok", holder: holder)
        #expect(throws: Never.self, "or another swarm's routine does") {
            try store.reserve(ReserveRequest(parent: other.id, kind: .routine, name: "x", amounts: run, holder: holder))
        }
    }
}

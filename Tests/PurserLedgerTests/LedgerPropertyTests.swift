import Foundation
import Synchronization
@testable import PurserLedger
import PurserTestSupport
import Testing

@Suite("Ledger under random operations and many processes", .storeWork, .timeLimit(.minutes(3)))
struct LedgerPropertyTests {
    /// Thousands of random reserve, spend, return, fail, crash and reclaim steps over a
    /// random tree; the invariant must hold after every one.
    @Test(arguments: StoreKind.allCases)
    func randomSequencesKeepTheInvariant(kind: StoreKind) throws {
        let store = try kind.make()
        let seed = try Self.seed()
        var rng = Xorshift(seed: seed)
        let cap: Int64 = 1_000 * credit
        let team = try store.createTeam(TeamSpec(
            name: "p", caps: Resources(credits: cap, timeMs: 1_000_000, memoryBytes: 1_000 * mb), workers: 40))
        let lease = try store.acquireLease(holder: "dies", ttlMs: -1)  // expired: the next sweep reclaims it
        var open: [Node] = [team]
        for step in 0..<1_500 {
            let parent = open[Int(rng.next() % UInt64(open.count))]
            do {
                try randomStep(store, parent: parent, step: step, lease: lease, rng: &rng)
            } catch let error as LedgerError {
                let expected: [LedgerError.Code] = [.insufficient, .closed, .fenced]
                #expect(expected.contains(error.code), "PURSER_TEST_SEED=\(seed), step \(step): \(error)")
            }
            open = try store.tree(team: "p").filter(\.isOpen)
            let violations = try store.verify()
            #expect(violations.isEmpty, "PURSER_TEST_SEED=\(seed), step \(step): \(violations)")
            if !violations.isEmpty { return }
        }
        // Total spend never exceeds any ancestor's cap.
        let nodes = try store.tree(team: "p")
        let teamNow = try #require(nodes.first)
        #expect(teamNow.consumed.credits + teamNow.reserved.credits + teamNow.available.credits == cap)
        for node in nodes where !node.isOpen {
            #expect(node.consumed.credits <= node.cap.credits, "PURSER_TEST_SEED=\(seed)")
        }
    }

    /// A random sequence's seed: `$PURSER_TEST_SEED` replays the one a failure named; else a new one.
    static func seed(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> UInt64 {
        guard let text = environment["PURSER_TEST_SEED"] else { return UInt64.random(in: 0...UInt64.max) }
        guard let seed = UInt64(text) else { throw SeedError(text: text) }
        return seed
    }

    struct SeedError: Error { let text: String }

    @Test func aSeedFromTheEnvironmentIsReplayed() throws {
        #expect(try Self.seed(["PURSER_TEST_SEED": "12345"]) == 12345)
        #expect(throws: SeedError.self) { try Self.seed(["PURSER_TEST_SEED": "twelve"]) }
    }

    private func randomStep(
        _ store: any LedgerStore, parent: Node, step: Int, lease: Holder, rng: inout Xorshift
    ) throws {
        switch rng.next() % 6 {
        case 0, 1:  // reserve
            let kinds: [NodeKind] = [.swarm, .routine, .step]
            let amounts = Resources(
                credits: Int64(rng.next() % UInt64(max(parent.cap.credits / 2, 1) + 1)),
                timeMs: Int64(rng.next() % 1_000), memoryBytes: Int64(rng.next() % UInt64(10 * mb)))
            let holder = rng.next() % 5 == 0 ? lease : nil
            _ = try store.reserve(ReserveRequest(
                parent: parent.id, kind: kinds[Int(rng.next() % 3)], name: "n\(step)", amounts: amounts, holder: holder))
        case 2:  // spend, sometimes more than is there
            guard parent.kind != .team else { return }
            try store.spend(parent.id, credits: Int64(rng.next() % UInt64(parent.cap.credits + 2)), holder: nil)
        case 3, 4:  // settle: ok, failed or crashed, with honest or inflated usage
            guard parent.kind != .team else { return }
            let usage = Usage(
                credits: Int64(rng.next() % UInt64(parent.cap.credits * 2 + 1)), timeMs: Int64(rng.next() % 2_000),
                memoryPeakBytes: Int64(rng.next() % UInt64(20 * mb)))
            _ = try store.settle(parent.id, usage: usage, outcome: ["ok", "failed", "crashed"][Int(rng.next() % 3)], holder: nil)
        default:  // a holder dies: its holds are reclaimed
            if rng.next() % 10 == 0 { _ = try store.reclaimExpired() }
        }
    }

    /// Several OS processes reserve from one team at once, for many rounds.
    @Test(arguments: StoreKind.allCases)
    func processesShareOneTeamWithoutOverspending(kind: StoreKind) throws {
        let location = try Self.newLocation(kind)
        let store = try LedgerLocation.open(location)
        let cap: Int64 = 200 * credit
        _ = try store.createTeam(TeamSpec(name: "shared", caps: Resources(credits: cap)))
        let processes = (0..<4).map { index in
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Fixtures.product("ledger-stress"))
            process.arguments = [location, "shared", "150", "\(index + 1)"]
            let pipe = Pipe()
            process.standardOutput = pipe
            return (process, pipe)
        }
        for (process, _) in processes { try process.run() }
        var charged: Int64 = 0
        for (process, pipe) in processes {
            let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            #expect(process.terminationStatus == 0)
            charged += Int64(output.split(separator: " ").first ?? "0") ?? 0
        }
        let team = try store.team(named: "shared")
        #expect(team.consumed.credits == charged, "every charge is in the team, once")
        #expect(team.available.credits == cap - charged)
        #expect(team.reserved.credits == 0)
        #expect(try store.verify().isEmpty)
    }

    /// A store of its own that other processes can open too: a SQLite file or a database.
    private static func newLocation(_ kind: StoreKind) throws -> String {
        switch kind {
        case .sqlite: Fixtures.temporaryHome() + "/purser.db"
        case .postgres: try PostgresServer.shared.makeDatabase()
        }
    }

    /// A grant its caller was told of is in the store, whenever the process dies: nobody
    /// is answered before the commit that holds their grant (group commit on SQLite).
    @Test(arguments: StoreKind.allCases)
    func grantsSurviveTheProcessBeingKilled(kind: StoreKind) throws {
        let location = try Self.newLocation(kind)
        let store = try LedgerLocation.open(location)
        _ = try store.createTeam(TeamSpec(name: "grants", caps: Resources(credits: 1_000_000)))
        for _ in 0..<3 {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Fixtures.product("ledger-stress"))
            process.arguments = [location, "grants", "--grants", "16"]
            let pipe = Pipe()
            process.standardOutput = pipe
            try process.run()
            var told: [NodeID] = []
            var pending = ""
            // Killed while grants are being made: right after a line is read.
            while told.count < 300 {
                let data = pipe.fileHandleForReading.availableData
                guard !data.isEmpty else { break }
                pending += String(decoding: data, as: UTF8.self)
                while let end = pending.firstIndex(of: "\n") {
                    told.append(NodeID(pending[..<end]) ?? -1)
                    pending.removeSubrange(...end)
                }
            }
            kill(process.processIdentifier, SIGKILL)
            pending += String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            told += pending.split(separator: "\n").map { NodeID($0) ?? -1 }
            process.waitUntilExit()
            #expect(process.terminationReason == .uncaughtSignal, "the grants ran until killed")
            #expect(told.count >= 300)
            let lost = told.filter { id in
                guard id > 0, let node = try? store.node(id) else { return true }
                return !node.isOpen || node.cap.credits != 1
            }
            #expect(lost.isEmpty, "granted, then not in the store: \(lost.prefix(10))")
        }
        #expect(try store.verify().isEmpty)
    }

    @Test("adaptive beats conservative when estimates are wrong")
    func adaptiveIsBetterOnWrongEstimates() throws {
        for (label, truth) in [("over-estimates", 0.5), ("under-estimates", 1.5)] {
            var history: [Node] = []
            var results: [ReservationStrategy: (reserved: Int64, used: Int64, exhausted: Int)] = [:]
            var rng = Xorshift(seed: 42)
            for strategy in [ReservationStrategy.conservative, .adaptive] {
                var totals = (reserved: Int64(0), used: Int64(0), exhausted: 0)
                for _ in 0..<200 {
                    let estimate = Int64(rng.next() % 1_000) + 100
                    let actual = Int64(Double(estimate) * truth * (0.9 + Double(rng.next() % 20) / 100))
                    let reserved = strategy.amount(for: estimate, history: history)
                    let used = min(actual, reserved)
                    if actual > reserved { totals.exhausted += 1 }
                    totals.reserved += reserved
                    totals.used += used
                    history.insert(Node.settled(estimate: estimate, used: used, cap: reserved), at: 0)
                }
                results[strategy] = totals
                history = []
            }
            let conservative = try #require(results[.conservative])
            let adaptive = try #require(results[.adaptive])
            let conservativeEfficiency = Double(conservative.used) / Double(conservative.reserved)
            let adaptiveEfficiency = Double(adaptive.used) / Double(adaptive.reserved)
            #expect(adaptive.exhausted <= conservative.exhausted, "\(label)")
            #expect(
                adaptiveEfficiency > conservativeEfficiency || adaptive.exhausted < conservative.exhausted,
                "\(label): adaptive \(adaptiveEfficiency) vs conservative \(conservativeEfficiency)")
            if truth < 1 { #expect(adaptiveEfficiency > conservativeEfficiency + 0.2, "\(label)") }
            if truth > 1 { #expect(adaptive.exhausted < conservative.exhausted / 2, "\(label)") }
        }
    }

    @Test("strategies and analytics follow their definitions")
    func definitions() {
        #expect(ReservationStrategy.conservative.amount(for: 1_000) == 1_200)
        #expect(ReservationStrategy.optimistic.amount(for: 1_000) == 1_050)
        #expect(ReservationStrategy.exact.amount(for: 1_000) == 1_000)
        #expect(ReservationStrategy.adaptive.amount(for: 1_000, history: []) == 1_200, "too few samples: conservative")
        let nodes = [Node.settled(estimate: 100, used: 80, cap: 120), Node.settled(estimate: 100, used: 100, cap: 120)]
        let analytics = Analytics(nodes)
        #expect(abs(analytics.utilizationEfficiency - 180.0 / 240.0) < 1e-9)
        #expect(abs(analytics.returnRate - 60.0 / 240.0) < 1e-9)
        #expect(abs(analytics.reservationAccuracy - 0.9) < 1e-9)
    }
}

extension Node {
    static func settled(estimate: Int64, used: Int64, cap: Int64) -> Node {
        Node(
            id: 0, parent: 1, team: "t", kind: .routine, name: "r", isOpen: false, tools: [],
            cap: Resources(credits: cap), available: .zero, reserved: .zero, consumed: Resources(credits: used),
            returned: Resources(credits: cap - used), workersCap: nil, workersInUse: 0, holder: nil, plugin: "p",
            estimate: estimate, strategy: nil, outcome: "ok")
    }
}

struct Xorshift {
    var state: UInt64
    init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }
    mutating func next() -> UInt64 {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return state
    }
}

@Suite("Ledger with concurrent callers in one process", .storeWork, .timeLimit(.minutes(2)))
struct LedgerThreadTests {
    /// Group commit batches concurrent transactions: a failure in one must not touch the others.
    @Test(arguments: StoreKind.allCases)
    func concurrentCallersShareCommitsSafely(kind: StoreKind) throws {
        let store = try kind.make()
        let cap: Int64 = 300 * credit
        let team = try store.createTeam(TeamSpec(name: "c", caps: Resources(credits: cap)))
        let charged = Mutex<Int64>(0)
        let denied = Mutex<Int>(0)
        let failures = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 16) { worker in
            var rng = Xorshift(seed: UInt64(worker + 1))
            for round in 0..<40 {
                do {
                    let amount = Int64(rng.next() % UInt64(40 * credit)) + 1
                    let node = try store.reserve(ReserveRequest(
                        parent: team.id, kind: .routine, name: "w\(worker)-\(round)", amounts: Resources(credits: amount)))
                    let settlement = try store.settle(
                        node.id, usage: Usage(credits: Int64(rng.next() % UInt64(amount * 2)), timeMs: 0, memoryPeakBytes: 0),
                        outcome: "ok", holder: nil)
                    charged.withLock { $0 += settlement.used.credits }
                } catch let error as LedgerError where error.code == .insufficient {
                    denied.withLock { $0 += 1 }
                } catch {
                    failures.withLock { $0.append("\(error)") }
                }
            }
        }
        #expect(failures.withLock { $0 }.isEmpty)
        let after = try store.node(team.id)
        #expect(after.consumed.credits == charged.withLock { $0 })
        #expect(after.available.credits == cap - charged.withLock { $0 })
        #expect(denied.withLock { $0 } > 0, "the workload should run the team dry at times")
        #expect(try store.verify().isEmpty)
    }
}

import Foundation
import PurserLedger

// One OS process hammering a shared team: reserve, spend, settle, again and again.
// Usage: ledger-stress STORE TEAM ROUNDS SEED. STORE is a SQLite path or a postgres URL.
// Prints the micro-credits it was charged, for the test to add up.
let arguments = CommandLine.arguments
guard arguments.count == 5, let rounds = Int(arguments[3]), let seed = UInt64(arguments[4]) else {
    FileHandle.standardError.write(Data("usage: ledger-stress STORE TEAM ROUNDS SEED\n".utf8))
    exit(2)
}
let store: any LedgerStore
do {
    store = try LedgerLocation.open(arguments[1])
} catch {
    FileHandle.standardError.write(Data("ledger-stress: \(error)\n".utf8))
    exit(1)
}
var random = SplitMix(seed: seed)
var charged: Int64 = 0
var denied = 0
do {
    let team = try store.team(named: arguments[2])
    for round in 0..<rounds {
        let amount = Int64(random.next() % 5_000_000) + 1
        let node: Node
        do {
            node = try store.reserve(ReserveRequest(
                parent: team.id, kind: .routine, name: "r\(seed)-\(round)", amounts: Resources(credits: amount)))
        } catch where error.code == .insufficient {
            denied += 1
            continue
        }
        let spend = Int64(random.next() % UInt64(amount + 1))
        try store.spend(node.id, credits: spend, holder: nil)
        // Sometimes the "worker" declares more than it spent, or more than it holds.
        let declared = random.next() % 4 == 0 ? amount * 2 : spend
        let settlement = try store.settle(
            node.id, usage: Usage(credits: declared, timeMs: 0, memoryPeakBytes: 0), outcome: "ok", holder: nil)
        charged += settlement.used.credits
    }
} catch {
    FileHandle.standardError.write(Data("ledger-stress: \(error)\n".utf8))
    exit(1)
}
print("\(charged) \(denied)")

struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

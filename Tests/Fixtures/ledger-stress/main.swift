import Foundation
import PurserLedger
import PurserHarness

// One OS process hammering a shared team: reserve, spend, settle, again and again.
// Usage: ledger-stress STORE TEAM ROUNDS SEED. STORE is a SQLite path or a postgres URL.
// Prints the micro-credits it was charged, for the test to add up.
//
// Or: ledger-stress STORE TEAM --grants THREADS. Threads reserve 1 µcredit each from the
// team until the process is killed, and print each granted node's id the moment they are
// told, for the test to look for after it kills the process.
let arguments = CommandLine.arguments
let store: any LedgerStore
do {
    store = try LedgerLocation.open(arguments.count > 1 ? arguments[1] : "")
} catch {
    FileHandle.standardError.write(Data("ledger-stress: \(error)\n".utf8))
    exit(1)
}
if arguments.count == 5, arguments[3] == "--grants", let threads = Int(arguments[4]) {
    grantUntilKilled(team: arguments[2], threads: threads)
}
guard arguments.count == 5, let rounds = Int(arguments[3]), let seed = UInt64(arguments[4]) else {
    FileHandle.standardError.write(Data("usage: ledger-stress STORE TEAM ROUNDS SEED\n".utf8))
    exit(2)
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

func grantUntilKilled(team name: String, threads: Int) -> Never {
    let team: Node
    do {
        team = try store.team(named: name)
    } catch {
        FileHandle.standardError.write(Data("ledger-stress: \(error)\n".utf8))
        exit(1)
    }
    for thread in 0..<threads {
        Thread {
            for round in 0... {
                guard let node = try? store.reserve(ReserveRequest(
                    parent: team.id, kind: .routine, name: "g\(thread)-\(round)", amounts: Resources(credits: 1)))
                else { exit(1) }
                // One write(2) a line: whole lines, out of the process before the next grant.
                let line = Array("\(node.id)\n".utf8)
                guard write(1, line, line.count) == line.count else { exit(1) }
            }
        }.start()
    }
    while true { sleep(60) }
}

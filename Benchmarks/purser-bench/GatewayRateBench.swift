import Foundation
import PurserHarness
import PurserLedger
import Synchronization

// The shared rate limit's cost: `admitCall`, the conditional UPDATE … RETURNING that admits
// a call by an integration's GCRA in the store, from 1, 3 and 8 threads at once, each over
// a store of its own (as supervisors are), all on one integration's row. SQLite on this
// host's disk, and PostgreSQL over TCP on 127.0.0.1. Every call is admitted (a 1 µs
// interval, an hour of tolerance): the write path, the one a call pays when it goes.

func gatewayRateBenchmark() async throws {
    let sqlite = NSTemporaryDirectory() + "purser-rate-\(getpid()).db"
    defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: sqlite + suffix) } }
    try rateRounds("SQLite") { try LedgerLocation.open(sqlite) }
    let server = try await PostgresServer.start(tcp: TCPListening(address: "127.0.0.1"))
    defer { server.stop() }
    let url = try server.tcpURL(database: try server.createDatabase())
    try rateRounds("PostgreSQL, TCP 127.0.0.1") { try LedgerLocation.open(url) }
}

func rateRounds(_ label: String, open: () throws -> any LedgerStore) throws {
    for clients in [1, 3, 8] {
        let stores = try (0..<clients).map { _ in try open() }
        let perClient = max(iterations / clients, 1)
        let latencies = Mutex<[Double]>([])
        let start = Date()
        DispatchQueue.concurrentPerform(iterations: clients) { index in
            var mine: [Double] = []
            mine.reserveCapacity(perClient)
            for _ in 0..<perClient {
                let began = Date()
                let admitted = (try? stores[index].admitCall(name: "bench", intervalUs: 1, toleranceUs: 3_600_000_000))?.admitted
                precondition(admitted == true, "the benchmark's call was not admitted")
                mine.append(Date().timeIntervalSince(began))
            }
            latencies.withLock { $0 += mine }
        }
        let seconds = Date().timeIntervalSince(start)
        let sorted = latencies.withLock { $0 }.sorted()
        let median = sorted[sorted.count / 2] * 1e6
        let p99 = sorted[sorted.count * 99 / 100] * 1e6
        show("\(label), \(clients) supervisor(s)", Double(clients * perClient) / seconds)
        print(String(format: "  round trip: median %.0f µs, p99 %.0f µs", median, p99))
    }
}

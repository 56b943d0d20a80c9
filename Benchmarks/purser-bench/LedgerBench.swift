import CPurserBenchFloor
import Foundation
import PurserLedger
import PurserHarness
import Synchronization

/// `--callers 1,8,32`: how many threads call the ledger at once, one run each.
func callerCounts(default counts: [Int]) -> [Int] {
    guard let index = CommandLine.arguments.firstIndex(of: "--callers"), index + 1 < CommandLine.arguments.count else {
        return counts
    }
    return CommandLine.arguments[index + 1].split(separator: ",").compactMap { Int($0) }
}

/// Reserve+settle pairs per second through the ledger, next to a raw SQLite loop doing
/// one conditional UPDATE and one INSERT per transaction, at the same durability.
///
/// The goal (3x the floor) is group commit's, so it is taken where callers wait together:
/// at 128. A batch holds at most one operation a caller, and on two cores the one thread
/// that runs it spends about 11 µs of CPU an operation plus a COMMIT and an fsync a batch;
/// 32 callers fill batches of about 26, which is 2.2x-2.9x here (see docs/benchmarks.md).
func ledgerBenchmark() throws {
    let directory = NSTemporaryDirectory() + "purser-ledger-bench-\(getpid())"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    // The floor and the ledger run under the same process-wide SQLite settings.
    SQLiteDriver.configureProcess()
    // This host's speed drifts by a third from one second to the next: each row's ratio is
    // against the floor measured just before and just after it.
    func floorRate() -> Double {
        let seconds = purser_bench_sqlite_floor(directory + "/floor.db", Int32(max(iterations / 2, 1)))
        precondition(seconds > 0, "the SQLite floor loop failed")
        return Double(max(iterations / 2, 1)) / seconds
    }
    let floorStart = CPUTimes()
    var floor = floorRate()
    print("purser-bench ledger: \(iterations) pairs per run, SQLite WAL, synchronous=FULL")
    show("floor: raw SQLite, UPDATE+INSERT per transaction", floor)
    print(CPUTimes().since(floorStart, routines: max(iterations / 2, 1), own: "-", per: "transaction"))
    for callers in callerCounts(default: [1, 8, 32, 128]) {
        let store = try SQLiteLedger(path: directory + "/ledger-\(callers).db")
        let team = try store.createTeam(TeamSpec(
            name: "bench", caps: Resources(credits: Int64.max / 4, timeMs: Int64.max / 4, memoryBytes: Int64.max / 4)))
        // Callers draw pairs from one counter, as pgbench clients share a run, so that no
        // straggler ends the run alone.
        let tickets = Mutex(iterations)
        let failures = Mutex(0)
        let group = DispatchGroup()
        let cpu = CPUTimes()
        let start = ContinuousClock.now
        for caller in 0..<callers {
            group.enter()
            Thread {
                var round = 0
                while tickets.withLock({ (left: inout Int) -> Bool in left -= 1; return left >= 0 }) {
                    round += 1
                    do {
                        let node = try store.reserve(ReserveRequest(
                            parent: team.id, kind: .swarm, name: "c\(caller)-\(round)", amounts: Resources(credits: 10, timeMs: 10)))
                        _ = try store.settle(node.id, usage: Usage(credits: 7, timeMs: 1, memoryPeakBytes: 0), outcome: "ok", holder: nil)
                    } catch {
                        failures.withLock { $0 += 1 }
                    }
                }
                group.leave()
            }.start()
        }
        group.wait()
        let elapsed = ContinuousClock.now - start
        let used = CPUTimes().since(cpu, routines: iterations, own: "-", per: "pair")
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        precondition(failures.withLock { $0 } == 0, "ledger operations failed")
        let verified = try store.verify().isEmpty
        precondition(verified, "the ledger does not verify")
        let after = floorRate()
        show("ledger reserve+settle pairs, \(callers) caller\(callers == 1 ? "" : "s")", Double(iterations) / seconds,
            against: (floor + after) / 2, goal: callers >= 128 ? 3.0 : nil)
        print(used + String(format: "; floor around it %.0f /s and %.0f /s", floor, after))
        floor = after
    }
}

/// The same on PostgreSQL over a Unix socket, next to pgbench running the floor's SQL
/// against the same server, with as many clients.
func postgresBenchmark(clients: Int = 8, seconds: Int = 5) throws {
    let server = PostgresServer.shared
    let floorDatabase = try server.makeDatabase()  // throws, saying why, if there is no PostgreSQL
    guard let bin = server.binDirectory else { throw BenchError(code: "noPostgres", "no PostgreSQL") }
    let setup = try PostgresLedger(url: floorDatabase).driver
    try setup.transaction { (session) throws(LedgerError) in
        _ = try session.query("CREATE TABLE balance (id BIGINT PRIMARY KEY, available BIGINT NOT NULL)", [])
        _ = try session.query("CREATE TABLE moves (id BIGSERIAL PRIMARY KEY, amount BIGINT, at BIGINT)", [])
        _ = try session.query("INSERT INTO balance VALUES (1, 1000000000000)", [])
    }
    let script = NSTemporaryDirectory() + "purser-pgbench-\(getpid()).sql"
    try """
        BEGIN;
        UPDATE balance SET available = available - 1 WHERE id = 1 AND available >= 1;
        INSERT INTO moves (amount, at) VALUES (1, 1);
        END;
        """.write(toFile: script, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(atPath: script) }
    var start = CPUTimes()
    let floor = try pgbenchRate(bin: bin, script: script, database: floorDatabase, clients: clients, seconds: seconds)
    print("purser-bench ledger on PostgreSQL: \(clients) clients, \(seconds) s each (test server: fsync off)")
    show("floor: pgbench, UPDATE+INSERT per transaction", floor)
    print(CPUTimes().since(start, routines: Int(floor) * seconds, own: "pgbench", per: "transaction") + serverNotCounted)

    let url = try server.makeDatabase()
    let store = try PostgresLedger(url: url)
    let team = try store.createTeam(TeamSpec(
        name: "bench", caps: Resources(credits: Int64.max / 4, timeMs: Int64.max / 4, memoryBytes: Int64.max / 4)))
    // pgbench running the ledger's own SQL: the two calls a reserve+settle pair makes.
    try """
        SELECT id FROM purser_reserve(\(team.id), 'swarm', 'pgbench', '', 10, 10, 0, NULL, NULL, NULL, NULL, NULL, 0) \\gset
        SELECT * FROM purser_settle(:id, 7, 1, 0, 'ok', NULL, NULL, 0);
        """.write(toFile: script, atomically: true, encoding: .utf8)
    start = CPUTimes()
    let sameSQL = try pgbenchRate(bin: bin, script: script, database: url, clients: clients, seconds: seconds)
    show("floor: pgbench, the ledger's reserve+settle SQL", sameSQL)
    print(CPUTimes().since(start, routines: Int(sameSQL) * seconds, own: "pgbench", per: "pair") + serverNotCounted)
    start = CPUTimes()
    let pairs = Mutex(0)
    let failures = Mutex(0)
    let group = DispatchGroup()
    let deadline = ContinuousClock.now + .seconds(seconds)
    for client in 0..<clients {
        group.enter()
        Thread {
            defer { group.leave() }
            guard let store = try? PostgresLedger(url: url) else { return failures.withLock { $0 += 1 } }
            var round = 0
            while ContinuousClock.now < deadline {
                do {
                    let node = try store.reserve(ReserveRequest(
                        parent: team.id, kind: .swarm, name: "c\(client)-\(round)", amounts: Resources(credits: 10, timeMs: 10)))
                    _ = try store.settle(node.id, usage: Usage(credits: 7, timeMs: 1, memoryPeakBytes: 0), outcome: "ok", holder: nil)
                    pairs.withLock { $0 += 1 }
                } catch {
                    failures.withLock { $0 += 1 }
                }
                round += 1
            }
        }.start()
    }
    group.wait()
    let verified = try store.verify().isEmpty
    precondition(verified, "the ledger does not verify")
    let rate = Double(pairs.withLock { $0 }) / Double(seconds)
    show("ledger reserve+settle pairs, \(clients) connections", rate, against: floor)
    print(CPUTimes().since(start, routines: pairs.withLock { $0 }, own: "-", per: "pair") + serverNotCounted)
    show("  the same, against pgbench running the same SQL", rate, against: sameSQL, goal: 0.8)
    if failures.withLock({ $0 }) > 0 { print("  (\(failures.withLock { $0 }) operations failed and were not counted)") }
}

/// The server's CPU is its own processes', which are not this one's children.
let serverNotCounted = " (the server's own not counted)"

/// Transactions per second pgbench reaches running `script`.
func pgbenchRate(bin: String, script: String, database: String, clients: Int, seconds: Int) throws -> Double {
    try pgbenchRate(bin: bin, ["-n", "-f", script, "-c", "\(clients)", "-j", "2", "-T", "\(seconds)", database])
}

/// Transactions per second pgbench reaches with `arguments`, without its connections' set-up.
func pgbenchRate(bin: String, _ arguments: [String]) throws -> Double {
    let pgbench = Process()
    pgbench.executableURL = URL(fileURLWithPath: bin + "/pgbench")
    pgbench.arguments = arguments
    let output = Pipe()
    pgbench.standardOutput = output
    pgbench.standardError = FileHandle.nullDevice
    try pgbench.run()
    let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    pgbench.waitUntilExit()
    guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("tps = ") }),
        let rate = Double(line.dropFirst("tps = ".count).prefix(while: { $0 != " " }))
    else { throw BenchError(code: "pgbench", "pgbench printed no tps: \(text)") }
    return rate
}

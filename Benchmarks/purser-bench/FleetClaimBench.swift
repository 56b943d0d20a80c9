@preconcurrency import Glibc
import Foundation
import PurserHarness
import PurserLedger
import Synchronization

// The claim floor: the claim statement Purser sends, captured from the server, run by
// pgbench with 16 clients against a table of ready routines, next to Purser's own claims
// (`claim(host:limit: 1)` from 16 threads, each over a connection of its own), in turns.

let claimClients = 16

func claimBenchmark(server: PostgresServer, postmaster: pid_t) throws {
    guard let bin = server.binDirectory else { throw BenchError(code: "noPostgres", "no PostgreSQL") }
    let database = try server.makeDatabase()
    let fleet = try LedgerLocation.openFleet(database)
    let lease = try fleet.join(host: "bench", slots: claimClients, version: "bench")
    let perClient = max(iterations / claimClients, 1)
    let claims = perClient * claimClients
    let routines = (0..<claims).map { SubmittedRoutine(name: "r\($0)") }
    try fleet.submit(SubmittedSwarm(
        id: "claims", team: "bench", name: "claims", priority: 0, concurrency: 1_000_000, file: "", source: "", routines: routines))
    guard let swarm = try fleet.nextToAdmit(host: lease, skipping: []) else { throw BenchError(code: "claims", "nothing to admit") }
    try fleet.admitted(swarm: swarm.id, node: 1, holder: Holder(id: "swarm:claims", epoch: 1))
    let script = NSTemporaryDirectory() + "purser-claim-\(getpid()).sql"
    defer { try? FileManager.default.removeItem(atPath: script) }
    let statement = try capturedClaim(database: database, fleet: fleet, lease: lease)
    try (statement + ";\n").write(toFile: script, atomically: true, encoding: .utf8)

    let rounds = argument("--rounds", default: 3)
    var floorSeconds = 0.0, floorServer = 0.0, purserSeconds = 0.0, purserServer = 0.0
    var floorCPU = CPUTimes.zero, purserCPU = CPUTimes.zero
    for _ in 0..<rounds {
        try resetClaims(database: database, bin: bin)
        var start = CPUTimes()
        var server = postgresCPU(postmaster: postmaster)
        let tps = try pgbenchRate(
            bin: bin, ["-n", "-c", "\(claimClients)", "-j", "2", "-t", "\(perClient)", "-f", script, database])
        floorServer += postgresCPU(postmaster: postmaster) - server
        floorCPU += (start, CPUTimes())
        floorSeconds += Double(claims) / tps
        try resetClaims(database: database, bin: bin)
        start = CPUTimes()
        server = postgresCPU(postmaster: postmaster)
        purserSeconds += try purserClaims(database: database, lease: lease, perClient: perClient)
        purserServer += postgresCPU(postmaster: postmaster) - server
        purserCPU += (start, CPUTimes())
    }
    let total = claims * rounds
    print("claims: \(claims) ready routines, \(claimClients) clients, \(rounds) rounds in turns")
    let floor = Double(total) / floorSeconds
    show("floor: pgbench, the claim statement (limit 1)", floor)
    print(floorCPU.since(.zero, routines: total, own: "pgbench", per: "claim") + serverPerClaim(floorServer, total))
    show("purser claims, limit 1, \(claimClients) connections", Double(total) / purserSeconds, against: floor, goal: 0.8)
    print(purserCPU.since(.zero, routines: total, own: "-", per: "claim") + serverPerClaim(purserServer, total))
    print("  (one statement both ways, the attempt's row and all; Purser's is prepared, pgbench's parsed each time)")
}

func serverPerClaim(_ seconds: Double, _ claims: Int) -> String {
    String(format: ", server %.0f µs", seconds / Double(claims) * 1e6)
}

/// The claim statement as the server received it from `claim(host:limit:)`, recorded by a
/// statement trigger (`current_query()`), with the host, epoch and limit written in.
func capturedClaim(database: String, fleet: any FleetStore, lease: HostLease) throws -> String {
    let driver = try PostgresLedger(url: database).driver
    let capture = [
        "CREATE TABLE bench_captured (query TEXT NOT NULL)",
        """
        CREATE FUNCTION bench_capture() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN INSERT INTO bench_captured VALUES (current_query()); RETURN NULL; END $$
        """,
        "CREATE TRIGGER bench_capture AFTER UPDATE ON fleet_routines FOR EACH STATEMENT EXECUTE FUNCTION bench_capture()",
    ]
    for sql in capture { _ = try driver.transaction { (session) throws(LedgerError) in try session.query(sql, []) } }
    _ = try fleet.claim(host: lease, limit: 1, memoryBytes: 1 << 50)
    let rows = try driver.transaction { (session) throws(LedgerError) in
        let rows = try session.query("SELECT query FROM bench_captured", [])
        _ = try session.query("DROP TRIGGER bench_capture ON fleet_routines", [])
        return rows
    }
    guard let text = rows.compactMap({ benchText($0.first) }).first(where: { $0.contains("SKIP LOCKED") }) else {
        throw BenchError(code: "capture", "the claim statement was not captured: \(rows)")
    }
    return text.replacingOccurrences(of: "$1", with: "'\(lease.name)'")
        .replacingOccurrences(of: "$2", with: "\(lease.epoch)").replacingOccurrences(of: "$3", with: "1")
        .replacingOccurrences(of: "$4", with: "\(Int64(1) << 50)")
}

/// Every routine ready again, no attempts, and the table vacuumed, so that each round starts alike.
func resetClaims(database: String, bin: String) throws {
    // Separate -c's: psql sends each alone, and VACUUM runs outside a transaction only.
    let statements = [
        "UPDATE fleet_routines SET state = 'ready', attempt = 0, host = NULL, host_epoch = NULL",
        "DELETE FROM fleet_attempts", "VACUUM ANALYZE fleet_routines", "VACUUM ANALYZE fleet_attempts",
    ]
    let log = NSTemporaryDirectory() + "purser-claim-reset-\(getpid()).log"
    defer { try? FileManager.default.removeItem(atPath: log) }
    let psql = try BenchChild.start(
        bin + "/psql", ["-q", "-v", "ON_ERROR_STOP=1"] + statements.flatMap { ["-c", $0] } + [database], environment: ProcessInfo.processInfo.environment, log: log)
    guard try psql.wait().status == 0 else { throw BenchError(code: "psql", "resetting the claims failed: \(psql.output)") }
}

/// Seconds for `claimClients` threads, each on a connection of its own opened beforehand,
/// to make `perClient` claims of one routine each.
func purserClaims(database: String, lease: HostLease, perClient: Int) throws -> Double {
    let stores = try (0..<claimClients).map { _ in try LedgerLocation.openFleet(database) }
    let failures = Mutex<[String]>([])
    let group = DispatchGroup()
    let start = ContinuousClock.now
    for store in stores {
        group.enter()
        Thread {
            defer { group.leave() }
            for _ in 0..<perClient {
                do {
                    guard try store.claim(host: lease, limit: 1, memoryBytes: 1 << 50).count == 1 else { throw BenchError(code: "claims", "a claim found nothing") }
                } catch {
                    failures.withLock { $0.append("\(error)") }
                    return
                }
            }
        }.start()
    }
    group.wait()
    let seconds = secondsSince(start)
    if let first = failures.withLock({ $0.first }) { throw BenchError(code: "claims", first) }
    return seconds
}

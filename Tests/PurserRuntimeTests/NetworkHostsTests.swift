import Foundation
import PurserTestSupport
import Testing

/// The world the fleet's tests run in: hosts in network namespaces of their own, a
/// PostgreSQL they reach over TCP, links cut and restored, nothing left behind. Each check
/// is what a fleet test will rely on, done with the real `purser` and the real server.
@Suite("Network hosts", .timeLimit(.minutes(3)), .enabled(if: NetworkSupport.usable))
struct NetworkHostsTests {
    /// `purser ledger verify` on `url` inside `host` (or in this namespace when nil),
    /// waiting at most 1 s for a store that is away, beyond libpq's connect_timeout.
    func verify(_ url: String, in host: String? = nil, of network: NetworkHosts? = nil) async throws -> CommandResult {
        var environment = ProcessInfo.processInfo.environment
        environment["PURSER_HOME"] = Fixtures.temporaryHome()
        environment["PURSER_LEDGER"] = url
        environment["PURSER_STORE_RETRY"] = "1s"
        let purser = Fixtures.product("purser")
        guard let host, let network else { return try await runCommand(purser, ["ledger", "verify"], environment: environment) }
        return try await network.run(host, purser, ["ledger", "verify"], environment: environment)
    }

    func expectVerified(_ result: CommandResult, _ where_: String) {
        #expect(result.status == 0 && result.stdout.contains("ledger verified"), "\(where_): \(result.stdout)\(result.stderr)")
    }

    /// A private cluster on 127.0.0.1: its TCP URL works (with the password it carries, and
    /// not with another), its Unix socket still does, and it has the settings asked for.
    @Test func aClusterOnLoopbackServesTCPWithItsPassword() async throws {
        let server = try await PostgresServer.start(
            tcp: TCPListening(address: "127.0.0.1", settings: ["tcp_user_timeout": "5000"]))
        defer { server.stop() }
        let database = try await offPool { try server.createDatabase() }
        let url = try server.tcpURL(database: database)
        #expect(url.hasPrefix("postgresql://postgres:") && url.contains("@127.0.0.1:"))
        expectVerified(try await verify(url), "TCP")
        let socket = try server.socketLocation(database: database)
        expectVerified(try await verify(socket), "Unix socket")
        let psql = try #require(server.binDirectory) + "/psql"
        // Over TCP: on a Unix socket, PostgreSQL shows 0 for a TCP setting.
        let shown = try await runCommand(psql, [url, "-Atc", "SHOW tcp_user_timeout"])
        #expect(shown.stdout == "5000\n", "\(shown.stdout)\(shown.stderr)")
        let password = try #require(url.split(separator: ":")[2].split(separator: "@").first)
        let wrong = try await verify(url.replacingOccurrences(of: String(password), with: "wrong"))
        #expect(wrong.status != 0 && wrong.stderr.contains("password authentication failed"), "\(wrong.stderr)")
    }

    /// The shared cluster listens on no TCP address: asking for its URL says so.
    @Test func theSharedClusterHasNoTCPURL() async throws {
        let location = try await PostgresServer.database()
        #expect(location.hasPrefix("host=/"))
        #expect(throws: PostgresServerError.self) { try PostgresServer.shared.tcpURL(database: "any") }
    }

    /// From inside each of three hosts, `purser` reaches the server's TCP address, also
    /// after the server restarts; each host sees its own eth0 and address, and none of this
    /// machine's links.
    @Test func everyHostReachesTheServerOverTCP() async throws {
        try await NetworkHosts.with(hosts: ["a", "b", "c"]) { network in
            let server = try await network.startPostgres()
            let url = try server.tcpURL(database: try await offPool { try server.createDatabase() }, connectTimeout: 10)
            #expect(url.contains("@\(NetworkHosts.serverAddress):"))
            for host in network.hosts {
                expectVerified(try await verify(url, in: host, of: network), host)
                let links = try await network.run(host, NetworkHosts.ipTool, ["-o", "-4", "addr", "show"])
                // "1: lo    inet 127.0.0.1/8 scope host lo …": the name, the family, the address.
                let addresses = links.stdout.split(separator: "\n").map { $0.split(separator: " ").dropFirst().prefix(3).joined(separator: " ") }
                #expect(addresses == ["lo inet 127.0.0.1/8", "eth0 inet \(network.address(host))/24"], "\(links.stdout)")
            }
            // Restarted, it listens in its namespace again.
            try await offPool { try server.restartServer() }
            expectVerified(try await verify(url, in: "c", of: network), "c after a restart")
        }
    }

    /// A cut host's `purser` fails on its own (no kill needed: ARP gives up after about 3 s,
    /// and purser waits at most 2 s for a first connection), while another host still
    /// works; once restored, it works again. (A connect_timeout of 10 s, not 1: a loaded or
    /// emulated machine may take over a second to connect even when nothing is cut.)
    @Test func aCutHostFailsUntilItsLinkIsRestored() async throws {
        try await NetworkHosts.with(hosts: ["a", "b"]) { network in
            let server = try await network.startPostgres()
            let url = try server.tcpURL(database: try await offPool { try server.createDatabase() }, connectTimeout: 10)
            expectVerified(try await verify(url, in: "a", of: network), "a before the cut")
            try await network.cut("a")
            let cut = try await verify(url, in: "a", of: network)
            // Ended by itself (no signal), saying why.
            #expect(cut.status != 0 && cut.status < 128 && cut.stderr.contains("cannot connect to PostgreSQL"), "a, cut: status \(cut.status): \(cut.stderr)")
            expectVerified(try await verify(url, in: "b", of: network), "b while a is cut")
            try await network.restore("a")
            expectVerified(try await verify(url, in: "a", of: network), "a restored")
        }
    }

    /// A process started in a host is in that host's namespace, sees this machine's cgroup
    /// tree as this process does (`ip netns exec` would have remounted /sys, and hidden it),
    /// prints to files the test reads while it runs, and dies of kill -9.
    @Test func aHostProcessSeesTheCgroupTreeAndDiesOfKill() async throws {
        try await NetworkHosts.with(hosts: ["a"]) { network in
            let script = "ls -1 /sys/fs/cgroup; echo listed; echo to-stderr >&2; exec sleep 1000"
            let process = try network.spawn("a", "/bin/sh", ["-c", script])
            try await process.waitForOutput("listed")
            try await process.waitForOutput("to-stderr", stderr: true)
            let ours = try await runCommand("/bin/ls", ["-1", "/sys/fs/cgroup"]).stdout
            #expect(!ours.isEmpty && process.stdout == ours + "listed\n", "\(process.stdout)")
            #expect(try namespace(of: process.pid) == namespace(of: network.namespacePath("a")))
            #expect(try namespace(of: process.pid) != namespace(of: getpid()))
            process.kill()
            #expect(await process.wait() == 128 + SIGKILL)
        }
    }

    /// tearDown kills what still runs in the hosts, stops the server and deletes every
    /// namespace; this machine's links are as they were.
    @Test func tearDownLeavesNothingBehind() async throws {
        let linksBefore = try await linkNames()
        let network = try await NetworkHosts.start(hosts: ["x", "y"])
        _ = try await network.startPostgres()
        let sleeper = try network.spawn("y", "/bin/sleep", ["1000"])
        #expect(try await namespaceNames().filter { $0.hasPrefix(network.id) }.count == 3)
        await network.tearDown()
        #expect(await sleeper.wait() == 128 + SIGKILL)
        #expect(try await namespaceNames().filter { $0.hasPrefix(network.id) } == [])
        #expect(try await linkNames() == linksBefore)
        await network.tearDown()  // again: nothing to do, no error
    }

    /// Namespaces left by a run whose process is gone, and what runs in them, are swept;
    /// a live process's are not.
    @Test func leftoversOfADeadRunAreSwept() async throws {
        let dead = try await runCommand("/bin/sh", ["-c", "echo $$"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let orphan = NetworkHosts.prefix + dead + "-0000dead-a"
        let live = NetworkHosts.prefix + "\(getpid())-0000live-a"
        for name in [orphan, live] { #expect(try await runCommand(NetworkHosts.ipTool, ["netns", "add", name]).status == 0) }
        let stray = Process()
        stray.executableURL = URL(fileURLWithPath: NetworkHosts.nsenter)
        stray.arguments = ["--net=/run/netns/" + orphan, "--", "/bin/sleep", "1000"]
        try stray.run()
        // Until the sleep runs in the namespace, the sweep would not see it there.
        while (try? namespace(of: stray.processIdentifier)) != (try? namespace(of: "/run/netns/" + orphan)) {
            try await Task.sleep(for: .milliseconds(10))
        }
        await offPool { NetworkHosts.sweepLeftovers() }
        let names = try await namespaceNames()
        _ = try await runCommand(NetworkHosts.ipTool, ["netns", "delete", live])
        #expect(!names.contains(orphan) && names.contains(live), "\(names)")
        await offPool { stray.waitUntilExit() }
        #expect(stray.terminationReason == .uncaughtSignal && stray.terminationStatus == SIGKILL)
    }
}

/// Whether namespaces with veth links can be made here. Only in the cgroup v2 VM
/// (.ci/cgroup-v2 sets PURSER_CGROUP_V2_GUEST) is "no" a skip: its kernel has no modules
/// to load (veth and bridge are modules in Debian's kernel, and the guest's /lib/modules
/// is this machine's). Anywhere else the suite runs, and fails if it cannot.
enum NetworkSupport {
    static let usable: Bool = {
        guard ProcessInfo.processInfo.environment["PURSER_CGROUP_V2_GUEST"] != nil else { return true }
        // In a namespace of its own, which goes with the command: nothing to clean up.
        let probe = try? runCommandBlocking(
            "/usr/bin/unshare", ["--net", NetworkHosts.ipTool, "link", "add", "probe0", "type", "veth", "peer", "name", "probe1"])
        guard let probe, probe.status == 0 else {
            print("Network hosts: skipped in the cgroup v2 VM, which cannot make veth links: \(probe?.stderr ?? "unshare failed")")
            return false
        }
        return true
    }()
}

func namespace(of pid: Int32) throws -> String {
    try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/net")
}

func namespace(of path: String) throws -> String {
    let info = try FileManager.default.attributesOfItem(atPath: path)
    return "net:[\(info[.systemFileNumber] as? UInt64 ?? 0)]"
}

func namespaceNames() async throws -> [String] {
    try await runCommand(NetworkHosts.ipTool, ["netns", "list"]).stdout.split(separator: "\n").map {
        String($0.split(separator: " ")[0])
    }
}

func linkNames() async throws -> [String] {
    try await runCommand(NetworkHosts.ipTool, ["-o", "link", "show"]).stdout.split(separator: "\n").map {
        String($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces))
    }
}

import Foundation
import Synchronization

/// Several "hosts" on one machine, for the fleet's tests: each host a network namespace of
/// its own, joined by a veth pair to a bridge in one more namespace, the server's, where
/// `startPostgres()` runs PostgreSQL on TCP. A test starts each host's processes with
/// `spawn` (`nsenter --net`), cuts a host's link with `cut` and mends it with `restore`.
///
///     server namespace (<id>-db): br0 10.77.0.1/24, PostgreSQL on 10.77.0.1
///       ├─ h1 ══ veth ══ eth0 10.77.0.11/24   host namespace <id>-<host 1>
///       ├─ h2 ══ veth ══ eth0 10.77.0.12/24   host namespace <id>-<host 2>
///       └─ …
///
/// Nothing is made in this machine's own namespace: no address, route or link there, so
/// runs at once (and the machine's own network) cannot collide, and every run uses the same
/// 10.77.0.0/24. Namespace names carry this process's pid and a random part
/// (purser-net-<pid>-<hex>-…). `tearDown()` kills what runs in the namespaces and deletes
/// them, which deletes their links and bridge with them; so does the process's exit, a
/// watchdog if the process is killed, and the next run's sweep of namespaces whose process
/// is gone.
///
/// `nsenter --net`, not `ip netns exec`: that one also remounts /sys for the namespace,
/// which hides the cgroup tree under /sys/fs/cgroup that a supervisor needs.
/// Needs root and iproute2 (`ip`, with the veth and bridge link types).
public final class NetworkHosts: Sendable {
    public static let prefix = "purser-net-"
    /// The server namespace's address on the bridge, where `startPostgres()` listens.
    public static let serverAddress = "10.77.0.1"

    /// purser-net-<pid>-<hex>: the start of every namespace's name.
    public let id: String
    /// The hosts' names, as given.
    public let hosts: [String]
    private let state = Mutex(State())
    private let logs: String

    private struct State {
        var tornDown = false
        var servers: [PostgresServer] = []
        var processes: [HostProcess] = []
    }

    /// Makes the hosts off the cooperative pool. `tearDown()` them when done.
    public static func start(hosts: [String]) async throws -> NetworkHosts {
        try await offPool { try NetworkHosts(hosts: hosts) }
    }

    /// Makes the hosts, runs `body`, and tears them down however `body` ends.
    public static func with<T: Sendable>(
        hosts: [String], _ body: (NetworkHosts) async throws -> T
    ) async throws -> T {
        let network = try await start(hosts: hosts)
        do {
            let result = try await body(network)
            await network.tearDown()
            return result
        } catch {
            await network.tearDown()
            throw error
        }
    }

    /// Makes the namespaces, the bridge and the links (blocking: a few dozen `ip` commands).
    public init(hosts: [String]) throws {
        try Self.check(hosts)
        Self.sweepOnce()
        id = Self.prefix + "\(getpid())-" + String(format: "%08x", UInt32.random(in: 0...UInt32.max))
        self.hosts = hosts
        logs = NSTemporaryDirectory() + id
        try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
        Self.live.withLock { $0.append(self) }
        _ = Self.tearDownAtExit
        do {
            try build()
        } catch {
            tearDownBlocking()
            throw error
        }
    }

    /// The server's namespace first, so that the watchdog, which stops once that namespace
    /// is gone, has it to watch.
    private func build() throws {
        let server = serverNamespace
        try Self.ip("netns", "add", server)
        NetworkCleanup.watch(namespaces: allNamespaces, last: server)
        try Self.ip("-n", server, "link", "set", "lo", "up")
        try Self.ip("-n", server, "link", "add", "br0", "type", "bridge")
        try Self.ip("-n", server, "addr", "add", Self.serverAddress + "/24", "dev", "br0")
        try Self.ip("-n", server, "link", "set", "br0", "up")
        for (index, host) in hosts.enumerated() {
            let name = namespace(host)
            try Self.ip("netns", "add", name)
            try Self.ip("-n", name, "link", "set", "lo", "up")
            try Self.ip("link", "add", "eth0", "netns", name, "type", "veth", "peer", "name", port(index), "netns", server)
            try Self.ip("-n", server, "link", "set", port(index), "master", "br0", "up")
            try Self.ip("-n", name, "addr", "add", address(host) + "/24", "dev", "eth0")
            try Self.ip("-n", name, "link", "set", "eth0", "up")
        }
    }

    // MARK: - Names and addresses

    /// The network namespace of `host` (its name under /run/netns).
    public func namespace(_ host: String) -> String { id + "-" + host }
    /// The path `nsenter --net=` takes for `host`.
    public func namespacePath(_ host: String) -> String { "/run/netns/" + namespace(host) }
    /// The namespace where the bridge is and `startPostgres()` runs the server.
    public var serverNamespacePath: String { "/run/netns/" + serverNamespace }
    /// `host`'s address on the bridge: 10.77.0.11 for the first host, 10.77.0.12 next, ….
    public func address(_ host: String) -> String { "10.77.0.\(11 + index(host))" }

    private var serverNamespace: String { id + "-db" }
    private var allNamespaces: [String] { hosts.map { namespace($0) } + [serverNamespace] }
    /// The bridge's end of `host`'s link, in the server's namespace.
    private func port(_ index: Int) -> String { "h\(index + 1)" }

    private func index(_ host: String) -> Int {
        guard let index = hosts.firstIndex(of: host) else { preconditionFailure("no host \(host) among \(hosts)") }
        return index
    }

    /// Names that make safe namespace names and leave "db" to the server.
    private static func check(_ hosts: [String]) throws(NetworkHostsError) {
        let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789")
        guard !hosts.isEmpty, hosts.count <= 200, Set(hosts).count == hosts.count else {
            throw NetworkHostsError(code: "invalid", "hosts must be 1 to 200 distinct names: \(hosts)")
        }
        for host in hosts where host.isEmpty || host.count > 32 || !host.allSatisfy(allowed.contains) || host == "db" {
            throw NetworkHostsError(code: "invalid", "host name '\(host)': 1 to 32 of a-z and 0-9, and not 'db'")
        }
    }

    // MARK: - Links

    /// Takes `host`'s link down at the bridge: the host's eth0 loses its carrier and its
    /// packets go nowhere, as when a cable or a switch port fails. A connection attempt
    /// fails once ARP gives up (about 3 s: "No route to host") or at its connect_timeout;
    /// an open connection hears nothing until its own timeouts end it.
    public func cut(_ host: String) async throws {
        try await offPool { try Self.ip("-n", self.serverNamespace, "link", "set", self.port(self.index(host)), "down") }
    }

    /// Brings `host`'s link back up, and forgets the address resolutions the cut left
    /// failing on both sides, so that the next connection works at once: else a connection
    /// made within about 3 s of the restore fails too ("No route to host") when the cut's
    /// ARP probes run out.
    public func restore(_ host: String) async throws {
        try await offPool {
            let server = self.serverNamespace
            try Self.ip("-n", server, "link", "set", self.port(self.index(host)), "up")
            try Self.ip("-n", self.namespace(host), "neigh", "flush", "dev", "eth0")
            try Self.ip("-n", server, "neigh", "flush", "to", self.address(host), "dev", "br0")
        }
    }

    // MARK: - Processes

    /// Runs a command inside `host`'s namespace to its end, off the cooperative pool.
    public func run(
        _ host: String, _ executable: String, _ arguments: [String], environment: [String: String]? = nil,
        directory: String? = nil
    ) async throws -> CommandResult {
        try await runCommand(
            Self.nsenter, ["--net=" + namespacePath(host), "--", executable] + arguments, environment: environment,
            directory: directory)
    }

    /// Starts `executable` inside `host`'s namespace (nsenter sets the namespace, then
    /// becomes the program: the pid is the program's), its stdout and stderr in files the
    /// test reads while it runs (until `tearDown()`, which removes them, and kills it if it
    /// still runs).
    public func spawn(
        _ host: String, _ executable: String, _ arguments: [String], environment: [String: String]? = nil,
        directory: String = "/"
    ) throws -> HostProcess {
        let files = logs + "/" + host + "-" + UUID().uuidString.prefix(8)
        let process = try HostProcess(
            host: host, command: [Self.nsenter, "--net=" + namespacePath(host), "--", executable] + arguments,
            environment: environment, directory: directory, stdout: files + ".out", stderr: files + ".err")
        state.withLock { $0.processes.append(process) }
        return process
    }

    /// A private PostgreSQL (`PostgresServer.start(tcp:)`) in the server's namespace,
    /// listening on `serverAddress`, reachable from every host over TCP (`tcpURL`) and from
    /// this process over its Unix socket. Stopped at `tearDown()`. `settings`: more
    /// postgresql.conf lines (`TCPListening.settings`).
    public func startPostgres(settings: [String: String] = [:]) async throws -> PostgresServer {
        let server = try await PostgresServer.start(
            tcp: TCPListening(address: Self.serverAddress, networkNamespace: serverNamespacePath, settings: settings))
        state.withLock { $0.servers.append(server) }
        return server
    }

    // MARK: - Tearing down

    /// Stops the server, kills every process left in the namespaces, and deletes them
    /// (and so their links and the bridge). Safe to call more than once.
    public func tearDown() async {
        await offPool { self.tearDownBlocking() }
    }

    func tearDownBlocking() {
        let (servers, processes) = state.withLock { state in
            defer { state.tornDown = true }
            return state.tornDown ? ([], []) : (state.servers, state.processes)
        }
        for server in servers { server.stop() }
        for process in processes { process.kill() }
        // The server's namespace last: the watchdog stops when it is gone.
        NetworkCleanup.delete(namespaces: allNamespaces)
        for process in processes { process.waitBlocking() }
        try? FileManager.default.removeItem(atPath: logs)
        Self.live.withLock { $0.removeAll { $0 === self } }
    }

    private static let live = Mutex<[NetworkHosts]>([])
    private static let tearDownAtExit: Void = {
        atexit {
            for network in NetworkHosts.live.withLock({ $0 }) { network.tearDownBlocking() }
        }
    }()

    /// Deletes the namespaces of earlier runs whose process is gone (killed before its
    /// watchdog could clean up, or with it), and kills what still runs in them. Done once
    /// per process before it makes its first hosts.
    public static func sweepLeftovers() { NetworkCleanup.sweep(prefix: prefix) }

    private static let sweep: Void = sweepLeftovers()
    private static func sweepOnce() { _ = sweep }

    // MARK: - Tools

    /// Where nsenter and ip are.
    public static let nsenter = Spawn.tool("/usr/bin/nsenter", "/bin/nsenter")
    public static let ipTool = Spawn.tool("/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip")

    /// `ip ARGUMENTS`, to its end; throws with what ip said if it fails.
    static func ip(_ arguments: String...) throws(NetworkHostsError) {
        let result: CommandResult
        do {
            result = try runCommandBlocking(ipTool, arguments)
        } catch {
            throw NetworkHostsError(code: "ip", "cannot run \(ipTool): \(error)")
        }
        guard result.status == 0 else {
            throw NetworkHostsError(code: "ip", "ip \(arguments.joined(separator: " ")) failed (status \(result.status)): \(result.stderr)")
        }
    }
}

public struct NetworkHostsError: Error, CustomStringConvertible, Sendable {
    /// "invalid" (a bad host name), "ip" (an ip command failed), "process" (a host's process).
    public let code: String
    public let message: String
    public var description: String { "\(code): \(message)" }

    public init(code: String, _ message: String) {
        self.code = code
        self.message = message
    }
}

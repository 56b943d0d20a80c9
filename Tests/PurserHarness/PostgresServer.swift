import Foundation
import Synchronization

/// A real, private PostgreSQL for tests, from the distribution's server package (Debian:
/// `apt-get install postgresql`, binaries in /usr/lib/postgresql/<version>/bin; or set
/// `PURSER_PG_BINDIR`). One cluster per test process, started the first time `shared` is
/// used: `initdb` into a fresh directory under /tmp, listening only on a Unix socket in
/// that directory (no TCP), on a free port number, with trust authentication and fsync
/// off. It is stopped (immediate shutdown) and its directory removed when the process
/// exits; a small watchdog does the same if the process is killed instead.
///
/// `start(tcp:)` starts a private cluster that also listens on TCP, for processes in other
/// network namespaces (`NetworkHosts`): on the Unix socket as ever, and on one address,
/// with a password (scram-sha-256) for every TCP client on that address's network.
///
/// PostgreSQL refuses to run as root, so when the tests run as root, initdb and pg_ctl
/// run as the `postgres` system user (`runuser -u postgres --`), which owns the directory.
public final class PostgresServer: Sendable {
    public static let shared = PostgresServer()

    private let cluster: Result<Cluster, PostgresServerError>
    /// Clusters started, the shared one and private ones: stopped at exit.
    private static let started = Mutex<[PostgresServer]>([])
    private static let stopAtExit: Void = {
        atexit {
            for server in PostgresServer.started.withLock({ $0 }) { server.stop() }
        }
    }()

    struct Cluster: Sendable {
        let binDirectory: String
        let directory: String
        let socketDirectory: String
        let port: Int
        let postmasterPID: Int32
        let startSeconds: Double
        let tcp: TCPListening?
        /// The `postgres` role's password, which TCP clients give.
        let password: String?
    }

    private init() {
        cluster = Result { () throws(PostgresServerError) in try PostgresServer.start(tcp: nil) }
        if case .success = cluster { Self.stopWhenExiting(self) }
    }

    private init(cluster: Cluster) {
        self.cluster = .success(cluster)
        Self.stopWhenExiting(self)
    }

    private static func stopWhenExiting(_ server: PostgresServer) {
        _ = stopAtExit
        started.withLock { $0.append(server) }
    }

    /// The cluster for tests that stop, start or restart their server (the shared one
    /// serves every other test meanwhile): one, made on first use and lent to one test at a
    /// time, each making its own database on it. `giveBack()` it when done.
    public static func borrowForFaults() async throws -> PostgresServer {
        try await offPool {
            faultTurn.wait()
            do {
                return try faultServer.get()
            } catch {
                faultTurn.signal()
                throw error
            }
        }
    }

    private static let faultServer = Result { () throws(PostgresServerError) in PostgresServer(cluster: try start(tcp: nil)) }
    private static let faultTurn = DispatchSemaphore(value: 1)

    /// A private cluster of the caller's own that also listens on TCP as `tcp` says, started
    /// off the cooperative pool. `stop()` it when done (else it stops when the process exits).
    /// `stopServer`, `startServer` and `restartServer` keep it in `tcp`'s namespace.
    public static func start(tcp: TCPListening) async throws -> PostgresServer {
        try await offPool { PostgresServer(cluster: try start(tcp: tcp)) }
    }

    /// Starts the server again if the test left it stopped, then lends it to the next test.
    public func giveBack() {
        Thread {
            if !self.isRunning { try? self.startServer() }
            Self.faultTurn.signal()
        }.start()
    }

    /// `pg_ctl status`: whether the server runs.
    private var isRunning: Bool { (try? control("status", [])) != nil }

    /// `pg_ctl stop -m MODE` and wait: "fast" ends every session (rolling back what is in
    /// flight), "immediate" is a crash. The directory stays, for `startServer`.
    public func stopServer(mode: String = "fast") throws {
        try control("stop", ["-m", mode])
    }

    /// `pg_ctl start` on the stopped cluster, and wait until it accepts connections.
    public func startServer() throws {
        let cluster = try cluster.get()
        try control("start", ["-l", cluster.directory + "/postgres.log"])
    }

    /// `pg_ctl restart -m MODE`, as an operator would, and wait until it is back.
    public func restartServer(mode: String = "fast") throws {
        let cluster = try cluster.get()
        try control("restart", ["-m", mode, "-l", cluster.directory + "/postgres.log"])
    }

    private func control(_ mode: String, _ options: [String]) throws {
        let cluster = try cluster.get()
        try PostgresServer.tool(
            "pg_ctl", ["-D", cluster.directory + "/data", "-w", "-t", "60"] + options + [mode], bin: cluster.binDirectory,
            directory: cluster.directory, namespace: cluster.tcp?.networkNamespace)
    }

    /// Where the server's programs are (pgbench, psql, …).
    public var binDirectory: String? { try? cluster.get().binDirectory }

    /// How long initdb and pg_ctl start took, in seconds.
    public var startSeconds: Double? { try? cluster.get().startSeconds }

    /// A fresh database on the shared cluster, made off the cooperative pool: the first
    /// call starts the cluster (initdb, seconds), and every test that needs one waits for it.
    public static func database() async throws -> String {
        try await offPool { try shared.makeDatabase() }
    }

    /// Creates a fresh, empty database with a unique name and returns a libpq connection
    /// string for it, over the Unix socket.
    public func makeDatabase() throws -> String {
        try socketLocation(database: createDatabase())
    }

    /// Creates a fresh, empty database with a unique name and returns the name.
    public func createDatabase() throws -> String {
        let cluster = try cluster.get()
        let name = "purser_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        let (status, output) = try Spawn.run(
            cluster.binDirectory + "/createdb",
            ["-h", cluster.socketDirectory, "-p", String(cluster.port), "-U", "postgres", name],
            directory: cluster.directory, output: cluster.directory + "/createdb-\(name).out")
        guard status == 0 else { throw PostgresServerError("createdb \(name) failed (status \(status)): \(output)") }
        return name
    }

    /// A libpq connection string for `database` over the Unix socket: for processes of this
    /// machine, whatever their network namespace (a socket's path is no network's).
    public func socketLocation(database: String) throws -> String {
        let cluster = try cluster.get()
        return "host=\(cluster.socketDirectory) port=\(cluster.port) dbname=\(database) user=postgres"
    }

    /// A `postgresql://` URL for `database` over TCP, with the password, for a process that
    /// reaches the server's address (one in a `NetworkHosts` host). `connectTimeout`: libpq's
    /// connect_timeout, in seconds, so that a connection to a cut host fails, not hangs.
    public func tcpURL(database: String, connectTimeout: Int = 2) throws -> String {
        let cluster = try cluster.get()
        guard let tcp = cluster.tcp, let password = cluster.password else {
            throw PostgresServerError("this cluster listens on its Unix socket only: start it with start(tcp:)")
        }
        let host = tcp.address.contains(":") ? "[\(tcp.address)]" : tcp.address
        return "postgresql://postgres:\(password)@\(host):\(cluster.port)/\(database)?connect_timeout=\(connectTimeout)"
    }

    /// Stops the server at once (SIGQUIT to the postmaster: immediate shutdown) and removes
    /// its directory. Called at exit; safe to call more than once.
    public func stop() {
        guard case .success(let cluster) = cluster else { return }
        PostgresServer.stop(pid: cluster.postmasterPID, directory: cluster.directory)
    }

    // MARK: - Starting

    private static func start(tcp: TCPListening?) throws(PostgresServerError) -> Cluster {
        let began = Date()
        let bin = try binDirectory()
        let asRoot = geteuid() == 0
        let user: passwd
        if asRoot {
            guard let entry = getpwnam("postgres") else {
                throw PostgresServerError(
                    "tests run as root, and PostgreSQL refuses to: it needs the 'postgres' system user, which the postgresql package creates (install postgresql)")
            }
            user = entry.pointee
        } else {
            user = passwd()
        }

        var template = Array("/tmp/purser-pg-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw PostgresServerError("mkdtemp: \(String(cString: strerror(errno)))") }
        let directory = String(cString: made)
        var started = false
        // If starting fails part way, a server pg_ctl did start goes too.
        defer { if !started { PostgresServer.stop(pid: nil, directory: directory) } }
        if asRoot, chown(directory, user.pw_uid, user.pw_gid) != 0 {
            throw PostgresServerError("chown \(directory) to postgres: \(String(cString: strerror(errno)))")
        }
        watch(directory: directory)
        let data = directory + "/data"
        let port = freePort()

        func run(_ tool: String, _ arguments: [String]) throws(PostgresServerError) {
            try PostgresServer.tool(tool, arguments, bin: bin, directory: directory, namespace: tcp?.networkNamespace)
        }

        let password = tcp.map { _ in randomPassword() }
        var authentication = ["-A", "trust"]
        if let password {
            // Trust on the socket; a password over TCP, as a fleet's hosts would give.
            let file = directory + "/password"
            try write(password + "\n", to: file, owner: asRoot ? user : nil)
            authentication = ["--auth-local=trust", "--auth-host=scram-sha-256", "--pwfile=" + file]
        }
        try run("initdb", ["-D", data, "-U", "postgres"] + authentication + ["-E", "UTF8", "--locale=C", "--no-sync"])
        if tcp != nil {
            unlink(directory + "/password")
            // Any client on the listening address's own network (initdb's lines cover loopback).
            try append("host all all samenet scram-sha-256\n", to: data + "/pg_hba.conf")
        }
        // A Unix socket in the private directory, and TCP only when asked; durability is
        // not wanted in tests.
        let settings = """

            # Added for the Purser tests.
            listen_addresses = '\(tcp?.address ?? "")'
            port = \(port)
            unix_socket_directories = '\(directory)'
            max_connections = 200
            fsync = off
            synchronous_commit = off
            full_page_writes = off
            """ + (tcp?.settings ?? [:]).sorted { $0.key < $1.key }.map { "\n\($0.key) = \($0.value)" }.joined() + "\n"
        try append(settings, to: data + "/postgresql.conf")
        try run("pg_ctl", ["-D", data, "-l", directory + "/postgres.log", "-w", "-t", "60", "start"])

        guard let pidLine = (try? String(contentsOfFile: data + "/postmaster.pid", encoding: .utf8))?
            .split(separator: "\n").first, let pid = Int32(pidLine)
        else {
            throw PostgresServerError("PostgreSQL started, but \(data)/postmaster.pid names no process")
        }
        started = true
        let seconds = Date().timeIntervalSince(began)
        let listening = tcp.map { ", TCP \($0.address):\(port)" + ($0.networkNamespace.map { " in \($0)" } ?? "") } ?? ""
        FileHandle.standardError.write(Data(
            "PostgresServer: PostgreSQL from \(bin) started in \(String(format: "%.2f", seconds)) s, socket \(directory)/.s.PGSQL.\(port)\(listening)\n".utf8))
        return Cluster(
            binDirectory: bin, directory: directory, socketDirectory: directory, port: port, postmasterPID: pid,
            startSeconds: seconds, tcp: tcp, password: password)
    }

    private static func append(_ text: String, to path: String) throws(PostgresServerError) {
        guard let handle = FileHandle(forWritingAtPath: path) else { throw PostgresServerError("cannot open \(path)") }
        handle.seekToEndOfFile()
        handle.write(Data(text.utf8))
        handle.closeFile()
    }

    /// Writes a file only `owner` (else this process's user) can read.
    private static func write(_ text: String, to path: String, owner: passwd?) throws(PostgresServerError) {
        guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]) else {
            throw PostgresServerError("cannot write \(path)")
        }
        if let owner, chown(path, owner.pw_uid, owner.pw_gid) != 0 {
            throw PostgresServerError("chown \(path) to postgres: \(String(cString: strerror(errno)))")
        }
    }

    /// 32 hex digits: nothing a URL would need to escape.
    private static func randomPassword() -> String {
        (0..<4).map { _ in String(format: "%08x", UInt32.random(in: 0...UInt32.max)) }.joined()
    }

    /// Runs one of the server's programs to its end, as the `postgres` user when root, and in
    /// the network namespace `namespace` (a /run/netns path) if given, so that the server
    /// pg_ctl starts listens there.
    private static func tool(
        _ tool: String, _ arguments: [String], bin: String, directory: String, namespace: String?
    ) throws(PostgresServerError) {
        var command =
            geteuid() == 0 ? ["/usr/sbin/runuser", "-u", "postgres", "--", bin + "/" + tool] + arguments : [bin + "/" + tool] + arguments
        if let namespace { command = [Spawn.tool("/usr/bin/nsenter", "/bin/nsenter"), "--net=" + namespace, "--"] + command }
        let (status, output): (Int32, String)
        do {
            (status, output) = try Spawn.run(command[0], Array(command.dropFirst()), directory: directory, output: directory + "/\(tool).out")
        } catch {
            throw PostgresServerError(error.description)
        }
        guard status == 0 else {
            var message = "\(tool) failed (status \(status)): \(output)"
            if let log = try? String(contentsOfFile: directory + "/postgres.log", encoding: .utf8) {
                message += "\nserver log:\n" + log
            }
            throw PostgresServerError(message)
        }
    }

    /// `$PURSER_PG_BINDIR`, or the newest /usr/lib/postgresql/<version>/bin with initdb and pg_ctl.
    private static func binDirectory() throws(PostgresServerError) -> String {
        func usable(_ path: String) -> Bool {
            ["initdb", "pg_ctl", "createdb"].allSatisfy { FileManager.default.isExecutableFile(atPath: path + "/" + $0) }
        }
        if let path = ProcessInfo.processInfo.environment["PURSER_PG_BINDIR"] {
            guard usable(path) else {
                throw PostgresServerError("PURSER_PG_BINDIR=\(path) holds no initdb, pg_ctl and createdb")
            }
            return path
        }
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [])
            .sorted { $0.compare($1, options: .numeric) == .orderedDescending }
        for version in versions where usable("\(root)/\(version)/bin") { return "\(root)/\(version)/bin" }
        throw PostgresServerError(
            "no PostgreSQL server found: \(root)/<version>/bin/initdb is missing; install postgresql (apt-get install postgresql), or set PURSER_PG_BINDIR")
    }

    /// A TCP port nothing listens on now. The server listens only on its Unix socket, whose
    /// name carries the port, so this just keeps the number from looking like anyone else's.
    private static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return 54_321 }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        return bound ? Int(UInt16(bigEndian: address.sin_port)) : 54_321
    }
}

/// Where a private cluster listens on TCP, besides its Unix socket.
public struct TCPListening: Sendable {
    /// The one address it listens on: 127.0.0.1, or a bridge's address (10.77.0.1).
    public let address: String
    /// A network namespace to run the server in (/run/netns/NAME), where `address` is;
    /// nil: this process's.
    public let networkNamespace: String?
    /// More postgresql.conf settings, name to value as written there: say
    /// `["tcp_user_timeout": "5000"]`, so that the server drops a cut host's sessions (and
    /// their locks) in seconds; by default it waits for TCP's own timeouts, as a real one does.
    public let settings: [String: String]

    public init(address: String, networkNamespace: String? = nil, settings: [String: String] = [:]) {
        self.address = address
        self.networkNamespace = networkNamespace
        self.settings = settings
    }
}

public struct PostgresServerError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

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
    }

    private init() {
        cluster = Result { () throws(PostgresServerError) in try PostgresServer.start() }
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

    private static let faultServer = Result { () throws(PostgresServerError) in PostgresServer(cluster: try start()) }
    private static let faultTurn = DispatchSemaphore(value: 1)

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
            directory: cluster.directory)
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
    /// string for it.
    public func makeDatabase() throws -> String {
        let cluster = try cluster.get()
        let name = "purser_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        let (status, output) = try PostgresServer.run(
            cluster.binDirectory + "/createdb",
            ["-h", cluster.socketDirectory, "-p", String(cluster.port), "-U", "postgres", name],
            directory: cluster.directory, output: cluster.directory + "/createdb-\(name).out")
        guard status == 0 else { throw PostgresServerError("createdb \(name) failed (status \(status)): \(output)") }
        return "host=\(cluster.socketDirectory) port=\(cluster.port) dbname=\(name) user=postgres"
    }

    /// Stops the server at once (SIGQUIT to the postmaster: immediate shutdown) and removes
    /// its directory. Called at exit; safe to call more than once.
    public func stop() {
        guard case .success(let cluster) = cluster else { return }
        PostgresServer.stop(pid: cluster.postmasterPID, directory: cluster.directory)
    }

    // MARK: - Starting

    private static func start() throws(PostgresServerError) -> Cluster {
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
            try PostgresServer.tool(tool, arguments, bin: bin, directory: directory)
        }

        try run("initdb", ["-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"])
        // Only a Unix socket, in the private directory; durability is not wanted in tests.
        let settings = """

            # Added for the Purser tests.
            listen_addresses = ''
            port = \(port)
            unix_socket_directories = '\(directory)'
            max_connections = 200
            fsync = off
            synchronous_commit = off
            full_page_writes = off
            """
        guard let handle = FileHandle(forWritingAtPath: data + "/postgresql.conf") else {
            throw PostgresServerError("cannot open \(data)/postgresql.conf")
        }
        handle.seekToEndOfFile()
        handle.write(Data(settings.utf8))
        handle.closeFile()
        try run("pg_ctl", ["-D", data, "-l", directory + "/postgres.log", "-w", "-t", "60", "start"])

        guard let pidLine = (try? String(contentsOfFile: data + "/postmaster.pid", encoding: .utf8))?
            .split(separator: "\n").first, let pid = Int32(pidLine)
        else {
            throw PostgresServerError("PostgreSQL started, but \(data)/postmaster.pid names no process")
        }
        started = true
        let seconds = Date().timeIntervalSince(began)
        FileHandle.standardError.write(Data(
            "PostgresServer: PostgreSQL from \(bin) started in \(String(format: "%.2f", seconds)) s, socket \(directory)/.s.PGSQL.\(port)\n".utf8))
        return Cluster(
            binDirectory: bin, directory: directory, socketDirectory: directory, port: port, postmasterPID: pid,
            startSeconds: seconds)
    }

    /// Runs one of the server's programs to its end, as the `postgres` user when root.
    private static func tool(
        _ tool: String, _ arguments: [String], bin: String, directory: String
    ) throws(PostgresServerError) {
        let (executable, fullArguments) =
            geteuid() == 0
            ? ("/usr/sbin/runuser", ["-u", "postgres", "--", bin + "/" + tool] + arguments) : (bin + "/" + tool, arguments)
        let (status, output) = try run(executable, fullArguments, directory: directory, output: directory + "/\(tool).out")
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

    // MARK: - Stopping

    /// Stops the postmaster `pid`, or the one `directory`'s postmaster.pid names, then
    /// removes `directory`.
    private static func stop(pid: Int32?, directory: String) {
        let named = (try? String(contentsOfFile: directory + "/data/postmaster.pid", encoding: .utf8))?
            .split(separator: "\n").first.flatMap { Int32($0) }
        // The file first: a restart leaves the pid taken at start stale.
        if let pid = named ?? pid, isPostmaster(pid, directory) {
            kill(pid, SIGQUIT)
            // The postmaster is not our child (pg_ctl detached it): poll until it is gone.
            for _ in 0..<500 where kill(pid, 0) == 0 { usleep(10_000) }
            if kill(pid, 0) == 0 { kill(pid, SIGKILL) }
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Whether `pid` is still this cluster's postmaster (and not a reused pid).
    private static func isPostmaster(_ pid: Int32, _ directory: String) -> Bool {
        guard let command = try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline")) else { return false }
        return String(decoding: command, as: UTF8.self).contains(directory)
    }

    /// A detached shell that stops the server and removes its directory if this process
    /// dies without running its atexit handlers (killed, or crashed), even part way through
    /// starting it: a pg_ctl it started may still be bringing the server up, so it looks
    /// for the postmaster for a few seconds. Once `stop()` has removed the directory, it
    /// just exits.
    private static func watch(directory: String) {
        let script = """
            stop() {
                pid=$(head -n 1 '\(directory)/data/postmaster.pid' 2>/dev/null)
                [ -n "$pid" ] && grep -q '\(directory)' /proc/$pid/cmdline 2>/dev/null && kill -QUIT "$pid"
            }
            while [ -e /proc/\(getpid()) ]; do sleep 1; done
            for attempt in 1 2 3 4 5; do
                [ -d '\(directory)' ] || exit 0
                stop
                sleep 1
            done
            rm -rf '\(directory)'
            """
        _ = try? spawn("/bin/sh", ["-c", script], directory: "/", output: "/dev/null")
    }

    // MARK: - Running the tools

    /// Runs a command to its end, its output in the file `output` (returned, then removed).
    private static func run(
        _ executable: String, _ arguments: [String], directory: String, output: String
    ) throws(PostgresServerError) -> (status: Int32, output: String) {
        let pid = try spawn(executable, arguments, directory: directory, output: output)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 {
            guard errno == EINTR else { throw PostgresServerError("waitpid \(executable): \(String(cString: strerror(errno)))") }
        }
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(atPath: output)
        let code = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + status & 0x7f
        return (code, text)
    }

    private typealias FileActionsInt = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    private typealias FileActionsPath =
        @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32

    private static func function<F>(_ name: String, as type: F.Type) -> F? {
        dlsym(nil, name).map { unsafeBitCast($0, to: type) }
    }

    /// Starts a command with stdin from /dev/null, stdout and stderr to the file `output`,
    /// no other descriptor open, default signal handling and nothing blocked.
    ///
    /// Not Foundation's Process: it gives each child a socket whose closing tells it the
    /// child has exited, and pg_ctl leaves the server running with that socket, so Process
    /// would wait for pg_ctl until the server stops.
    private static func spawn(
        _ executable: String, _ arguments: [String], directory: String, output: String
    ) throws(PostgresServerError) -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // glibc has both since 2.34 (2.29 for chdir), but Swift's Glibc module does not show them.
        if let closeFrom = function("posix_spawn_file_actions_addclosefrom_np", as: FileActionsInt.self) {
            _ = closeFrom(&actions, 3)
        } else {
            let open = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
            for fd in open.compactMap({ Int32($0) }) where fd > 2 { posix_spawn_file_actions_addclose(&actions, fd) }
        }
        if let changeDirectory = function("posix_spawn_file_actions_addchdir_np", as: FileActionsPath.self) {
            _ = changeDirectory(&actions, directory)
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var signals = sigset_t()
        sigemptyset(&signals)
        posix_spawnattr_setsigmask(&attributes, &signals)
        for signal in [SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGPIPE, SIGCHLD, SIGUSR1, SIGUSR2] { sigaddset(&signals, signal) }
        posix_spawnattr_setsigdefault(&attributes, &signals)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for argument in argv { free(argument) } }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        guard status == 0 else { throw PostgresServerError("cannot run \(executable): \(String(cString: strerror(status)))") }
        return pid
    }
}

public struct PostgresServerError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

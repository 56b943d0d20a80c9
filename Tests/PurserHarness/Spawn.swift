import Foundation

/// Starting a child with posix_spawn, its output in files: what the harness uses for
/// children that outlive the command that started them (pg_ctl's server, a host's process).
///
/// Not Foundation's Process: it gives each child a socket whose closing tells it the child
/// has exited, and a child that leaves a daemon running with that socket (pg_ctl) would be
/// waited for until the daemon stops.
enum Spawn {
    /// Starts `executable` with stdin from /dev/null, stdout to the file `stdout`, stderr to
    /// `stderr` (else the same file), no other descriptor open, default signal handling and
    /// nothing blocked. `environment`: the whole environment, else this process's.
    static func start(
        _ executable: String, _ arguments: [String], directory: String, stdout: String, stderr: String? = nil,
        environment: [String: String]? = nil
    ) throws(SpawnError) -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        if let stderr {
            posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        } else {
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        }
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
        let envp: [UnsafeMutablePointer<CChar>?]? = environment.map { $0.map { strdup("\($0.key)=\($0.value)") } + [nil] }
        defer { for variable in envp ?? [] { free(variable) } }
        var pid: pid_t = 0
        let status = envp.map { posix_spawn(&pid, executable, &actions, &attributes, argv, $0) }
            ?? posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        guard status == 0 else { throw SpawnError("cannot run \(executable): \(String(cString: strerror(status)))") }
        return pid
    }

    /// Waits for the child `pid` and returns its exit status (128 + the signal that killed it).
    static func wait(_ pid: pid_t) throws(SpawnError) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 {
            guard errno == EINTR else { throw SpawnError("waitpid \(pid): \(String(cString: strerror(errno)))") }
        }
        return exitCode(status)
    }

    static func exitCode(_ status: Int32) -> Int32 {
        status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + status & 0x7f
    }

    /// Runs a command to its end, its output in the file `output` (returned, then removed).
    static func run(
        _ executable: String, _ arguments: [String], directory: String, output: String
    ) throws(SpawnError) -> (status: Int32, output: String) {
        let status = try wait(try start(executable, arguments, directory: directory, stdout: output))
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(atPath: output)
        return (status, text)
    }

    /// The first of `names` that is an executable file: a tool's path on Debian and elsewhere.
    static func tool(_ names: String...) -> String {
        names.first { FileManager.default.isExecutableFile(atPath: $0) } ?? names[0]
    }

    private typealias FileActionsInt = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    private typealias FileActionsPath =
        @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32

    private static func function<F>(_ name: String, as type: F.Type) -> F? {
        dlsym(nil, name).map { unsafeBitCast($0, to: type) }
    }
}

struct SpawnError: Error, CustomStringConvertible, Sendable {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Ends a child of this process: SIGTERM, then SIGKILL after `grace` seconds, and reaps it.
/// Safe from a deinit on the cooperative pool, unlike Foundation's `waitUntilExit`, which
/// spins the thread's run loop and once spun both of the pool's threads for 25 minutes.
public func endChild(_ pid: Int32, grace: Double = 5) {
    guard childExit(pid) == nil else { return }
    kill(pid, SIGTERM)
    let deadline = Date().addingTimeInterval(grace)
    while childExit(pid) == nil {
        guard Date() < deadline else {
            kill(pid, SIGKILL)
            _ = try? Spawn.wait(pid)
            return
        }
        usleep(10_000)
    }
}

/// The child's exit status if it has ended (and is now reaped), -1 if it was reaped
/// already (by Foundation's monitor, say); nil while it runs.
public func childExit(_ pid: Int32) -> Int32? {
    var status: Int32 = 0
    var reaped: pid_t
    repeat { reaped = waitpid(pid, &status, WNOHANG) } while reaped == -1 && errno == EINTR
    if reaped == pid { return Spawn.exitCode(status) }
    return reaped == 0 ? nil : -1
}

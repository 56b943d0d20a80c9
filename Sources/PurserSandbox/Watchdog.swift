import CPurserSys
import Glibc

/// `purser-watchdog`, started once per supervisor with its first run's groups: it kills
/// every group of this supervisor's the moment the supervisor is gone, however it goes, so
/// that a trusted run's escaped descendants die with it too, not at the next start (see
/// the helper's header). It waits for end-of-file on a pipe whose only write end this
/// process holds (close-on-exec, and closed in every spawn child), in a session of its own
/// (a terminal's Ctrl-C does not reach it), outside every run's groups.
enum Watchdog {
    /// Starts the watchdog if none is running yet (a cheap check after the first call), and
    /// says why none watches this supervisor, where one should: nil when one does, or when
    /// there are no groups to watch.
    @discardableResult
    static func start() -> String? {
        guard let problem = launched else { return nil }
        return problem.quiet ? nil : problem.message
    }

    /// Why no watchdog could watch a supervisor here (nil: one can), without starting one.
    static var unavailable: String? {
        if case .failure(let problem) = plan { return problem.message }
        return nil
    }

    private struct Problem: Error {
        let message: String
        /// Nothing to say on each run: there is nothing to watch.
        var quiet = false
    }

    private struct Plan {
        let path: String
        /// This supervisor's `SupervisorIdentity.local`, which names its groups.
        let owner: String
        let bases: [String]
    }

    private static let plan: Result<Plan, Problem> = {
        let bases = [CgroupV2Group.base, MemoryCgroup.base, PidsCgroup.base, CpuCgroup.base].compactMap { $0 }
        guard !bases.isEmpty else {
            return .failure(Problem(message: "no cgroups to watch: runs are contained by process group", quiet: true))
        }
        guard let owner = SupervisorIdentity.current?.local else {
            return .failure(Problem(message: "this process cannot tell its own identity from /proc"))
        }
        guard let path = siblingExecutable("purser-watchdog", override: "PURSER_WATCHDOG"), access(path, X_OK) == 0 else {
            return .failure(Problem(message: "purser-watchdog is not next to this executable (or at $PURSER_WATCHDOG)"))
        }
        return .success(Plan(path: path, owner: owner, bases: bases))
    }()

    private static let launched: Problem? = {
        switch plan {
        case .failure(let problem): return problem
        case .success(let plan):
            do throws(Problem) {
                try launch(plan)
                return nil
            } catch {
                return error
            }
        }
    }()

    /// The write end, never closed: the watchdog acts when the kernel closes it.
    nonisolated(unsafe) private static var keptWriteEnd: Int32 = -1

    private static func launch(_ plan: Plan) throws(Problem) {
        var ends: [Int32] = [-1, -1]
        guard purser_pipe_cloexec(&ends) == 0 else { throw Problem(message: "pipe: " + String(cString: strerror(errno))) }
        let null = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer {
            close(ends[0])
            if null >= 0 { close(null) }
        }
        var result = purser_spawn_result()
        guard spawn(plan.path, arguments: [plan.path, plan.owner] + plan.bases, stdio: null, pipe: ends[0], &result) == 0 else {
            close(ends[1])
            throw Problem(message: "cannot start \(plan.path): " + String(cString: strerror(result.error)))
        }
        close(result.pidfd)
        keptWriteEnd = ends[1]
    }

    private static func spawn(
        _ path: String, arguments: [String], stdio: Int32, pipe: Int32, _ result: inout purser_spawn_result
    ) -> Int32 {
        let argv = CStringArray(arguments)
        let envp = CStringArray([])
        let inherit = [pipe]
        return withExtendedLifetime((argv, envp)) {
            path.withCString { cPath in
                "/".withCString { root in
                    inherit.withUnsafeBufferPointer { fds in
                        var args = purser_spawn_args()
                        args.path = cPath
                        args.argv = UnsafePointer(argv.pointer)
                        args.envp = UnsafePointer(envp.pointer)
                        args.cwd = root
                        args.stdin_fd = stdio
                        args.stdout_fd = stdio
                        args.stderr_fd = stdio
                        args.umask = 0o022
                        args.exec_fd = -1
                        args.netns_fd = -1
                        args.seccomp_socket = -1
                        args.inherit_fds = fds.baseAddress
                        args.inherit_count = 1
                        return purser_spawn(&args, &result)
                    }
                }
            }
        }
    }
}

/// An executable next to this one (or at `$override`); nil if absent.
public func siblingExecutable(_ name: String, override: String) -> String? {
    if let given = getenv(override) { return String(cString: given) }
    guard let exe = realpath("/proc/self/exe", nil) else { return nil }
    defer { free(exe) }
    let path = String(String(cString: exe).split(separator: "/", omittingEmptySubsequences: false).dropLast()
        .joined(separator: "/")) + "/" + name
    return access(path, X_OK) == 0 ? path : nil
}

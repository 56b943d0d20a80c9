import CPurserSys
import Glibc
import Synchronization

/// Starts workers without fork(): see `purser_spawn` in CPurserSys.
public enum Spawner {
    public static func spawn(_ profile: SandboxProfile) throws(SandboxError) -> WorkerProcess {
        let path = try executablePath(profile)
        let pipes = try Pipes()
        let held: Held
        do {
            held = try Held(profile, path: path)
        } catch {
            pipes.closeAll()
            throw error
        }
        let egress: Int32
        do {
            egress = try egressListener(profile, netns: held.isolation.netnsFD)
        } catch {
            pipes.closeAll()
            held.undo()
            throw error
        }
        var result = purser_spawn_result()
        let status = withSpawnArguments(
            profile, path: path, fds: pipes.childEnds, procsFDs: held.groups.procsFDs,
            subreaper: held.groups.group is ProcessGroupRunGroup, memoryGroup: held.groups.memory != nil, isolation: held.isolation
        ) {
            purser_spawn($0, &result)
        }
        guard status == 0 else {
            if egress >= 0 { close(egress) }
            pipes.closeAll()
            held.undo()
            throw spawnError(result, path: path, isolation: profile.isolation)
        }
        return try start(profile, path: path, pipes: pipes, held: held, result: result, egress: egress)
    }

    /// The egress proxy's listener in the run's network namespace, made before the worker
    /// can connect to it; -1 when the run has none.
    private static func egressListener(_ profile: SandboxProfile, netns: Int32) throws(SandboxError) -> Int32 {
        guard let port = profile.egressPort, !(profile.isolation.network && profile.isolation.userNamespace) else { return -1 }
        guard netns >= 0 else {
            throw SandboxError(
                code: .spawnFailed,
                message: "egress needs the run's own network namespace, made by the supervisor (untrusted, with a root supervisor)")
        }
        let fd = purser_netns_listen(netns, port)
        guard fd >= 0 else {
            throw SandboxError(code: .spawnFailed, errno: errno, message: "cannot listen on 127.0.0.1:\(port) in the run's network namespace")
        }
        return fd
    }

    /// By fd, the name is not looked up: it may no longer name the opened file, or anything.
    private static func executablePath(_ profile: SandboxProfile) throws(SandboxError) -> String {
        guard let fd = profile.executableFD else { return try resolveExecutable(profile.executable) }
        guard fd >= 0, fcntl(fd, F_GETFD) >= 0 else {
            throw SandboxError(code: .executableNotFound, errno: EBADF, message: "cannot execute \(profile.executable) by fd \(fd)")
        }
        return profile.executable
    }

    /// The spawned worker, once its seccomp listener is watched (and, through the helper,
    /// its egress listener received); a filter nobody answers would not hold, so a worker
    /// whose listener cannot be watched is ended at once, as is one whose egress never came.
    private static func start(
        _ profile: SandboxProfile, path: String, pipes: Pipes, held: Held, result: purser_spawn_result, egress: Int32
    ) throws(SandboxError) -> WorkerProcess {
        var isolation = held.isolation
        let tag = nextTag.add(1, ordering: .relaxed).newValue
        let watched = isolation.adopt(tag: tag)
        var egress = egress
        var failure: SandboxError?
        if watched, egress < 0 {
            do { egress = try isolation.receiveEgressListener() } catch { failure = error }
        }
        // The write ends of stdout and stderr stay open here too (close-on-exec, never
        // written): see `WorkerProcess.stdoutHoldFD`.
        close(pipes.stdin.read)
        for fd in pipes.supervisorEnds { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        let process = WorkerProcess(
            pid: result.pid, pidFD: result.pidfd, stdin: pipes.stdin.write, stdout: pipes.stdout.read,
            stderr: pipes.stderr.read, stdoutHold: pipes.stdout.write, stderrHold: pipes.stderr.write, groups: held.groups,
            isolation: WorkerIsolation(
                netnsFD: isolation.netnsFD, seccompTag: profile.isolation.seccomp ? tag : nil,
                pidNamespace: profile.isolation.processes && !isolation.viaHelper),
            egressListener: egress)
        guard watched, failure == nil else {
            process.killAll()
            kill(result.pid, SIGKILL)
            _ = process.reap()
            process.cleanUp()
            isolation.closeUnwatched()
            let said = failure == nil ? "" : stderrTail(pipes.stderr.read)
            closeAll(pipes.supervisorEnds + [pipes.stdout.write, pipes.stderr.write, result.pidfd] + (egress >= 0 ? [egress] : []))
            guard let failure else {
                throw SandboxError(code: .spawnFailed, message: "cannot watch the seccomp filter of \(path); the worker was ended")
            }
            throw said.isEmpty ? failure : SandboxError(code: failure.code, errno: failure.errno, message: failure.message + ": " + said)
        }
        return process
    }

    /// What a helper that failed said on the worker's stderr, its last line, bounded.
    private static func stderrTail(_ fd: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 1024)
        let count = read(fd, &buffer, buffer.count)
        guard count > 0 else { return "" }
        let lines = String(decoding: buffer[..<count], as: UTF8.self).split(separator: "\n").filter { !$0.allSatisfy(\.isWhitespace) }
        return String(lines.last ?? "")
    }

    /// The worker's three pipes; the child's ends become its 0, 1 and 2.
    private struct Pipes {
        let stdin: (read: Int32, write: Int32)
        let stdout: (read: Int32, write: Int32)
        let stderr: (read: Int32, write: Int32)

        init() throws(SandboxError) {
            stdin = try makePipe()
            do {
                stdout = try makePipe()
            } catch {
                Spawner.closeAll([stdin.read, stdin.write])
                throw error
            }
            do {
                stderr = try makePipe()
            } catch {
                Spawner.closeAll([stdin.read, stdin.write, stdout.read, stdout.write])
                throw error
            }
        }

        var supervisorEnds: [Int32] { [stdin.write, stdout.read, stderr.read] }
        var childEnds: [Int32] { [stdin.read, stdout.write, stderr.write] }
        func closeAll() { Spawner.closeAll(supervisorEnds + childEnds) }
    }

    /// What a run holds before its spawn: its groups and its isolation's namespaces and fds.
    private struct Held {
        let groups: RunCgroups
        let isolation: SpawnIsolation

        init(_ profile: SandboxProfile, path: String) throws(SandboxError) {
            let groups = try RunCgroups(profile)
            do {
                isolation = try SpawnIsolation(profile, path: path)
            } catch {
                groups.release()
                throw error
            }
            self.groups = groups
            let missing = profile.requiredCgroups.subtracting(groups.layers)
            guard missing.isEmpty else {
                undo()
                throw SandboxError(
                    code: .layerMissing,
                    message: "cannot start \(path): its \(missing.sorted().map(\.rawValue).joined(separator: " and ")) could not be set up")
            }
        }

        /// After a failed spawn.
        func undo() {
            groups.release()
            isolation.undo()
        }
    }

    /// Tags a run's seccomp listener, so that its denied calls are told apart from others'.
    private static let nextTag = Atomic<UInt64>(0)

    /// The least RLIMIT_DATA a worker under a memory cgroup gets: address space it may reserve.
    public static let dataBackstopFloor: UInt64 = 64 << 30

    /// `purser-sandbox`, next to this executable (or `$PURSER_SANDBOX_HELPER`); nil if absent.
    public static let helperPath: String? = siblingExecutable("purser-sandbox", override: "PURSER_SANDBOX_HELPER")

    /// The highest capability number this kernel knows.
    static let capLast: Int32 = Int32(readSmallFile("/proc/sys/kernel/cap_last_cap")?.trimmingNewline() ?? "") ?? 40

    /// Finds the executable as a shell would: a path with a slash as is, else on PATH.
    /// The result is absolute, since the worker starts in its own directory.
    public static func resolveExecutable(_ name: String) throws(SandboxError) -> String {
        if name.contains("/") {
            guard access(name, X_OK) == 0 else {
                throw SandboxError(code: .executableNotFound, errno: errno, message: "cannot execute \(name)")
            }
            guard !name.hasPrefix("/"), let cwd = getcwd(nil, 0) else { return name }
            defer { free(cwd) }
            return String(cString: cwd) + "/" + name
        }
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/local/bin:/usr/bin:/bin"
        for dir in path.split(separator: ":") where access("\(dir)/\(name)", X_OK) == 0 {
            return "\(dir)/\(name)"
        }
        throw SandboxError(code: .executableNotFound, message: "no executable named \(name) on PATH")
    }

    fileprivate static func makePipe() throws(SandboxError) -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        try syscall("pipe2") { purser_pipe_cloexec(&fds) }
        return (fds[0], fds[1])
    }

    fileprivate static func closeAll(_ fds: [Int32]) {
        for fd in fds where fd >= 0 { close(fd) }
    }

    private static func spawnError(_ result: purser_spawn_result, path: String, isolation: Isolation) -> SandboxError {
        let step: String
        switch result.stage {
        case PURSER_STAGE_CLONE: step = "clone"
        case PURSER_STAGE_SIGNALS: step = "resetting signals"
        case PURSER_STAGE_SETSID: step = "setsid"
        case PURSER_STAGE_PDEATHSIG: step = "setting the parent-death signal"
        case PURSER_STAGE_CGROUP: step = "joining the run's cgroup"
        case PURSER_STAGE_DUP: step = "setting up stdio"
        case PURSER_STAGE_CLOSE_FDS: step = "closing inherited fds"
        case PURSER_STAGE_RLIMIT: step = "setting rlimits"
        case PURSER_STAGE_CHDIR: step = "entering the working directory"
        case PURSER_STAGE_NO_NEW_PRIVS: step = "setting no_new_privs"
        case PURSER_STAGE_CAPABILITIES: step = "dropping capabilities"
        case PURSER_STAGE_NETWORK: step = "joining the network namespace"
        case PURSER_STAGE_MOUNTS: step = "setting up the mount namespace"
        case PURSER_STAGE_IDS: step = "switching to the sandbox user"
        case PURSER_STAGE_SECCOMP: step = "installing the seccomp filter"
        default:
            if let user = isolation.user, result.error == EACCES {
                return SandboxError(
                    code: .spawnFailed, errno: result.error,
                    message: "cannot start \(path) as the sandbox user \(user.uid): it must be executable (and a script readable) by others, or run it trusted")
            }
            step = "exec"
        }
        return SandboxError(code: .spawnFailed, errno: result.error, message: "cannot start \(path) (\(step))")
    }

    private static func withSpawnArguments<R>(
        _ profile: SandboxProfile, path: String, fds: [Int32], procsFDs: [Int32], subreaper: Bool, memoryGroup: Bool,
        isolation: SpawnIsolation, _ body: (UnsafePointer<purser_spawn_args>) -> R
    ) -> R {
        let launch = isolation.launch(profile, path: path)
        let argv = CStringArray(launch.argv)
        let envp = CStringArray(profile.environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" })
        let limits = rlimits(profile.limits, memoryGroup: memoryGroup, isolation: profile.isolation)
        let executable = launch.execFD
        let cwd = profile.isolation.filesystem ? "/tmp" : profile.workingDirectory
        return withExtendedLifetime((argv, envp)) {
            launch.path.withCString { cPath in
            isolation.withMountPlan { plan in
            withOptionalCString(cwd) { cwd in
                procsFDs.withUnsafeBufferPointer { procsBuffer in
                limits.withUnsafeBufferPointer { limitBuffer in
                launch.inherit.withUnsafeBufferPointer { inheritBuffer in
                    var args = purser_spawn_args()
                    args.inherit_fds = inheritBuffer.baseAddress
                    args.inherit_count = Int32(inheritBuffer.count)
                    args.path = cPath
                    args.argv = UnsafePointer(argv.pointer)
                    args.envp = UnsafePointer(envp.pointer)
                    args.cwd = cwd
                    args.stdin_fd = fds[0]
                    args.stdout_fd = fds[1]
                    args.stderr_fd = fds[2]
                    args.cgroup_procs_fds = procsBuffer.baseAddress
                    args.cgroup_procs_count = Int32(procsBuffer.count)
                    args.rlimits = limitBuffer.baseAddress
                    args.rlimit_count = Int32(limitBuffer.count)
                    args.pdeathsig = SIGKILL
                    args.child_subreaper = subreaper ? 1 : 0
                    args.umask = 0o077
                    // Zero-initialised, exec_fd would be 0: -1 means "execute path".
                    args.exec_fd = executable?.fd ?? -1
                    args.exec_fd_keep = executable?.keep == true ? 1 : 0
                    args.drop_capabilities = profile.dropCapabilities && geteuid() == 0 ? 1 : 0
                    args.cap_last = Self.capLast
                    args.namespaces = isolation.namespaceFlags
                    args.netns_fd = isolation.netnsFD
                    args.mounts = plan
                    if let user = profile.isolation.user, geteuid() == 0, !isolation.viaHelper {
                        args.set_ids = 1
                        args.uid = user.uid
                        args.gid = user.gid
                    }
                    args.seccomp = profile.isolation.seccomp && !isolation.viaHelper ? 1 : 0
                    args.seccomp_socket = isolation.viaHelper ? -1 : isolation.seccompSockets.child
                    return withUnsafePointer(to: &args) { body($0) }
                }
                }
                }
            }
            }
            }
        }
    }

    private static func rlimits(_ limits: ResourceLimits, memoryGroup: Bool, isolation: Isolation) -> [purser_rlimit] {
        func limit(_ resource: __rlimit_resource, _ soft: UInt64, _ hard: UInt64? = nil) -> purser_rlimit {
            purser_rlimit(resource: Int32(resource.rawValue), soft: rlim_t(soft), hard: rlim_t(hard ?? soft))
        }
        var result = [limit(RLIMIT_NOFILE, limits.openFiles), limit(RLIMIT_CORE, limits.coreBytes)]
        if let cpu = limits.cpuSeconds {
            // The soft limit sends SIGXCPU; the hard one, a second later, SIGKILL.
            result.append(limit(RLIMIT_CPU, UInt64(max(cpu, 1)), UInt64(max(cpu, 1) + 1)))
        }
        if let data = limits.dataBytes {
            // Under this run's memory cgroup, which limits what is used, RLIMIT_DATA is only a
            // backstop against runaway mappings: runtimes that reserve address space up
            // front (a JVM, V8, Go) must still start.
            let backstop = limits.memoryBytes != nil && memoryGroup
            let (scaled, overflow) = data.multipliedReportingOverflow(by: 4)
            result.append(limit(RLIMIT_DATA, backstop ? max(overflow ? UInt64.max : scaled, Self.dataBackstopFloor) : data))
        }
        // No file can outgrow the private /tmp; a sparse one would otherwise fit.
        let fileSize = isolation.filesystem ? min(limits.fileSizeBytes ?? .max, isolation.workingDirectoryBytes) : limits.fileSizeBytes
        if let fileSize { result.append(limit(RLIMIT_FSIZE, fileSize)) }
        return result
    }
}

private func withOptionalCString<R>(_ string: String?, _ body: (UnsafePointer<CChar>?) -> R) -> R {
    guard let string else { return body(nil) }
    return string.withCString { body($0) }
}

/// A NULL-terminated array of C strings that lives as long as this value.
final class CStringArray {
    let pointer: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>
    let count: Int

    /// As C's `const char *const *`.
    var constPointer: UnsafePointer<UnsafePointer<CChar>?> {
        UnsafeRawPointer(pointer).assumingMemoryBound(to: UnsafePointer<CChar>?.self)
    }

    init(_ strings: [String]) {
        count = strings.count
        pointer = .allocate(capacity: count + 1)
        for (index, string) in strings.enumerated() { pointer[index] = strdup(string) }
        pointer[count] = nil
    }

    deinit {
        for index in 0..<count { free(pointer[index]) }
        pointer.deallocate()
    }
}

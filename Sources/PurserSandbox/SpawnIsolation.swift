import CPurserSys
import Glibc

/// What one spawn needs for its `Isolation`, made before the spawn and kept or undone after.
struct SpawnIsolation {
    let isolation: Isolation
    /// The network namespace the worker joins; the worker process owns it after a spawn.
    var netnsFD: Int32 = -1
    /// The supervisor's and the child's ends of the socket the seccomp listener comes over.
    var seccompSockets: (parent: Int32, child: Int32) = (-1, -1)
    /// Through the helper: the ends of the socket the egress listener comes over, made by
    /// the helper in the namespace it made (`SandboxProfile.egressPort`).
    var egressSockets: (parent: Int32, child: Int32) = (-1, -1)
    let egressPort: UInt16?
    /// The executable, opened here when the worker could not reach it by path: the way may
    /// be closed to its uid, or hidden by its mount namespace (a path under /tmp).
    var openedExecutable: (fd: Int32, isScript: Bool)?

    init(_ profile: SandboxProfile, path: String) throws(SandboxError) {
        isolation = profile.isolation
        egressPort = profile.egressPort
        do {
            if isolation.network && !viaHelper { netnsFD = try NetworkNamespaces.shared.take() }
            if isolation.network && viaHelper && egressPort != nil {
                var fds: [Int32] = [-1, -1]
                try syscall("socketpair") { purser_socketpair_cloexec(&fds) }
                egressSockets = (fds[0], fds[1])
            }
            if isolation.seccomp {
                var fds: [Int32] = [-1, -1]
                try syscall("socketpair") { purser_socketpair_cloexec(&fds) }
                seccompSockets = (fds[0], fds[1])
            }
            if isolation.user != nil || isolation.filesystem, profile.executableFD == nil {
                openedExecutable = try Self.open(path)
            }
        } catch {
            undo()
            throw error
        }
    }

    /// The supervisor opens it and the worker executes it by fd.
    private static func open(_ path: String) throws(SandboxError) -> (fd: Int32, isScript: Bool) {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw SandboxError(code: .executableNotFound, errno: errno, message: "cannot open \(path)")
        }
        var magic: (UInt8, UInt8) = (0, 0)
        let read = withUnsafeMutableBytes(of: &magic) { pread(fd, $0.baseAddress, 2, 0) }
        return (fd, read == 2 && magic == (0x23, 0x21))
    }

    /// A supervisor that is not root makes the namespaces through `purser-sandbox`, inside
    /// a user namespace (see that helper's header for why).
    var viaHelper: Bool { isolation.userNamespace }

    var namespaceFlags: Int32 {
        guard !viaHelper else { return 0 }
        var flags: Int32 = 0
        if isolation.processes { flags |= PURSER_CLONE_NEWPID | PURSER_CLONE_NEWIPC }
        // A PID namespace needs a mount namespace too, for a /proc that shows only it.
        if isolation.filesystem || isolation.processes { flags |= PURSER_CLONE_NEWNS }
        return flags
    }

    /// Through the helper, after the spawn: the egress listener it made in the run's network
    /// namespace, which it sends before it starts the worker; or why none came (it failed,
    /// and said why on the worker's stderr, or was too slow).
    mutating func receiveEgressListener() throws(SandboxError) -> Int32 {
        guard egressSockets.parent >= 0 else { return -1 }
        close(egressSockets.child)
        defer {
            close(egressSockets.parent)
            egressSockets = (-1, -1)
        }
        var ready = pollfd(fd: egressSockets.parent, events: Int16(POLLIN), revents: 0)
        var waited: Int32 = 0
        repeat { waited = poll(&ready, 1, Self.helperWaitMs) } while waited < 0 && errno == EINTR
        let fd = waited > 0 ? purser_receive_fd(egressSockets.parent) : -1
        guard fd >= 0 else {
            throw SandboxError(
                code: .spawnFailed,
                message: "the sandbox helper did not hand over the egress listener within \(Self.helperWaitMs) ms (see the run's stderr)")
        }
        return fd
    }

    static let helperWaitMs: Int32 = 10_000

    /// An fd that could not be handed to the notifier: closed only after the worker is ended
    /// (closing a listener while its filter's processes live would let them install their own).
    private(set) var unwatched: Int32 = -1

    /// After a successful spawn: the child's end is closed, the listener handed to the
    /// notifier. False when that failed: the worker must be ended, then `closeUnwatched()`.
    mutating func adopt(tag: UInt64) -> Bool {
        if let opened = openedExecutable { close(opened.fd) }
        openedExecutable = nil
        guard seccompSockets.parent >= 0 else { return true }
        close(seccompSockets.child)
        let socket = seccompSockets.parent
        seccompSockets = (-1, -1)
        if viaHelper {
            // The helper's worker sends its listener later, from inside the namespaces.
            if purser_seccomp_watch_socket(socket, tag) == 0 { return true }
            unwatched = socket
            return false
        }
        let listener = purser_receive_fd(socket)
        close(socket)
        guard listener >= 0 else { return false }
        if purser_seccomp_watch(listener, tag) == 0 { return true }
        unwatched = listener
        return false
    }

    func closeUnwatched() {
        if unwatched >= 0 { close(unwatched) }
    }

    /// After a failed spawn (its child is gone, so the namespace is clean).
    func undo() {
        if netnsFD >= 0 { NetworkNamespaces.shared.give(netnsFD) }
        for fd in [seccompSockets.parent, seccompSockets.child, egressSockets.parent, egressSockets.child] where fd >= 0 { close(fd) }
        if let opened = openedExecutable { close(opened.fd) }
    }

    /// The paths to hide, resolved, as directories or files: only those the worker's root
    /// holds (its allowed and shared directories); the rest of the host is not there at all.
    private func hidden() -> (directories: [String], files: [String]) {
        var directories: [String] = []
        var files: [String] = []
        let visible = Isolation.rootDirectories + isolation.sharedPaths
        for path in isolation.hiddenPaths {
            guard let real = realpath(path, nil) else { continue }
            defer { free(real) }
            let resolved = String(cString: real)
            guard visible.contains(where: { resolved == $0 || resolved.hasPrefix($0 + "/") }) else { continue }
            var info = stat()
            guard stat(real, &info) == 0 else { continue }
            if info.st_mode & S_IFMT == S_IFDIR { directories.append(resolved) } else { files.append(resolved) }
        }
        return (Array(Set(directories)).sorted(), Array(Set(files)).sorted())
    }

    private var tmpOptions: String {
        let user = viaHelper ? Isolation.sandboxUser : isolation.user ?? (0, 0)
        return "size=\(isolation.workingDirectoryBytes),mode=0700,uid=\(user.uid),gid=\(user.gid)"
    }

    /// The mount plan for the spawn child (not through the helper, which makes its own).
    func withMountPlan<R>(_ body: (UnsafePointer<purser_mount_plan>?) -> R) -> R {
        guard isolation.filesystem || isolation.processes, !viaHelper else { return body(nil) }
        let (directories, files) = isolation.filesystem ? hidden() : ([], [])
        let dirs = CStringArray(directories)
        let hiddenFiles = CStringArray(files)
        let shared = CStringArray(isolation.filesystem ? isolation.sharedPaths : [])
        return withExtendedLifetime((dirs, hiddenFiles, shared)) {
            tmpOptions.withCString { cTmp in
                var plan = purser_mount_plan()
                plan.readonly_root = isolation.filesystem ? 1 : 0
                plan.mount_proc = isolation.processes ? 1 : 0
                plan.tmp_options = isolation.filesystem ? cTmp : nil
                plan.hidden_dirs = dirs.constPointer
                plan.hidden_dir_count = Int32(dirs.count)
                plan.hidden_files = hiddenFiles.constPointer
                plan.hidden_file_count = Int32(hiddenFiles.count)
                plan.shared_dirs = shared.constPointer
                plan.shared_dir_count = Int32(shared.count)
                return withUnsafePointer(to: &plan) { body($0) }
            }
        }
    }

    /// What the spawn child executes: the worker, or the helper with the worker after `--`,
    /// handed the passed files, the worker's file and the seccomp socket as fds 3 and up.
    func launch(_ profile: SandboxProfile, path: String)
        -> (path: String, argv: [String], execFD: (fd: Int32, keep: Bool)?, inherit: [Int32])
    {
        let worker = openedExecutable.map { ($0.fd, $0.isScript) } ?? profile.executableFD.map { ($0, profile.keepExecutableFD) }
        guard viaHelper, let helper = Spawner.helperPath else {
            return (path, [path] + profile.arguments, worker, profile.passedFDs)
        }
        let user = Isolation.sandboxUser
        let cwd = isolation.filesystem ? "/tmp" : profile.workingDirectory ?? "/"
        var flags = ["--uid-map", "\(user.uid) \(geteuid()) 1\n", "--gid-map", "\(user.gid) \(getegid()) 1\n", "--cwd", cwd]
        if isolation.filesystem {
            let (directories, files) = hidden()
            flags += ["--tmp", tmpOptions] + directories.flatMap { ["--hide-dir", $0] } + files.flatMap { ["--hide-file", $0] }
                + isolation.sharedPaths.flatMap { ["--share-dir", $0] }
        }
        if isolation.processes { flags.append("--proc") }
        // The helper leaves 3, 4, … open for the worker, so the passed files come first.
        var inherit = profile.passedFDs
        if let worker {
            inherit.append(worker.0)
            flags += ["--exec-fd", "\(2 + inherit.count)"] + (worker.1 ? ["--keep-exec-fd"] : [])
        }
        if seccompSockets.child >= 0 {
            inherit.append(seccompSockets.child)
            flags += ["--seccomp-fd", "\(2 + inherit.count)"]
        }
        if egressSockets.child >= 0, let egressPort {
            inherit.append(egressSockets.child)
            flags += ["--egress-fd", "\(2 + inherit.count)", "--egress-port", "\(egressPort)"]
        }
        return (helper, [helper] + flags + ["--", path, path] + profile.arguments, nil, inherit)
    }

    /// The names of the syscalls the deny-list refuses, by number.
    static let deniedNames: [Int32: String] = {
        var list: UnsafePointer<purser_syscall>?
        let count = Int(purser_seccomp_denied(&list))
        var names: [Int32: String] = [:]
        for index in 0..<count { names[list![index].number] = String(cString: list![index].name) }
        return names
    }()
}

import CPurserSys
import Glibc

/// What one spawn needs for its `Isolation`, made before the spawn and kept or undone after.
struct SpawnIsolation {
    let isolation: Isolation
    /// The network namespace the worker joins; the worker process owns it after a spawn.
    var netnsFD: Int32 = -1
    /// The supervisor's and the child's ends of the socket the seccomp listener comes over.
    var seccompSockets: (parent: Int32, child: Int32) = (-1, -1)
    /// The executable, opened here when an unprivileged worker could not reach it by path.
    var openedExecutable: (fd: Int32, isScript: Bool)?

    init(_ profile: SandboxProfile, path: String) throws(SandboxError) {
        isolation = profile.isolation
        do {
            if isolation.network { netnsFD = try NetworkNamespaces.shared.take() }
            if isolation.seccomp {
                var fds: [Int32] = [-1, -1]
                try syscall("socketpair") { purser_socketpair_cloexec(&fds) }
                seccompSockets = (fds[0], fds[1])
            }
            if isolation.user != nil, profile.executableFD == nil {
                openedExecutable = try Self.open(path)
            }
        } catch {
            undo()
            throw error
        }
    }

    /// The directories that lead to the executable may be closed to the worker's uid, so
    /// the supervisor opens it and the worker executes it by fd.
    private static func open(_ path: String) throws(SandboxError) -> (fd: Int32, isScript: Bool) {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw SandboxError(code: .executableNotFound, errno: errno, message: "cannot open \(path)")
        }
        var magic: (UInt8, UInt8) = (0, 0)
        let read = withUnsafeMutableBytes(of: &magic) { pread(fd, $0.baseAddress, 2, 0) }
        return (fd, read == 2 && magic == (0x23, 0x21))
    }

    var namespaceFlags: Int32 {
        var flags: Int32 = 0
        if isolation.processes { flags |= PURSER_CLONE_NEWPID | PURSER_CLONE_NEWIPC }
        if isolation.filesystem { flags |= PURSER_CLONE_NEWNS }
        return flags
    }

    /// After a successful spawn: the child's end is closed, the listener handed to the notifier.
    mutating func adopt(tag: UInt64) -> Bool {
        if let opened = openedExecutable { close(opened.fd) }
        openedExecutable = nil
        guard seccompSockets.parent >= 0 else { return true }
        close(seccompSockets.child)
        let listener = purser_receive_fd(seccompSockets.parent)
        close(seccompSockets.parent)
        seccompSockets = (-1, -1)
        return listener >= 0 && purser_seccomp_watch(listener, tag) == 0
    }

    /// After a failed spawn (its child is gone, so the namespace is clean).
    func undo() {
        if netnsFD >= 0 { NetworkNamespaces.shared.give(netnsFD) }
        for fd in [seccompSockets.parent, seccompSockets.child] where fd >= 0 { close(fd) }
        if let opened = openedExecutable { close(opened.fd) }
    }

    /// The mount plan's strings, resolved: hidden paths that exist, as directories or files.
    func withMountPlan<R>(_ body: (UnsafePointer<purser_mount_plan>?) -> R) -> R {
        guard isolation.filesystem else { return body(nil) }
        var directories: [String] = []
        var files: [String] = []
        // Host services keep their sockets in /run (/var/run is usually a link to it).
        for path in ["/run", "/var/run"] + isolation.hiddenPaths {
            guard let real = realpath(path, nil) else { continue }
            defer { free(real) }
            var info = stat()
            guard stat(real, &info) == 0 else { continue }
            let resolved = String(cString: real)
            if info.st_mode & S_IFMT == S_IFDIR { directories.append(resolved) } else { files.append(resolved) }
        }
        let user = isolation.user ?? (0, 0)
        let tmp = "size=\(isolation.workingDirectoryBytes),mode=0700,uid=\(user.uid),gid=\(user.gid)"
        let dirs = CStringArray(Array(Set(directories)).sorted())
        let hidden = CStringArray(Array(Set(files)).sorted())
        return withExtendedLifetime((dirs, hidden)) {
            tmp.withCString { cTmp in
                var plan = purser_mount_plan()
                plan.readonly_root = 1
                plan.mount_proc = isolation.processes ? 1 : 0
                plan.tmp_options = cTmp
                plan.hidden_dirs = dirs.constPointer
                plan.hidden_dir_count = Int32(dirs.count)
                plan.hidden_files = hidden.constPointer
                plan.hidden_file_count = Int32(hidden.count)
                return withUnsafePointer(to: &plan) { body($0) }
            }
        }
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

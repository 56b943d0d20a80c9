import Glibc
import Synchronization

/// Which supervisor made a run directory, and whether it still lives. A supervisor names
/// its run directories under a parent `run-<id>-XXXXXX` and, while it lives, holds an
/// exclusive flock on `<parent>.locks/<id>`. The kernel drops the lock when the supervisor
/// dies, however it dies, so a lock another process can take is a dead supervisor's, and its
/// directories can go. A lock rather than a pid: the parent may be on a file system that
/// other hosts, or earlier boots, share.
///
/// A flock belongs to the file, not the name: under a further parent on the same file
/// system the lock file is hard-linked, so that one open file holds every claim there
/// (a supervisor may use any number of parents, as tests do with their homes).
enum RunDirectoryOwners {
    private struct Lock {
        let id: String
        let fd: Int32
        /// A name it has, to link from.
        var path: String
    }

    private struct State {
        var locks: [Lock] = []
        /// Each parent's claim: the id of the lock it is linked to.
        var claims: [String: String] = [:]
    }

    private static let state = Mutex(State())

    static func locks(under parent: String) -> String { parent + ".locks" }

    /// This supervisor's id under `parent` (which exists), claimed on first use.
    static func id(under parent: String) throws(SandboxError) -> String {
        try state.withLock { (state) throws(SandboxError) -> String in
            if let id = state.claims[parent] { return id }
            let locks = locks(under: parent)
            try syscall("mkdir \(locks)") { mkdir(locks, 0o700) == 0 || errno == EEXIST ? 0 : -1 }
            if let lock = state.locks.first(where: { link($0.path, locks + "/" + $0.id) == 0 }) {
                state.claims[parent] = lock.id
                return lock.id
            }
            let lock = try claim(in: locks)
            state.locks.append(lock)
            state.claims[parent] = lock.id
            return lock.id
        }
    }

    /// A new lock file in `locks`, locked.
    private static func claim(in locks: String) throws(SandboxError) -> Lock {
        for _ in 0..<16 {
            let id = "\(getpid())x\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
            let path = locks + "/" + id
            let fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            if fd < 0 && errno == EEXIST { continue }
            try syscall("creating \(path)") { fd }
            try syscall("locking \(path)") { flock(fd, LOCK_EX) }
            // Between the open and the lock, a start that took the lock for a dead one's
            // may have removed the file: then the lock guards nothing.
            if isLinked(fd, at: path) { return Lock(id: id, fd: fd, path: path) }
            close(fd)
        }
        throw SandboxError(code: .syscallFailed, message: "cannot claim a lock in \(locks)")
    }

    /// Whether `fd` is still the file at `path`.
    private static func isLinked(_ fd: Int32, at path: String) -> Bool {
        var open = stat()
        var named = stat()
        return fstat(fd, &open) == 0 && lstat(path, &named) == 0 && open.st_dev == named.st_dev && open.st_ino == named.st_ino
    }

    /// Removes the run directories under `parent` of every supervisor that is dead, then
    /// its lock's name there; returns the directories that would not go.
    static func clearDead(under parent: String) -> [String] {
        let locks = locks(under: parent)
        var left: [String] = []
        for entry in directoryEntries(locks) where !entry.isDirectory && entry.name.allSatisfy(\.isLockName) {
            let path = locks + "/" + entry.name
            let fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0 else { continue }
            defer { close(fd) }
            // Taken: its supervisor lives (this one's own included: a lock is held by the
            // open file, not the process).
            guard flock(fd, LOCK_EX | LOCK_NB) == 0, isLinked(fd, at: path) else { continue }
            let remaining = directories(of: entry.name, under: parent).filter { directory in
                RunDirectory.remove(path: directory)
                return access(directory, F_OK) == 0
            }
            if remaining.isEmpty { unlink(path) } else { left += remaining }
        }
        return left
    }

    /// At shutdown, once the kept directories are removed: gives up each claim under which
    /// no directory is left (one that is, the next start clears), and closes the locks no
    /// claim is left on.
    static func release() {
        state.withLock { state in
            for (parent, id) in state.claims where directories(of: id, under: parent).isEmpty {
                unlink(locks(under: parent) + "/" + id)
                state.claims[parent] = nil
            }
            let claimed = Set(state.claims.values)
            for lock in state.locks where !claimed.contains(lock.id) { close(lock.fd) }
            state.locks.removeAll { !claimed.contains($0.id) }
            // Linking from a name of its own claim, which may just have been removed.
            for index in state.locks.indices {
                if let parent = state.claims.first(where: { $0.value == state.locks[index].id })?.key {
                    state.locks[index].path = locks(under: parent) + "/" + state.locks[index].id
                }
            }
        }
    }

    private static func directories(of id: String, under parent: String) -> [String] {
        directoryEntries(parent).filter { $0.name.hasPrefix("run-\(id)-") }.map { parent + "/" + $0.name }
    }
}

extension Character {
    /// The characters of `<pid>x<hex>`.
    fileprivate var isLockName: Bool { isHexDigit || self == "x" }
}

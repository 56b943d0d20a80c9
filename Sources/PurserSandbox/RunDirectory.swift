import Glibc
import Logging
import Synchronization

/// A run's private working directory: fresh or emptied (mode 0700) before the run and
/// emptied afterwards, whatever the worker left in it. Removal never follows a symlink the
/// worker made.
///
/// Emptied directories are kept for later runs under the same parent, up to `poolLimit`
/// of them (no more than the runs that were at once), and removed at shutdown
/// (`Janitor.shutDown`). Making and removing a directory per run churns inodes, and on
/// ext4 without a journal each new inode skips past every one freed in the last minutes:
/// a mkdir took about 0.25 ms in a 2,000-routine swarm, an eighth of the supervisor's time
/// a routine.
public struct RunDirectory: Sendable {
    public let path: String
    private let parent: String

    public init(parent: String) throws(SandboxError) {
        self.parent = parent
        while let reused = Self.pool.withLock({ $0[parent]?.popLast() }) {
            // Still as it was left: a directory of the supervisor's, 0700, not something
            // put in its place since.
            var status = stat()
            guard lstat(reused, &status) == 0, status.st_mode & S_IFMT == S_IFDIR, status.st_mode & 0o7777 == 0o700,
                status.st_uid == geteuid()
            else { continue }
            path = reused
            return
        }
        try syscall("mkdir \(parent)") { mkdir(parent, 0o700) == 0 || errno == EEXIST ? 0 : -1 }
        // Absolute: the worker starts inside it, where a relative HOME would point elsewhere.
        let absolute = realpath(parent, nil).map { resolved in
            defer { free(resolved) }
            return String(cString: resolved)
        } ?? parent
        // Named for this supervisor, so that what it leaves if it dies is found and removed.
        let owner = try RunDirectoryOwners.id(under: parent)
        var template = Array((absolute + "/run-\(owner)-XXXXXX").utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard made != nil else {
            throw SandboxError(code: .syscallFailed, errno: errno, message: "mkdtemp in \(parent)")
        }
        path = String(cString: template)
    }

    /// Empties the directory off the caller's path (see `Janitor`), once the run's processes
    /// are gone, for a later run; one handed to another user (the sandbox user's, where the
    /// worker had no /tmp of its own) is removed instead.
    public func removeLater() {
        Janitor.later {
            guard emptied() else { return remove() }
            let kept = Self.pool.withLock { pool -> Bool in
                guard pool[parent, default: []].count < Self.poolLimit else { return false }
                pool[parent, default: []].append(path)
                return true
            }
            if !kept { remove() }
        }
    }

    public func remove() {
        Self.remove(path: path)
    }

    /// Removes a run directory and everything in it, following no symlink.
    static func remove(path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if fd >= 0 { removeContents(of: fd, depth: 0) }
        if rmdir(path) != 0, case let code = errno, code != ENOENT {
            // Left for the next start's sweep; said, so that a filling disk has a cause.
            Logger(label: "purser.sandbox").warning(
                "run directory not removed", metadata: ["path": "\(path)", "error": "\(String(cString: strerror(code)))"])
        }
    }

    /// Whether the directory is still the supervisor's and now empty and mode 0700 again (a
    /// worker may have changed its mode).
    private func emptied() -> Bool {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return false }
        var status = stat()
        guard fstat(fd, &status) == 0, status.st_uid == geteuid(), fchmod(fd, 0o700) == 0 else {
            close(fd)
            return false
        }
        Self.removeContents(of: fd, depth: 0)
        return Self.isEmpty(path)
    }

    private static func isEmpty(_ path: String) -> Bool {
        guard let dir = opendir(path) else { return false }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in Array(raw.prefix(while: { $0 != 0 })) }
            if name != [0x2e] && name != [0x2e, 0x2e] { return false }
        }
        return true
    }

    /// Emptied directories by parent.
    private static let pool = Mutex<[String: [String]]>([:])
    private static var poolLimit: Int { 128 }

    /// At shutdown: removes the kept directories, and gives up this supervisor's claims.
    static func drainPool() {
        let kept = pool.withLock { pool in
            defer { pool = [:] }
            return pool.values.flatMap { $0 }
        }
        for path in kept { rmdir(path) }
        RunDirectoryOwners.release()
    }

    /// Past this depth a worker's nesting is left for the OS's tmp cleaner rather than
    /// risk the supervisor's stack.
    static let maxDepth = 512

    /// Empties the directory open at `fd` and closes it.
    private static func removeContents(of fd: Int32, depth: Int) {
        guard let dir = fdopendir(fd) else {
            close(fd)
            return
        }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name == "." || name == ".." { continue }
            if unlinkat(fd, name, 0) == 0 { continue }
            let child = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if child >= 0 {
                fchmod(child, 0o700)
                if depth < maxDepth { removeContents(of: child, depth: depth + 1) } else { close(child) }
            }
            unlinkat(fd, name, AT_REMOVEDIR)
        }
    }
}

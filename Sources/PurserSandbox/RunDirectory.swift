import Glibc

/// A run's private working directory: made fresh (mode 0700) and removed afterwards,
/// whatever the worker left in it. Removal never follows a symlink the worker made.
public struct RunDirectory: Sendable {
    public let path: String

    public init(parent: String) throws(SandboxError) {
        try syscall("mkdir \(parent)") { mkdir(parent, 0o700) == 0 || errno == EEXIST ? 0 : -1 }
        // Absolute: the worker starts inside it, where a relative HOME would point elsewhere.
        let absolute = realpath(parent, nil).map { resolved in
            defer { free(resolved) }
            return String(cString: resolved)
        } ?? parent
        var template = Array((absolute + "/run-XXXXXX").utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard made != nil else {
            throw SandboxError(code: .syscallFailed, errno: errno, message: "mkdtemp in \(parent)")
        }
        path = String(cString: template)
    }

    /// Removes the directory off the caller's path (see `Janitor`).
    public func removeLater() {
        Janitor.later { self.remove() }
    }

    public func remove() {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if fd >= 0 { Self.removeContents(of: fd, depth: 0) }
        rmdir(path)
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

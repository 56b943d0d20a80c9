import Glibc

/// The API's Unix socket at its path, made safely: bound in a directory of its own (0700),
/// made 0600, then renamed into place, so nobody else can connect in between; a stale
/// socket (no server answers on it) is replaced, a live one or anything that is not a
/// socket is left alone and refused.
struct UnixSocketPath: Sendable {
    let path: String
    /// Where the server binds before the socket is moved to `path`.
    let bindPath: String
    private let directory: String

    /// Checks `path` and makes the private directory beside it.
    init(path: String) throws(APIStartError) {
        let parent = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        // sockaddr_un holds 107 bytes and a NUL; the private path, where it is bound, is the longer.
        let longest = (parent.isEmpty ? "." : parent).utf8.count + "/.sock-XXXXXX/s".utf8.count
        guard max(longest, path.utf8.count) <= 107 else {
            throw APIStartError(
                "--socket: \(path) is too long for a Unix socket (\(path.utf8.count) bytes here; \(path.utf8.count - longest + 107) at most)",
                code: .pathTooLong)
        }
        try Self.checkReplaceable(path)
        var template = Array(((parent.isEmpty ? "." : parent) + "/.sock-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else {
            throw APIStartError("--socket: cannot make a directory beside \(path): \(String(cString: strerror(errno)))")
        }
        self.path = path
        directory = String(cString: made)
        bindPath = directory + "/s"
    }

    /// After the bind: 0600, moved into place, the private directory gone.
    func publish() throws(APIStartError) {
        defer { rmdir(directory) }
        guard chmod(bindPath, 0o600) == 0, rename(bindPath, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(bindPath)
            throw APIStartError("--socket: cannot put the socket at \(path): \(reason)")
        }
    }

    /// Removes the socket if it is still ours (another server may have replaced it).
    func remove(inode: ino_t) {
        var status = stat()
        if lstat(path, &status) == 0, status.st_ino == inode, status.st_mode & S_IFMT == S_IFSOCK { unlink(path) }
    }

    /// Gives up the private directory when the server never bound.
    func abandon() {
        unlink(bindPath)
        rmdir(directory)
    }

    private static func checkReplaceable(_ path: String) throws(APIStartError) {
        var status = stat()
        guard lstat(path, &status) == 0 else {
            if errno == ENOENT { return }
            throw APIStartError("--socket: \(path): \(String(cString: strerror(errno)))")
        }
        guard status.st_mode & S_IFMT == S_IFSOCK else {
            throw APIStartError("--socket: \(path) exists and is not a socket; not replacing it")
        }
        guard !answers(path) else { throw APIStartError("--socket: a server already listens on \(path)", code: .socketInUse) }
    }

    /// Whether something accepts connections on the socket (a refusal means it is stale).
    private static func answers(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in path.utf8.enumerated() where index < raw.count - 1 { raw[index] = byte }
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        // An interrupted connect may still connect: take it as live, and refuse rather than replace.
        return result == 0 || errno == EINTR
    }
}

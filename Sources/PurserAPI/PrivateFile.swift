import Glibc

/// A file that holds a secret (a token file) must be the caller's own and not readable by
/// group or others, as ssh asks of a key. Each caller words the problem for its own option.
public enum PrivateFile {
    public enum Problem: Sendable, Equatable {
        /// `stat` failed, with this errno.
        case unreadable(errno: Int32)
        case notOwn
        /// Group or others may read or write it; the file's permission bits.
        case open(mode: UInt32)
    }

    /// What is wrong with the file at `path`, nil when it is private.
    public static func problem(_ path: String) -> Problem? {
        var status = stat()
        guard stat(path, &status) == 0 else { return .unreadable(errno: errno) }
        guard status.st_uid == geteuid() else { return .notOwn }
        guard status.st_mode & 0o077 == 0 else { return .open(mode: UInt32(status.st_mode & 0o777)) }
        return nil
    }
}

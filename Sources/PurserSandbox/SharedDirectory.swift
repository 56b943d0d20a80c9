import Glibc

/// A host directory an untrusted worker may read (`--read-only DIR`), at the path the
/// sandbox binds it to. It is resolved before anything compares or binds it: written as
/// `/srv//proj`, `/srv/./proj/` or `/srv/x/../proj`, it is `/srv/proj`, so that what
/// must stay hidden in it is found there. A path that a symbolic link leads elsewhere is
/// refused rather than followed: the worker would see the directory at a path other than
/// the one given, and a link can be changed between the check and the bind.
public enum SharedDirectory {
    public struct Problem: Error, Sendable, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    /// `path` made canonical, or why it cannot be shared. `hidden` are the files and
    /// directories no worker may see: a directory inside one of them cannot be shared.
    public static func resolve(_ path: String, hiding hidden: [String]) throws(Problem) -> String {
        guard path.hasPrefix("/") else { throw Problem(message: "\(path): give an absolute directory") }
        let written = lexical(path)
        guard let real = realPath(path) else { throw Problem(message: "\(path): no such directory") }
        guard real == written else {
            throw Problem(message: "\(path): leads to \(real) through a symbolic link; give \(real) itself")
        }
        var info = stat()
        guard stat(real, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else { throw Problem(message: "\(path): not a directory") }
        guard real != "/" else { throw Problem(message: "\(path): give a directory other than /") }
        for reserved in Isolation.rootDirectories + ["/tmp", "/proc", "/dev", "/run"] where real.isWithin(reserved) {
            throw Problem(message: "\(path): under \(reserved), which the worker's root has already (or makes its own)")
        }
        for secret in hidden.compactMap(realPath) where real.isWithin(secret) {
            throw Problem(message: "\(path): inside \(secret), which is hidden from workers")
        }
        return real
    }

    /// The path with `//`, `.` and `..` taken away as written, without asking the filesystem.
    static func lexical(_ path: String) -> String {
        var parts: [Substring] = []
        for part in path.split(separator: "/") where part != "." {
            if part == ".." { _ = parts.popLast() } else { parts.append(part) }
        }
        return "/" + parts.joined(separator: "/")
    }

    static func realPath(_ path: String) -> String? {
        guard let real = realpath(path, nil) else { return nil }
        defer { free(real) }
        return String(cString: real)
    }
}

extension String {
    /// Whether this canonical path is `directory` or lies under it.
    func isWithin(_ directory: String) -> Bool {
        self == directory || hasPrefix(directory == "/" ? "/" : directory + "/")
    }
}

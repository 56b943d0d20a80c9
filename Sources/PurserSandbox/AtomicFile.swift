import Glibc

/// Writes `bytes` to `path` whole or not at all: into a new file beside it, synced, given
/// `mode`, then renamed over `path` and the directory synced. Readers see the old file or
/// the whole new one, never a part; writers racing for one path each rename a whole file.
public func writeFileAtomically(_ bytes: [UInt8], to path: String, mode: UInt32) throws(SandboxError) {
    let directory = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
    let temporary = path + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    let fd = try syscall("create \(temporary)") { open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600) }
    do throws(SandboxError) {
        defer { close(fd) }
        var offset = 0
        while offset < bytes.count {
            let written = try syscall("write \(temporary)") {
                bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            }
            offset += written
        }
        try syscall("chmod \(temporary)") { fchmod(fd, mode_t(mode)) }
        try syscall("fsync \(temporary)") { fsync(fd) }
        try syscall("rename \(temporary) to \(path)") { rename(temporary, path) }
    } catch {
        unlink(temporary)
        throw error
    }
    let directoryFD = try syscall("open \(directory)") { open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
    defer { close(directoryFD) }
    try syscall("fsync \(directory)") { fsync(directoryFD) }
}

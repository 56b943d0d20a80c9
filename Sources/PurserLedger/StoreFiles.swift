import CPurserStore
import Glibc

/// The SQLite store's three files (the database, its WAL and the WAL index), watched while
/// a connection has them open. SQLite goes on writing to files that were deleted or
/// replaced under it, and nobody could read what it wrote; a new start would then make a
/// new, empty store. So: a marker beside the store says one was made there, and no empty
/// store is made where the marker is; each commit first checks that the path still names
/// the files this connection opened; and a SIGBUS in SQLite's mapping of the WAL index
/// (see CPurserStore) fails the store instead of the process.
final class StoreFiles {
    let path: String
    /// Beside the store, hidden from `purser.db*`, so that deleting the store leaves it.
    let marker: String
    private let directory: String
    private let watched: [String]
    /// Device and inode of each watched file, from when it was first seen.
    private var identities: [(dev: UInt64, ino: UInt64)?]
    private var indexSlot: Int32 = -1
    /// Once set, every later call fails with it: the store is not touched again.
    private(set) var failure: LedgerError?

    /// Checks what can be checked before SQLite opens (and perhaps creates) the file.
    init(path: String) throws(LedgerError) {
        self.path = path
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { String(path[..<$0]) } ?? "."
        self.directory = directory.isEmpty ? "/" : directory
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        marker = (slash == nil ? "" : directory + "/") + "." + name + ".marker"
        watched = [path, path + "-wal", path + "-shm"]
        identities = [nil, nil, nil]
        guard let canonical = realpath(self.directory, nil) else {
            throw LedgerError(.invalid, "\(path): there is no directory \(self.directory)")
        }
        let index = String(cString: canonical) + "/" + name + "-shm"
        free(canonical)
        try refuseAnEmptyStoreInPlaceOfOne()
        for file in watched where access(file, F_OK) == 0 && access(file, W_OK) != 0 {
            throw LedgerError(.storeFailed, "cannot write \(file): \(describe(errno)); the store's files must be writable")
        }
        indexSlot = purser_store_watch(index)
        guard indexSlot >= 0 else {
            throw LedgerError(.storeFailed, "\(path): cannot guard the WAL index's mapping: \(describe(errno))")
        }
    }

    deinit {
        purser_store_forget(indexSlot)
    }

    private func refuseAnEmptyStoreInPlaceOfOne() throws(LedgerError) {
        var info = stat()
        if stat(path, &info) == 0 {
            guard info.st_mode & S_IFMT != S_IFDIR else { throw LedgerError(.invalid, "\(path) is a directory, not a store file") }
            guard info.st_size == 0, access(marker, F_OK) == 0 else { return }
            throw LedgerError(.storeFailed, "\(path) is empty, but \(marker) says a store was made there. " + Self.restore(marker))
        }
        guard errno == ENOENT, access(marker, F_OK) == 0 else { return }
        throw LedgerError(.storeFailed, "\(path) is missing, but \(marker) says a store was made there. " + Self.restore(marker))
    }

    static func restore(_ marker: String) -> String {
        "Restore the store (all of its files) from a backup, or remove \(marker) to start a new, empty ledger."
    }

    /// After SQLite has opened the store and written its header: the files' identities as
    /// they are now, and the marker, if none yet.
    func opened() throws(LedgerError) {
        try check()
        guard access(marker, F_OK) != 0 else { return }
        let fd = open(marker, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            if errno == EEXIST { return }
            throw LedgerError(.storeFailed, "cannot write the store's marker \(marker): \(describe(errno))")
        }
        defer { close(fd) }
        let text = """
            A Purser ledger store was made at \(path) on \(Self.now()).
            While this file is here, purser will not make a new, empty store in its place if the
            store goes missing. \(Self.restore(marker))

            """
        let written = text.utf8CString.withUnsafeBufferPointer { write(fd, $0.baseAddress, $0.count - 1) }
        guard written == text.utf8.count, fsync(fd) == 0 else {
            let error = errno
            unlink(marker)
            throw LedgerError(.storeFailed, "cannot write the store's marker \(marker): \(describe(error))")
        }
    }

    private static func now() -> String {
        var seconds = time(nil)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        var text = [CChar](repeating: 0, count: 32)
        strftime(&text, text.count, "%Y-%m-%d %H:%M:%S UTC", &parts)
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Before each commit: the path still names the files opened, and the WAL index's
    /// mapping never faulted. Three stat calls; a commit costs an fsync.
    func check() throws(LedgerError) {
        if let failure { throw failure }
        if purser_store_faults(indexSlot) > 0 {
            throw fail(LedgerError(
                .storeFailed,
                "\(path)-shm, the store's WAL index, could not be written or read where SQLite maps it (made immutable, "
                    + "truncated, or its file system failed); the store stops here. Make the file writable again (or free "
                    + "its file system) and start again: SQLite rebuilds the index from the WAL."))
        }
        for (index, file) in watched.enumerated() {
            var info = stat()
            let found = stat(file, &info) == 0 ? (dev: UInt64(info.st_dev), ino: UInt64(info.st_ino)) : nil
            guard let known = identities[index] else {
                identities[index] = found
                if let found, index == 2 { purser_store_identify(indexSlot, found.dev, found.ino) }
                continue
            }
            guard let found, found == known else {
                throw fail(LedgerError(
                    .storeFailed,
                    "the store \(path) was deleted or replaced while in use (\(file) "
                        + (found == nil ? "is gone" : "is another file now") + "); it stops here, and writes nothing more. "
                        + "What it held is lost unless it is restored from a backup; purser will not make a new, empty store "
                        + "in its place while \(marker) is there."))
            }
        }
    }

    /// Why writing failed, as far as the file system shows: no space left, or a store file
    /// that cannot be written (immutable, read-only). Nil if neither.
    func diagnosis() -> String? {
        var space = statvfs()
        if statvfs(directory, &space) == 0, space.f_bfree == 0 || (geteuid() != 0 && space.f_bavail == 0) {
            return describe(ENOSPC)
        }
        for file in watched where access(file, F_OK) == 0 && access(file, W_OK) != 0 {
            return "\(file) cannot be written (\(describe(errno)))"
        }
        return nil
    }

    /// Keeps the failure: the connection is not used again.
    private func fail(_ error: LedgerError) -> LedgerError {
        failure = error
        return error
    }
}

/// errno as words, with a full disk called that.
func describe(_ code: Int32) -> String {
    switch code {
    case ENOSPC: "disk full (no space left on the device)"
    case EDQUOT: "disk full (the quota is used up)"
    default: String(cString: strerror(code))
    }
}

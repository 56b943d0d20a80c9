import Glibc

/// What a host can offer its routines' holds, and whether memory is under pressure now.
public enum HostMemory {
    /// 80% of MemTotal: the rest is the system's and the supervisor's.
    public static func defaultOffer() -> Int64 {
        guard let total = meminfo("MemTotal") else { return 4 << 30 }
        return total / 5 * 4
    }

    /// `some avg10` of /proc/pressure/memory (percent of the last 10 s some task waited for
    /// memory); nil where the kernel has no PSI.
    public static func pressure() -> Double? {
        guard let text = read("/proc/pressure/memory") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("some ") {
            for field in line.split(separator: " ") where field.hasPrefix("avg10=") {
                return Double(field.dropFirst(6))
            }
        }
        return nil
    }

    /// A /proc/meminfo field, in bytes.
    static func meminfo(_ key: String) -> Int64? {
        guard let text = read("/proc/meminfo") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(key + ":") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            if parts.count >= 2, let kib = Int64(parts[1]) { return kib * 1024 }
        }
        return nil
    }

    private static func read(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 8192)
        var length = 0
        while length < buffer.count {
            let got = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + length, $0.count - length) }
            if got < 0, errno == EINTR { continue }
            guard got > 0 else { break }
            length += got
        }
        return String(decoding: buffer[..<length], as: UTF8.self)
    }
}

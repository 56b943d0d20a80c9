import CPurserCrypto
import Glibc

/// The SHA-256 of the whole file behind `fd`, read from offset 0 to the end with pread (the
/// fd's offset is neither used nor moved). Pair it with `SandboxProfile.executableFD` to run
/// exactly the file that was hashed.
public func sha256(fd: Int32) throws(SandboxError) -> [UInt8] {
    var digest = [UInt8](repeating: 0, count: 32)
    try syscall("sha256 of fd \(fd)") { digest.withUnsafeMutableBufferPointer { purser_sha256_fd(fd, $0.baseAddress) } }
    return digest
}

/// The SHA-256 of `bytes`, as lower-case hex.
public func sha256Hex(_ bytes: [UInt8]) -> String {
    var digest = [UInt8](repeating: 0, count: 32)
    let status = bytes.withUnsafeBytes { data in
        digest.withUnsafeMutableBufferPointer { purser_sha256(data.baseAddress, data.count, $0.baseAddress) }
    }
    // libcrypto fails only when it cannot allocate its context, and a cache key is no
    // place to carry that error: stop loudly rather than key on zeros.
    precondition(status == 0, "libcrypto's SHA-256 failed (errno \(errno))")
    return hexString(digest)
}

/// Lower-case hex, two digits a byte.
public func hexString(_ bytes: [UInt8]) -> String {
    bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
}

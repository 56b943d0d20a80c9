import Glibc

/// An error from the sandbox: which step failed and, for system calls, the errno.
public struct SandboxError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Storage: Hashable, Sendable {
            case executableNotFound, spawnFailed, syscallFailed, cgroupFailed, layerMissing
        }
        private let storage: Storage
        private init(_ storage: Storage) { self.storage = storage }

        public static let executableNotFound = Code(.executableNotFound)
        public static let spawnFailed = Code(.spawnFailed)
        public static let syscallFailed = Code(.syscallFailed)
        public static let cgroupFailed = Code(.cgroupFailed)
        /// The profile needs a layer this host lacks (see `SandboxLevel.plan`).
        public static let layerMissing = Code(.layerMissing)

        public var description: String { "\(storage)" }
    }

    public let code: Code
    public let errno: Int32?
    public let message: String

    public init(code: Code, errno: Int32? = nil, message: String) {
        self.code = code
        self.errno = errno
        self.message = message
    }

    public var description: String {
        guard let errno else { return message }
        return "\(message): \(String(cString: strerror(errno))) (errno \(errno))"
    }
}

/// The one wrapper every system call goes through: retries EINTR, throws with errno.
@discardableResult
@inline(__always)
func syscall<T: FixedWidthInteger>(
    _ name: @autoclosure () -> String, _ body: () -> T
) throws(SandboxError) -> T {
    while true {
        let result = body()
        if result != -1 { return result }
        let error = Glibc.errno
        if error == EINTR { continue }
        throw SandboxError(code: .syscallFailed, errno: error, message: name())
    }
}

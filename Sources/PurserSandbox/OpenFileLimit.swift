import Glibc
import Synchronization

/// The supervisor's own open-file limit, raised at start from the soft limit to the hard
/// one, as Go's runtime does: a supervisor holds pipes, pidfds, groups and proxies for each
/// worker, and a service manager's default soft limit (1,024) is a few hundred workers. Its
/// workers get their own limit (`ResourceLimits.openFiles`) whatever the supervisor's.
public enum OpenFileLimit {
    public struct Raised: Sendable, Equatable {
        public var before: UInt64
        public var now: UInt64
    }

    private static let raised = Mutex<Raised?>(nil)

    /// Raises the soft limit to the hard one, once; what it was and is. Nil when the limits
    /// cannot be read; a raise the kernel refuses leaves the limit as it was.
    @discardableResult
    public static func raise() -> Raised? {
        raised.withLock { raised in
            if let raised { return raised }
            var limit = rlimit()
            guard getrlimit(resource, &limit) == 0 else { return nil }
            let before = UInt64(limit.rlim_cur)
            if limit.rlim_cur < limit.rlim_max {
                var higher = limit
                higher.rlim_cur = limit.rlim_max
                if setrlimit(resource, &higher) == 0 { limit = higher }
            }
            raised = Raised(before: before, now: UInt64(limit.rlim_cur))
            return raised
        }
    }

    /// What `raise()` found and made, if it ran.
    public static var atStart: Raised? { raised.withLock { $0 } }

    private static let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
}

import Glibc

/// Wall-clock milliseconds since the Unix epoch: the clock of every deadline on the wire
/// (`Budget.deadlineMs`), and of every expiry and window measured against one.
public func unixMilliseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
}

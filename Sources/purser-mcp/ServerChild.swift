import Glibc

/// The MCP server: a child with its stdin and stdout on pipes, its stderr the bridge's (so
/// that it lands in the run's stderr tail).
final class ServerChild {
    let pid: pid_t
    let input: Int32
    let output: Int32
    private var status: Int32?
    private var inputClosed = false

    struct SpawnError: Error, CustomStringConvertible {
        let description: String
    }

    /// With `fd`, the file open there runs (through /proc, which every sandbox level has, and
    /// with the fd kept open, as a `#!` script's interpreter opens it again); `command[0]` is
    /// then only its argv[0].
    init(_ command: [String], fd: Int32?) throws(SpawnError) {
        var toChild: [Int32] = [0, 0]
        var fromChild: [Int32] = [0, 0]
        guard pipe(&toChild) == 0, pipe(&fromChild) == 0 else {
            throw SpawnError(description: "pipe: \(String(cString: strerror(errno)))")
        }
        // Only the ends dup'd onto 0 and 1 go to the server.
        for fd in toChild + fromChild { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, toChild[0], 0)
        posix_spawn_file_actions_adddup2(&actions, fromChild[1], 1)
        let argv: [UnsafeMutablePointer<CChar>?] = command.map { strdup($0) } + [nil]
        defer { for argument in argv { free(argument) } }
        var pid: pid_t = 0
        let result = fd.map { posix_spawn(&pid, "/proc/self/fd/\($0)", &actions, nil, argv, environ) }
            ?? posix_spawnp(&pid, command[0], &actions, nil, argv, environ)
        close(toChild[0])
        close(fromChild[1])
        guard result == 0 else {
            close(toChild[1])
            close(fromChild[0])
            let how = fd.map { " (its pinned file, fd \($0), through /proc/self/fd)" } ?? ""
            throw SpawnError(description: "\(command[0])\(how): \(String(cString: strerror(result)))")
        }
        self.pid = pid
        input = toChild[1]
        output = fromChild[0]
    }

    /// How it ended (waits for it: call `end` first, or know that it is ending).
    func waitStatus() -> String {
        if status == nil {
            var raw: Int32 = 0
            var reaped: pid_t
            repeat { reaped = waitpid(pid, &raw, 0) } while reaped < 0 && errno == EINTR
            status = reaped == pid ? raw : -1
        }
        guard let status, status >= 0 else { return "status unknown" }
        return status & 0x7f == 0 ? "status \((status >> 8) & 0xff)" : "signal \(status & 0x7f)"
    }

    /// Closes its stdin and gives it a second to exit, then kills it. Safe to call again.
    func end() {
        if !inputClosed {
            close(input)
            inputClosed = true
        }
        guard status == nil else { return }
        for _ in 0..<100 {
            var raw: Int32 = 0
            if waitpid(pid, &raw, WNOHANG) == pid {
                status = raw
                return
            }
            usleep(10_000)
        }
        kill(pid, SIGKILL)
        _ = waitStatus()
    }
}

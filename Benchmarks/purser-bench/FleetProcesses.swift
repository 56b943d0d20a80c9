@preconcurrency import Glibc
import Foundation
import PurserLedger

// The fleet benchmark's processes: `purser` children started with posix_spawn (not
// Foundation's Process, which reaps its children itself), so that a child's own CPU can be
// read from /proc/PID/stat after it exits and before it is reaped; and the CPU of a
// PostgreSQL server's processes, which are not this process's children.

/// A `purser` child whose output goes to a file.
struct BenchChild {
    let pid: pid_t
    let log: String

    /// Starts `path arguments` with `environment`, stdin from /dev/null, stdout and stderr to `log`.
    static func start(_ path: String, _ arguments: [String], environment: [String: String], log: String) throws -> BenchChild {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, path, &actions, nil, argv, envp)
        guard status == 0 else { throw BenchError(code: "spawn", "\(path): posix_spawn: \(String(cString: strerror(status)))") }
        return BenchChild(pid: pid, log: log)
    }

    /// Its CPU so far: its own threads', and its reaped children's (its workers').
    var cpu: ProcessCPU? { ProcessCPU(pid: pid) }

    /// Waits for it to exit; its exit status and its CPU, read while it is a zombie.
    func wait() throws -> (status: Int32, cpu: ProcessCPU) {
        var info = siginfo_t()
        while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) != 0 {
            guard errno == EINTR else { throw BenchError(code: "wait", "waitid \(pid): \(String(cString: strerror(errno)))") }
        }
        let cpu = ProcessCPU(pid: pid) ?? ProcessCPU(own: 0, children: 0)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { throw BenchError(code: "wait", "waitpid \(pid): \(String(cString: strerror(errno)))") }
        }
        let exited = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (exited, cpu)
    }

    var output: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
}

/// A process's CPU seconds from /proc/PID/stat: its own (user + system, every thread), and
/// its waited-for children's.
struct ProcessCPU {
    var own: Double
    var children: Double

    init(own: Double, children: Double) {
        self.own = own
        self.children = children
    }

    init?(pid: pid_t) {
        guard let fields = Self.fields(pid) else { return nil }
        let tick = Double(sysconf(Int32(_SC_CLK_TCK)))
        own = (Double(fields[11]) + Double(fields[12])) / tick
        children = (Double(fields[13]) + Double(fields[14])) / tick
    }

    /// The fields after the command's closing parenthesis (state is [0], ppid [1], utime [11]).
    static func fields(_ pid: pid_t) -> [Int]? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 15 else { return nil }
        return fields.map { Int($0) ?? 0 }
    }
}

/// CPU seconds of a PostgreSQL server so far: the postmaster's own and its exited
/// backends' (its reaped children), plus every live child's own.
func postgresCPU(postmaster: pid_t) -> Double {
    guard let master = ProcessCPU(pid: postmaster) else { return 0 }
    var total = master.own + master.children
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    for entry in entries {
        guard let pid = pid_t(entry), let fields = ProcessCPU.fields(pid), fields[1] == Int(postmaster),
            let child = ProcessCPU(pid: pid)
        else { continue }
        total += child.own
    }
    return total
}

/// A column's text (PurserLedger keeps its accessor internal).
func benchText(_ value: SQLValue?) -> String? {
    guard case .text(let text) = value else { return nil }
    return text
}

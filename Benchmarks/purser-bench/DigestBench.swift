import Foundation
import PurserSandbox

// SHA-256 of a file as a plugin pin takes it (`sha256(fd:)`), next to coreutils' `sha256sum`
// on the same files in the same run. sha256sum's figures include its process start.

/// User plus system CPU seconds of this process (`RUSAGE_SELF`) or of its reaped children.
func cpuSeconds(_ who: Int32) -> Double {
    var usage = rusage()
    getrusage(who, &usage)
    func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
    return seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

func writeRandomFile(_ path: String, bytes: Int) {
    var generator = SystemRandomNumberGenerator()
    var data = Data(count: bytes)
    data.withUnsafeMutableBytes { raw in
        let words = raw.bindMemory(to: UInt64.self)
        for index in words.indices { words[index] = generator.next() }
    }
    precondition(FileManager.default.createFile(atPath: path, contents: data), "cannot write \(path)")
}

func sha256sum(_ path: String) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
    process.arguments = [path]
    let output = Pipe()
    process.standardOutput = output
    try process.run()
    let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    precondition(process.terminationStatus == 0, "sha256sum \(path) failed")
    return String(text.prefix(64))
}

/// Hashes `path` `times` times with `hash`; prints the rate and the CPU each hash took.
func showDigestRate(_ label: String, bytes: Int, times: Int, cpu who: Int32, _ hash: () throws -> String) rethrows
    -> String
{
    var digest = ""
    let cpuBefore = cpuSeconds(who)
    let start = ContinuousClock.now
    for _ in 0..<times { digest = try hash() }
    let elapsed = ContinuousClock.now - start
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    let cpu = cpuSeconds(who) - cpuBefore
    let rate = Double(bytes) * Double(times) / seconds / 1e6
    print(
        label.padding(toLength: 36, withPad: " ", startingAt: 0)
            + String(format: "%8.0f MB/s   %8.2f ms CPU a hash   (%d hashes)", rate, cpu * 1000 / Double(times), times))
    return digest
}

func digestBenchmark() throws {
    let directory = NSTemporaryDirectory() + "purser-bench-digest-\(getpid())"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    for (name, bytes, times) in [("1 MiB", 1 << 20, 200), ("100 MiB", 100 << 20, 4)] {
        let path = directory + "/" + name.replacingOccurrences(of: " ", with: "")
        writeRandomFile(path, bytes: bytes)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        precondition(fd >= 0, "cannot open \(path)")
        defer { close(fd) }
        _ = try sha256(fd: fd)  // the page cache holds the file for both
        let ours = try showDigestRate("sha256(fd:) \(name)", bytes: bytes, times: times, cpu: RUSAGE_SELF.rawValue) {
            hexString(try sha256(fd: fd))
        }
        let theirs = try showDigestRate("sha256sum \(name)", bytes: bytes, times: times, cpu: RUSAGE_CHILDREN.rawValue) {
            try sha256sum(path)
        }
        precondition(ours == theirs, "\(name): sha256(fd:) gave \(ours), sha256sum \(theirs)")
    }
}

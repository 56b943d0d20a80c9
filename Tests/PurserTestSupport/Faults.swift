import Foundation
import Glibc
import PurserHarness

/// A small tmpfs of the test's own, for a disk that fills: mounted on a fresh directory,
/// unmounted when released. Needs root; nil where mounting is not allowed.
public final class Tmpfs: @unchecked Sendable {
    public let path: String

    public init?(megabytes: Int) {
        path = Fixtures.temporaryHome()
        guard geteuid() == 0,
            (try? runCommandBlocking("/bin/mount", ["-t", "tmpfs", "-o", "size=\(megabytes)m,mode=0755", "tmpfs", path]))?.status == 0
        else { return nil }
    }

    /// Whether this host lets the tests mount one (root, and mounting allowed).
    public static let available: Bool = Tmpfs(megabytes: 1) != nil

    deinit {
        // Lazily: a worker or store still holding a file must not keep the test's tmpfs.
        _ = try? runCommandBlocking("/bin/umount", ["-l", path])
    }

    /// Writes zeros beside the store until the file system refuses even a byte more.
    public func fill() {
        let fd = open(path + "/filler", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { return }
        defer { close(fd) }
        for size in [64 << 10, 4096, 1] {
            let block = [UInt8](repeating: 0, count: size)
            while block.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) > 0 {}
        }
    }
}

/// Whether files in the tests' temporary directory can be made immutable (root, and a file
/// system with the attribute).
public let immutableFilesAvailable: Bool = {
    let path = Fixtures.temporaryHome() + "/probe"
    guard FileManager.default.createFile(atPath: path, contents: nil), setImmutable(path, true) else { return false }
    return setImmutable(path, false)
}()

/// Sets or clears a file's immutable attribute; false where the file system does not have it.
@discardableResult
public func setImmutable(_ path: String, _ immutable: Bool) -> Bool {
    ((try? runCommandBlocking("/usr/bin/chattr", [immutable ? "+i" : "-i", path]))?.status ?? 1) == 0
}

/// A command left to run while the test does something to it; `finish` waits for its end.
public final class BackgroundCommand: @unchecked Sendable {
    private let process = Process()
    private let group = DispatchGroup()
    private var out = Data()
    private var err = Data()

    public init(_ executable: String, _ arguments: [String], environment: [String: String]) throws {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = environment
        let outPipe = Pipe()
        let errPipe = Pipe()
        process.standardOutput = outPipe
        process.standardError = errPipe
        process.standardInput = FileHandle.nullDevice
        try process.run()
        for (pipe, isOut) in [(outPipe, true), (errPipe, false)] {
            group.enter()
            // Not on Dispatch's threads (see `runCommandBlocking`).
            Thread {
                let data = pipe.fileHandleForReading.readDataToEndOfFile()
                if isOut { self.out = data } else { self.err = data }
                self.group.leave()
            }.start()
        }
    }

    public var pid: Int32 { process.processIdentifier }

    public func finish() async -> CommandResult {
        await offPool { self.finishBlocking() }
    }

    private func finishBlocking() -> CommandResult {
        group.wait()
        process.waitUntilExit()
        // A death by signal is 128 + the signal, as a shell says it: never a clean exit code.
        let status = process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
        return CommandResult(
            status: status, stdout: String(decoding: out, as: UTF8.self), stderr: String(decoding: err, as: UTF8.self))
    }

    /// Waits until `path` exists (true), or the command has ended without it (false). No
    /// deadline of its own: the suite's time limit is the bound.
    public func waitForFile(_ path: String) async -> Bool {
        while access(path, F_OK) != 0 {
            guard process.isRunning else { return access(path, F_OK) == 0 }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return true
    }
}

import Foundation
import PurserProtocol
import PurserRuntime
import PurserSandbox
import PurserTestSupport
import Testing

/// Opens a file read-only (close-on-exec), as a plugin registry would before hashing it.
private func openReadOnly(_ path: String) throws -> Int32 {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    return fd
}

/// A copy of `source` at `destination`, executable.
private func copyExecutable(_ source: String, to destination: String) throws {
    try FileManager.default.copyItem(atPath: source, toPath: destination)
    #expect(chmod(destination, 0o755) == 0)
}

private func hex(_ bytes: [UInt8]) -> String {
    bytes.map { String(format: "%02x", $0) }.joined()
}

@Suite("Executing the very file that was opened (and hashed)", .timeLimit(.minutes(1)))
struct SpawnByFDTests {
    @Test func aBinaryRunByFDSeesOnlyStdio() async throws {
        let fd = try openReadOnly(Fixtures.product("hostile"))
        defer { close(fd) }
        var request = Fixtures.hostile("fds")
        // The path is not looked up when there is an fd: it only names the plugin.
        request.executable = "/nonexistent/hostile-by-fd"
        request.executableFD = fd
        let report = try await run(request)
        #expect(report.verdict == .ok, "\(report.message ?? "") \(report.stderrTail)")
        #expect(report.output == [0, 1, 2])
        #expect(report.plugin?.pluginName == "hostile")
        // The caller's fd is left as it was.
        #expect(fcntl(fd, F_GETFD) == FD_CLOEXEC)
    }

    @Test func keepingTheFDHandsItToTheWorker() async throws {
        let fd = try openReadOnly(Fixtures.product("hostile"))
        defer { close(fd) }
        var request = Fixtures.hostile("fds")
        request.executableFD = fd
        request.keepExecutableFD = true
        let report = try await run(request)
        #expect(report.verdict == .ok, "\(report.message ?? "") \(report.stderrTail)")
        #expect(report.output == [0, 1, 2, .number(JSONNumber(Int64(fd)))])
        #expect(fcntl(fd, F_GETFD) == FD_CLOEXEC, "the child, not the caller, clears FD_CLOEXEC")
    }

    @Test func passedFilesAreThreeAndUpAndTheExecutableFDMovesAboveThem() async throws {
        let fd = try openReadOnly(Fixtures.product("hostile"))
        defer { close(fd) }
        let first = try openReadOnly("/etc/hostname")
        let second = try openReadOnly("/etc/passwd")
        defer { close(first); close(second) }
        for untrusted in [false, true] {
            var request = Fixtures.hostile("fds")
            request.executableFD = fd
            request.keepExecutableFD = true
            request.passedFDs = [second, first]
            if untrusted { request.sandbox = .untrusted } else { request.sandbox = .trusted }
            request.allowDegraded = true
            let report = try await run(request)
            #expect(report.verdict == .ok, "\(report.message ?? "") \(report.stderrTail)")
            let fds = report.output?.arrayValue?.compactMap { $0.numberValue?.int64 } ?? []
            #expect(Array(fds.prefix(5)) == [0, 1, 2, 3, 4] && fds.count == 6 && fds[5] >= 5, "\(report.output ?? .null)")
        }
        var binary = Fixtures.hostile("fds")
        binary.executableFD = fd
        binary.passedFDs = [first]
        let report = try await run(binary)
        #expect(report.output == [0, 1, 2, 3], "the binary's own fd is not kept: \(report.output ?? .null)")
    }

    @Test func aScriptRunByFDWithTheFDKept() async throws {
        let script = Fixtures.file("Plugins/shout/shout.py")
        let fd = try openReadOnly(script)
        defer { close(fd) }
        var request = Fixtures.run(script, input: ["text": "quiet please"])
        request.executableFD = fd
        request.keepExecutableFD = true
        let report = try await run(request)
        #expect(report.verdict == .ok, "\(report.message ?? "") \(report.stderrTail)")
        #expect(report.output == ["text": "QUIET PLEASE"])
        #expect(report.plugin?.pluginName == "shout")
    }

    @Test func aScriptWhoseFDIsClosedAtExecCannotStart() async throws {
        // The interpreter would be handed /dev/fd/N of a closed fd: the kernel refuses the exec.
        let script = Fixtures.file("Plugins/shout/shout.py")
        let fd = try openReadOnly(script)
        defer { close(fd) }
        var request = Fixtures.run(script, input: ["text": "x"])
        request.executableFD = fd
        let report = try await run(request)
        #expect(report.verdict == .startupFailed)
        #expect(report.pid == nil)
        #expect(report.message?.contains("exec") == true, "\(report.message ?? "")")
    }

    @Test func theOpenedFileRunsEvenAfterThePathIsReplaced() async throws {
        let directory = Fixtures.temporaryHome()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let plugin = directory + "/plugin"
        try copyExecutable(try await offPool { try Fixtures.cworker() }, to: plugin)
        let fd = try openReadOnly(plugin)
        defer { close(fd) }
        let pinned = try sha256(fd: fd)

        // Swap another plugin in under the same name, as an attacker with write access would.
        try copyExecutable(Fixtures.product("hostile"), to: directory + "/replacement")
        #expect(rename(directory + "/replacement", plugin) == 0)

        var request = Fixtures.run(plugin, input: ["k": "v"])
        request.executableFD = fd
        let byFD = try await run(request)
        #expect(byFD.verdict == .ok, "\(byFD.message ?? "") \(byFD.stderrTail)")
        #expect(byFD.plugin?.pluginName == "cworker")
        #expect(byFD.output == ["k": "v"])
        // What ran is what was hashed, and not what the path names now.
        #expect(try sha256(fd: fd) == pinned)
        let now = try openReadOnly(plugin)
        defer { close(now) }
        #expect(try sha256(fd: now) != pinned)

        // By path, the same request runs the replacement.
        let byPath = try await run(Fixtures.run(plugin, input: ["k": "v"]))
        #expect(byPath.verdict == .ok)
        #expect(byPath.plugin?.pluginName == "hostile")
    }

    @Test func aBadFDIsRefusedBeforeSpawning() async throws {
        var request = Fixtures.hostile("echo")
        request.executableFD = -1
        await #expect(throws: RuntimeError.self) { try await Runtime(home: Fixtures.temporaryHome()).exec(request) }

        let profile = SandboxProfile(executable: "/nonexistent", executableFD: 1_000_000)
        #expect(throws: SandboxError.self) { try Spawner.spawn(profile) }
    }
}

@Suite("SHA-256 of an fd")
struct SHA256Tests {
    /// FIPS 180-4 / NIST example vectors, plus the block-boundary lengths.
    static let vectors: [(String, [UInt8])] = [
        ("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", []),
        ("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", Array("abc".utf8)),
        (
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
            Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
        ),
        (
            "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1",
            Array("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu".utf8)
        ),
        ("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0", [UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)),
        ("ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb", Array("a".utf8)),
        ("9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318", [UInt8](repeating: UInt8(ascii: "a"), count: 55)),
        ("b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a", [UInt8](repeating: UInt8(ascii: "a"), count: 56)),
        ("ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb", [UInt8](repeating: UInt8(ascii: "a"), count: 64)),
    ]

    @Test func knownVectors() throws {
        let directory = Fixtures.temporaryHome()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for (index, (expected, content)) in Self.vectors.enumerated() {
            let path = directory + "/v\(index)"
            #expect(FileManager.default.createFile(atPath: path, contents: Data(content)))
            let fd = try openReadOnly(path)
            defer { close(fd) }
            // The fd's offset is neither used nor moved.
            _ = lseek(fd, off_t(content.count / 2), SEEK_SET)
            #expect(hex(try sha256(fd: fd)) == expected, "\(content.count) bytes")
            #expect(lseek(fd, 0, SEEK_CUR) == off_t(content.count / 2))
        }
    }

    @Test func aBadFDThrowsWithItsErrno() {
        #expect(throws: SandboxError(code: .syscallFailed, errno: EBADF, message: "sha256 of fd -1")) {
            try sha256(fd: -1)
        }
    }
}

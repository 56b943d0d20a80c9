import Foundation
import PurserProtocol
import PurserTestSupport
import Testing

/// mcp-server-git (PyPI, installed by .ci/setup) on a repository shared read-only: it reads
/// the repository, cannot write it, and cannot read anything else.
@Suite("mcp-server-git on a read-only repository", .timeLimit(.minutes(3)))
struct GitServerTests {
    let home = Fixtures.temporaryHome()
    static let server = "/opt/purser-mcp/bin/mcp-server-git"

    /// A repository outside /tmp (the sandbox has a /tmp of its own), one commit, one staged change.
    func repository() async throws -> String {
        let path = "/var/tmp/purser-git-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        try "hello\n".write(toFile: path + "/a.txt", atomically: true, encoding: .utf8)
        for arguments in [["init", "-q"], ["add", "a.txt"], ["-c", "user.name=a", "-c", "user.email=a@b", "commit", "-qm", "first"]] {
            let done = try await runCommand("/usr/bin/git", ["-C", path] + arguments)
            try #require(done.status == 0, "git \(arguments): \(done.stderr)")
        }
        try "hello\nagain\n".write(toFile: path + "/a.txt", atomically: true, encoding: .utf8)
        _ = try await runCommand("/usr/bin/git", ["-C", path, "add", "a.txt"])
        return path
    }

    /// The tool's report. git inside runs as the sandbox's user, so every repository (root's)
    /// is named safe, through the variables the call passes: what keeps a path out is the
    /// sandbox alone.
    func call(_ tool: String, _ input: JSONValue, repo: String) async throws -> JSONValue {
        let ran = try await runPurser([
            "exec", "git.\(tool)", "--input", input.serialized(), "--read-only", repo, "--env", "GIT_CONFIG_COUNT=1",
            "--env", "GIT_CONFIG_KEY_0=safe.directory", "--env", "GIT_CONFIG_VALUE_0=*", "--json",
        ], home: home)
        return try JSONParser.parse(Array(ran.stdout.utf8))
    }

    @Test("git_log, git_status and git_diff read it; git_commit is refused by the read-only mount; a path outside is not there")
    func readOnlyRepository() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.server), "run .ci/setup")
        let repo = try await repository()
        defer { try? FileManager.default.removeItem(atPath: repo) }
        let added = try await runPurser(["mcp", "add", "git", "--", Self.server], home: home)
        try #require(added.status == 0, "\(added.stderr)")
        func text(_ report: JSONValue) -> String { report["output"]?["content"]?.arrayValue?.first?["text"]?.stringValue ?? "" }

        let log = try await call("git_log", ["repo_path": .string(repo)], repo: repo)
        #expect(log["verdict"] == "ok" && text(log).contains("Message: first"), "\(log)")
        let status = try await call("git_status", ["repo_path": .string(repo)], repo: repo)
        #expect(status["verdict"] == "ok" && text(status).contains("modified:   a.txt"), "\(status)")
        let diff = try await call("git_diff_staged", ["repo_path": .string(repo)], repo: repo)
        #expect(diff["verdict"] == "ok" && text(diff).contains("+again"), "\(diff)")

        let commit = try await call("git_commit", ["repo_path": .string(repo), "message": "from the sandbox"], repo: repo)
        #expect(commit["verdict"] == "error", "\(commit)")
        #expect(commit["error"]?["message"]?.stringValue?.contains("Read-only file system") == true, "\(commit)")
        let head = try await runCommand("/usr/bin/git", ["-C", repo, "log", "--oneline"])
        #expect(head.stdout.split(separator: "\n").count == 1, "nothing was committed: \(head.stdout)")

        let outside = try await call("git_status", ["repo_path": .string(Fixtures.file(""))], repo: repo)
        #expect(outside["verdict"] == "error", "the package's own repository is not in the sandbox: \(outside)")
    }
}

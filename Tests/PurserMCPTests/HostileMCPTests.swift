import Foundation
import PurserProtocol
import PurserTestSupport
import Testing

/// MCP servers that misbehave on purpose (Tests/Fixtures/mcp-hostile/server.py): each gets
/// the verdict it earned, and leaves no process behind.
@Suite("Hostile MCP servers", .timeLimit(.minutes(3)))
struct HostileMCPTests {
    let home = Fixtures.temporaryHome()
    let server = Fixtures.file("Tests/Fixtures/mcp-hostile/server.py")

    func purser(_ arguments: [String]) async throws -> CommandResult { try await runPurser(arguments, home: home) }

    /// Registers the server in `mode`, runs its tool, and returns the report.
    func call(_ mode: String, tool: String = "go", limits: [String] = []) async throws -> JSONValue {
        let added = try await purser(["mcp", "add", mode, "--", server, mode])
        try #require(added.status == 0, "\(added.stderr)")
        let ran = try await purser(["exec", "\(mode).\(tool)", "--input", "{}", "--json"] + limits)
        return try JSONParser.parse(Array(ran.stdout.utf8))
    }

    /// The server's processes (run through their pinned fd: `python3 /proc/self/fd/3 MODE`) and the fork mode's grandchild.
    func leftovers(_ mode: String) -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { pid -> String? in
            guard Int(pid) != nil, let raw = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return nil }
            let command = String(decoding: raw.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
            return command.contains("/proc/self/fd/3 \(mode) ") || command.hasPrefix("sleep 3597") ? command : nil
        }
    }

    @Test("one that never answers initialize, and one that lies in tools/list, are refused at mcp add, with the reason")
    func refusedAtAdd() async throws {
        try "mcp: { startupTimeout: 2s }\n".write(toFile: home + "/quick.yaml", atomically: true, encoding: .utf8)
        let silent = try await purser(["mcp", "add", "silent", "--manifest", home + "/quick.yaml", "--", server, "silent"])
        #expect(silent.status == 2 && silent.stderr.contains("did not answer initialize within 2000 ms"), "\(silent.stderr)")
        let liar = try await purser(["mcp", "add", "liar", "--", server, "liar"])
        #expect(liar.status == 2 && liar.stderr.contains(#"a tool's name is not 1-128 of"#) && liar.stderr.contains("bad name!"), "\(liar.stderr)")
        #expect(try await purser(["plugin", "list"]).stdout.contains("no plugins registered"))
        #expect(leftovers("silent").isEmpty && leftovers("liar").isEmpty)
    }

    @Test("a memory bomb is memory_limit, within its hold")
    func memoryBomb() async throws {
        let report = try await call("bomb", limits: ["--memory", "128MiB"])
        #expect(report["verdict"] == "memory_limit", "\(report)")
        #expect((report["usage"]?["memoryPeakBytes"]?.numberValue?.int64 ?? .max) <= 128 << 20)
        #expect(leftovers("bomb").isEmpty)
    }

    @Test("a flood of notifications is dropped past the run's budget for text, and the call still answers")
    func flood() async throws {
        let report = try await call("flood", limits: ["--time", "120s"])
        #expect(report["verdict"] == "ok", "\(report["message"] ?? .null)")
        #expect((report["droppedMessages"]?.numberValue?.int64 ?? 0) > 100_000, "\(report["droppedMessages"] ?? .null)")
        #expect(leftovers("flood").isEmpty)
    }

    @Test("a line past the limit fails the call with the reason")
    func longLine() async throws {
        let report = try await call("longline")
        #expect(report["verdict"] == "error" && report["error"]?["message"]?.stringValue?.contains("past the limit") == true, "\(report)")
        #expect(leftovers("longline").isEmpty)
    }

    @Test("a tool it listed and then disowns is an error with the server's words; a grandchild it leaves is ended with the run")
    func disownsAndForks() async throws {
        let ghost = try await call("vanish", tool: "ghost")
        #expect(ghost["verdict"] == "error" && ghost["error"]?["message"]?.stringValue?.contains("unknown tool: ghost") == true, "\(ghost)")
        let forked = try await call("fork")
        #expect(forked["verdict"] == "ok", "\(forked)")
        #expect(leftovers("fork").isEmpty, "\(leftovers("fork"))")
    }
}

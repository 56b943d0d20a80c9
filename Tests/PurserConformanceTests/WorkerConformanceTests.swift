import Foundation
import PurserConformance
import PurserProtocol
import PurserTestSupport
import Testing

/// Every example plugin, and the C workers meant to be correct, pass every check.
/// One worker at a time: each check's cleanup goes to the janitor, which other suites'
/// tests wait for, and a burst of hundreds of sandboxed workers made them wait minutes.
@Suite("Conformance of correct workers", .serialized, .timeLimit(.minutes(3)))
struct CorrectWorkerTests {
    /// Each plugin in Plugins/, as built (Swift) or as it is (a script), with an input it can use.
    static let plugins: [String: (path: String, input: JSONValue?)] = [
        "echo": (Fixtures.product("echo"), nil),
        "wordcount": (Fixtures.product("wordcount"), nil),
        "fetch": (Fixtures.product("fetch"), ["integration": "weather", "path": "/today"]),
        "delegate": (Fixtures.product("delegate"), ["plugin": "echo", "input": "hi"]),
        "shout": (Fixtures.file("Plugins/shout/shout.py"), nil),
    ]

    @Test func everyPluginDirectoryIsChecked() throws {
        let directories = try FileManager.default.contentsOfDirectory(atPath: Fixtures.file("Plugins"))
        #expect(Set(directories) == Set(Self.plugins.keys))
    }

    @Test(arguments: plugins.keys.sorted())
    func pluginPassesEveryCheck(_ name: String) async throws {
        let plugin = try #require(Self.plugins[name])
        let outcomes = try await conformance(plugin.path, input: plugin.input)
        #expect(outcomes.count == Conformance.checks.count)
        let failed = failures(outcomes)
        #expect(failed.names.isEmpty, "\(failed.details)")
    }

    @Test(arguments: ["echo", "sleep", "usage"])
    func hostileWorkerInACorrectModePassesEveryCheck(_ mode: String) async throws {
        let outcomes = try await conformance(Fixtures.product("hostile"), environment: ["HOSTILE_MODE": mode])
        let failed = failures(outcomes)
        #expect(failed.names.isEmpty, "\(failed.details)")
    }

    @Test func cWorkerPassesEveryCheck() async throws {
        let cworker = try await offPool { try Fixtures.cworker() }
        let failed = failures(try await conformance(cworker))
        #expect(failed.names.isEmpty, "\(failed.details)")
    }

    /// A Swift plugin's print() goes to stderr (PluginKit moves fd 1): no stray line.
    @Test func printsOfASwiftPluginStayOffStdout() async throws {
        let outcomes = try await conformance(Fixtures.product("noisy"), only: ["stray-stdout", "stderr"])
        #expect(outcomes.map(\.result.status) == [.pass, .pass], "\(failures(outcomes).details)")
    }
}

/// Each deliberately broken worker fails exactly the check for the rule it breaks.
@Suite("Conformance of broken workers", .serialized, .timeLimit(.minutes(5)))
struct BrokenWorkerTests {
    static let breakers: [(mode: String, check: String)] = [
        ("noping", "ping"),
        ("nocancel", "cancel"),
        ("wrongcode", "unknown-method"),
        ("straystdout", "stray-stdout"),
        ("longline", "line-limit"),
        ("noeofexit", "stdin-eof"),
        ("badusage", "usage"),
        ("stderrproto", "stderr"),
        ("acceptv2", "version"),
        ("silentshutdown", "shutdown"),
    ]

    @Test(arguments: breakers.map(\.mode))
    func failsExactlyTheCheckItBreaks(_ mode: String) async throws {
        let expected = try #require(Self.breakers.first { $0.mode == mode }?.check)
        let outcomes = try await conformance(Fixtures.product("hostile"), environment: ["HOSTILE_MODE": mode])
        let failed = failures(outcomes)
        #expect(failed.names == [expected], "\(failed.details)")
    }

    /// A worker that stops reading once a run starts, and never exits: each check that
    /// waits on it fails by its own time limit, and the command ends.
    @Test func aHangingWorkerFailsEachCheckByItsOwnTimeLimit() async throws {
        var options = ConformanceOptions()
        options.runTimeMs = 1_000
        options.answerMs = 1_000
        let outcomes = try await conformance(
            Fixtures.product("hostile"), environment: ["HOSTILE_MODE": "ignoreterm"], options: options)
        #expect(failures(outcomes).names == ["run", "ping", "cancel", "usage", "notifications", "shutdown", "stdin-eof"])
    }

    /// A worker that exits before answering initialize fails every check that needs the
    /// protocol; those that judge its streams pass, saying the session ended early.
    @Test func aWorkerThatNeverStartsFailsEveryExchange() async throws {
        let outcomes = try await conformance(Fixtures.product("hostile"), environment: ["HOSTILE_MODE": "noinit"])
        let streams = ["line-limit", "stray-stdout", "stderr"]
        #expect(failures(outcomes).names == Conformance.checks.map(\.name).filter { !streams.contains($0) })
        for outcome in outcomes where streams.contains(outcome.name) {
            // It is gone before initialize is written, or before it is answered.
            #expect(outcome.result.detail.contains("(the session ended early: the worker "), "\(outcome.result.detail)")
            #expect(outcome.result.detail.contains("exited with status 3)"), "\(outcome.result.detail)")
        }
    }
}

import Foundation
import PurserConfig
import PurserTestSupport
import Testing

/// Reading a config, job file, manifest or secrets file costs at most what its size
/// allows, and every refusal names the file and the line.
@Suite("Config files are bounded", .timeLimit(.minutes(1)))
struct ConfigBoundsTests {
    /// Nine anchors, each a list of nine aliases of the one before: 9^9 values in ~500 bytes.
    static func laughs(levels: Int = 9, at key: String = "input") -> String {
        var lines = [#"l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]"#]
        for level in 1..<levels {
            lines.append("l\(level): &l\(level) [" + Array(repeating: "*l\(level - 1)", count: 9).joined(separator: ",") + "]")
        }
        lines.append("\(key): *l\(levels - 1)")
        return lines.joined(separator: "\n") + "\n"
    }

    @Test(arguments: [5, 7, 9, 12])
    func aliasBombsAreRefusedWithTheirLine(levels: Int) async throws {
        let text = Self.laughs(levels: levels)
        #expect {
            _ = try ConfigValue.parse(text, file: "bomb.yaml")
        } throws: { error in
            let error = error as? ConfigError
            return error?.line != nil && error?.description.hasPrefix("bomb.yaml:") == true
                && error?.message.contains("expands to more than") == true
        }
    }

    @Test func aliasesUsedAsMeantStillWork() async throws {
        let text = """
            defaults: &defaults {time: 10s, memory: 64MiB}
            a: *defaults
            b: *defaults
            list: &items [1, 2, 3]
            again: *items
            """
        let value = try ConfigValue.parse(text, file: "ok.yaml")
        #expect(try value.mapping()["b"]?.mapping()["time"]?.string() == "10s")
    }

    @Test func aliasedTextIsBoundedToo() async throws {
        let big = String(repeating: "x", count: 1 << 20)
        var text = "big: &big \"\(big)\"\nmany: ["
        text += Array(repeating: "*big", count: 40).joined(separator: ",") + "]\n"
        #expect {
            _ = try ConfigValue.parse(text, file: "text.yaml")
        } throws: { error in
            (error as? ConfigError)?.message.contains("MiB of text") == true
        }
    }

    @Test(arguments: [
        ("team: 1\nswarm: 2\nteam: 3\n", 3, "team"),
        ("team:\n  name: t\n  credits: 10\n  name: u\n", 4, "name"),
        ("routines:\n  - name: a\n    plugin: p\n    name: b\n", 4, "name"),
        ("{\n  \"a\": 1,\n  \"b\": 2,\n  \"a\": 3\n}\n", 4, "a"),
    ])
    func aKeyGivenTwiceIsReportedWithItsLine(text: String, line: Int, key: String) throws {
        #expect {
            _ = try ConfigValue.parse(text, file: "dup.yaml")
        } throws: { error in
            (error as? ConfigError)?.description == "dup.yaml:\(line): \(key): given twice"
        }
    }

    /// Through the command line, as a user meets it: exit 2, the file and line, at once, and
    /// nothing written.
    @Test func aBombJobFileIsBadInputAndWritesNothing() async throws {
        let home = Fixtures.temporaryHome()
        let job = home + "-job.yaml"
        let text = "team: {name: t, credits: 10}\nswarm: {name: s, credits: 5}\n" + Self.laughs(at: "routines")
        try text.write(toFile: job, atomically: true, encoding: .utf8)
        defer { unlink(job) }
        var environment = ProcessInfo.processInfo.environment
        environment["PURSER_HOME"] = home
        let result = try await runCommand(Fixtures.product("purser"), ["run", job], environment: environment)
        #expect(result.status == 2, "\(result.stderr)")
        #expect(result.stderr.contains(job + ":"), "\(result.stderr)")
        let written = (try? FileManager.default.contentsOfDirectory(atPath: home)) ?? []
        #expect(!written.contains { $0.hasPrefix("purser.db") }, "\(written)")
    }
}

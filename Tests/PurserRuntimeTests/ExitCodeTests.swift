import Foundation
import PurserRuntime
import PurserSandbox
import PurserTestSupport
import Testing

/// Verdicts, their exit codes, and the `--help` that lists them.
@Suite("Verdicts and exit codes", .timeLimit(.minutes(1)))
struct ExitCodeTests {
    @Test func skippedAndPreemptedAreVerdictsLikeTheOthers() {
        #expect(Verdict(rawValue: "skipped") != nil)
        #expect(Verdict(rawValue: "preempted") != nil)
    }

    @Test func everyVerdictHasAnExitCodeOfItsOwn() {
        let codes = Verdict.allCases.map { ExitCodes.code(for: $0) }
        #expect(Set(codes).count == codes.count, "\(codes)")
        #expect(ExitCodes.code(for: .ok) == 0)
    }

    /// The codes each command can end with, as its `--help` lists them, one a line.
    @Test(arguments: [
        ("exec", [Int32(0), 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 2, 3, 1]),
        ("run", [Int32(0), 21, 19, 2, 3, 18, 1]),
    ])
    func helpListsTheExitCodes(command: String, expected: [Int32]) async throws {
        let result = try await runCommand(Fixtures.product("purser"), [command, "--help"])
        #expect(result.status == 0, "\(result.stderr)")
        let listed = Self.exitCodes(in: result.stdout)
        #expect(listed.map(\.code).sorted() == expected.sorted(), "\(result.stdout)")
        guard command == "exec" else { return }
        // A verdict's line names it as the report does.
        for verdict in Verdict.allCases {
            let code = ExitCodes.code(for: verdict)
            guard expected.contains(code) else { continue }
            #expect(listed.contains { $0.code == code && $0.text.hasPrefix(verdict.rawValue) }, "\(verdict): \(result.stdout)")
        }
    }

    /// docs/cli.md's table of `purser exec`'s codes says what the list says.
    @Test func theDocsTableAgreesWithTheList() throws {
        let page = try String(contentsOfFile: Fixtures.file("docs/cli.md"), encoding: .utf8)
        for status in ExitCodes.exec {
            let name = status.meaning.split(separator: ":").first.map(String.init) ?? status.meaning
            let cell = Verdict(rawValue: name) != nil ? "| \(status.code) | `\(name)`" : "| \(status.code) | "
            #expect(page.contains(cell), "docs/cli.md has no row \(cell)")
        }
    }

    /// The lines after "Exit codes:" that start with a number.
    static func exitCodes(in help: String) -> [(code: Int32, text: String)] {
        let lines = help.split(separator: "\n", omittingEmptySubsequences: false)
        guard let start = lines.firstIndex(where: { $0.trimmingCharacters(in: .whitespaces) == "Exit codes:" }) else { return [] }
        return lines[(start + 1)...].prefix { !$0.trimmingCharacters(in: .whitespaces).isEmpty }.compactMap { line in
            let words = line.split(separator: " ", maxSplits: 1)
            guard words.count == 2, let code = Int32(words[0]) else { return nil }
            return (code, words[1].trimmingCharacters(in: .whitespaces))
        }
    }
}

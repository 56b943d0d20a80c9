import Foundation
import PurserProtocol
import PurserRuntime
import PurserTestSupport
import Testing

/// A worker's text (log, progress, error messages, stderr) must not be able to write a line
/// of purser's own, drive the terminal, or flood purser's output.
@Suite("Worker text", .timeLimit(.minutes(3)))
struct WorkerTextTests {
    let home = Fixtures.temporaryHome()

    func purser(_ arguments: [String]) async throws -> CommandResult {
        try await runPurser(arguments, home: home)
    }

    func logforge(_ extra: [String]) async throws -> CommandResult {
        // 12.5 MiB of log text to read and escape: a debug build on a busy host can take
        // more than exec's default 30 s, and the test is about the text, not the deadline.
        try await purser(
            ["exec", Fixtures.product("hostile"), "--env", "HOSTILE_MODE=logforge", "--input", "1", "--time", "2m"] + extra)
    }

    /// Characters a terminal acts on or that reorder text: none may reach purser's output raw.
    static func controls(in text: String) -> [String] {
        text.unicodeScalars.filter { scalar in
            let value = scalar.value
            return (value < 0x20 && value != 0x0A && value != 0x09) || (0x7F...0x9F).contains(value)
                || (0x202A...0x202E).contains(value) || (0x2066...0x2069).contains(value)
        }.map { "U+" + String($0.value, radix: 16) }
    }

    @Test func aWorkersTextCannotForgeLinesOrDriveTheTerminal() async throws {
        let result = try await logforge([])
        #expect(result.status != 0, "the worker answered with an error")
        let output = result.stdout + result.stderr
        #expect(Self.controls(in: output).isEmpty, "raw control characters: \(Set(Self.controls(in: output)))")
        let lines = output.split(separator: "\n")
        #expect(!lines.contains { $0.hasPrefix("[purser] verdict") }, "a forged purser line")
        #expect(lines.filter { $0.hasPrefix("verdict:") }.count == 1)
        #expect(result.stderr.contains("\\x1b]52;c;"), "the escape is shown, made visible")
        #expect(result.stdout.contains("stderr\\x1b]52"), "the stderr tail is escaped too")
    }

    @Test func aFloodOfLogTextIsBoundedAndCounted() async throws {
        let result = try await logforge(["--json"])
        // 200 messages of 64 KiB: 12.5 MiB offered, at most the run's allowance shown.
        #expect(result.stderr.utf8.count < WorkerText.maxRunBytes + 64 * 1024, "\(result.stderr.utf8.count) bytes on stderr")
        let report = try JSONParser.parse(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        let dropped = report["droppedMessages"]?.numberValue?.int64 ?? 0
        #expect(dropped > 100, "dropped \(dropped)")
        #expect(result.stderr.contains("later messages are dropped"))
        #expect(Self.controls(in: result.stdout).isEmpty, "the JSON report escapes every control character")
        #expect(report["error"]?["message"]?.stringValue?.contains("\\x1b[2J") == true)
    }

    @Test(arguments: [
        ("a\nb", "a\\x0ab"), ("\u{1b}[31m", "\\x1b[31m"), ("\u{9b}2J", "\\x9b2J"), ("\u{202e}abc", "\\u{202e}abc"),
        ("tab\tstays", "tab\tstays"), ("plain ünïcode", "plain ünïcode"),
    ])
    func oneLineEscapesWhatATerminalWouldActOn(text: String, shown: String) {
        #expect(WorkerText.line(text) == shown)
    }

    @Test func longMessagesAreCutWithTheirSize() {
        let text = String(repeating: "é", count: 5000)
        let shown = WorkerText.line(text)
        #expect(shown.utf8.count <= WorkerText.maxMessageBytes + 40)
        #expect(shown.hasSuffix("…[cut \(10_000 - WorkerText.maxMessageBytes) bytes]"), "\(shown.suffix(30))")
    }

    @Test func theJSONSerializerEscapesDELC1AndBidiControls() async throws {
        let value = JSONValue.string("a\u{7f}b\u{9b}c\u{a0}d\u{202e}e\u{2069}f\u{2030}\u{2028}")
        #expect(value.serialized() == #""a\u007fb\u009bc"# + "\u{a0}" + #"d\u202ee\u2069f"# + "\u{2030}" + #"\u2028""#)
        #expect(try JSONParser.parse(value.serialized()) == value)
    }
}

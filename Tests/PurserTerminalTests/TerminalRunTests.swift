import Foundation
import PurserRuntime
import PurserTerminal
import PurserTestSupport
import Testing

/// `purser run` on a real terminal: tmux panes of 80 and 200 columns, read with capture-pane.
@Suite("purser run on a terminal", .timeLimit(.minutes(3)))
struct TerminalRunTests {
    let home = Fixtures.temporaryHome()
    static let longName = "a-routine-with-a-name-far-longer-than-any-terminal-line-" + String(repeating: "x", count: 150)

    /// `scripted`, trusted, as `gated`: it sees the test's files, so it waits on a gate.
    func addGated() async throws {
        let manifest = home + "/trusted.yaml"
        try "trusted: true\n".write(toFile: manifest, atomically: true, encoding: .utf8)
        let added = try await runPurser(["plugin", "add", Fixtures.product("scripted"), "--name", "gated", "--manifest", manifest], home: home)
        try #require(added.status == 0, "\(added.stderr)")
    }

    /// The pane's script: purser run on the job, then its exit status, then the pane stays.
    func script(_ job: String, colour: Bool) -> String {
        """
        trap 'true' INT
        \(colour ? "unset NO_COLOR" : "export NO_COLOR=1")
        PURSER_HOME='\(home)' '\(Fixtures.product("purser"))' run '\(job)'
        echo "purser exited $?"
        exec sleep 3600
        """
    }

    func writeJob(_ routines: String) throws -> String {
        let job = home + "/job.yaml"
        try """
            team: { name: tt, budget: { credits: 1000 } }
            swarm: { name: "nightly\\e]0;pwned\\a\\e[2J", reservation: { credits: 100 }, concurrency: 8 }
            routines:
            \(routines)
            """.write(toFile: job, atomically: true, encoding: .utf8)
        return job
    }

    /// The lines of the live view (and anything above the report): none wider than the pane.
    func expectFits(_ text: String, width: Int) {
        let view = text.components(separatedBy: "\nswarm nightly")[0]
        for line in view.split(separator: "\n", omittingEmptySubsequences: false) {
            let trimmed = String(line.reversed().drop { $0 == " " }.reversed())
            #expect(TerminalText.cells(trimmed) < width, "a line of \(TerminalText.cells(trimmed)) cells: \(trimmed)")
        }
    }

    @Test(arguments: [(80, 24, true), (200, 50, false)])
    func aSwarmsProgressFailuresAndReport(width: Int, height: Int, colour: Bool) async throws {
        try await addGated()
        let gate = home + "/gate"
        let job = try writeJob("""
              - { name: quick, plugin: gated, input: { spend: 1 }, estimate: { credits: 5 } }
              - { name: bad, plugin: gated, input: { fail: "broke\\e[2J\\e]0;pwned\\a here" }, estimate: { credits: 5 } }
              - { name: held, plugin: gated, input: { gate: "\(gate)", spend: 2 }, estimate: { credits: 5 } }
              - { name: \(Self.longName), plugin: gated, input: { gate: "\(gate)" }, estimate: { credits: 5 } }
            """)
        try await Tmux.with(width: width, height: height, script: script(job, colour: colour), in: home) { tmux in
            let running = try await tmux.waitFor("two routines running, one done, one failed") {
                $0.contains("1/4 done, 1 failed") && $0.contains("2 running") && $0.contains("failed bad")
            }
            #expect(running.contains("credits 1 used of 100 reserved"), "\(running)")
            #expect(running.contains("ETA"), "\(running)")
            #expect(running.contains("  held  "), "\(running)")
            #expect(running.contains("failed bad: error: broke\\x1b[2J\\x1b]0;pwned\\x07 here"), "\(running)")
            #expect(running.contains("nightly\\x1b]0;pwned\\x07"), "\(running)")
            expectFits(running, width: width)
            let styled = try await tmux.capture(escapes: true)
            #expect(styled.contains("\u{1B}[") == colour, "SGR in the pane: \(styled.debugDescription)")
            _ = FileManager.default.createFile(atPath: gate, contents: nil)
            let ended = try await tmux.waitFor("purser's exit") { $0.contains("purser exited") }
            #expect(ended.contains("purser exited \(ExitCodes.swarmFailed)"), "\(ended)")
            #expect(ended.contains("on team tt: not all ok"), "\(ended)")
            #expect(ended.contains("verdicts: error 1, ok 3"), "\(ended)")
            #expect(ended.contains("4/4 done") == false && ended.contains("3/4 done, 1 failed"), "\(ended)")
            #expect(ended.components(separatedBy: "failed bad:").count == 2, "the failure is listed once: \(ended)")
            expectFits(ended, width: width)
            #expect(try await !tmux.title().contains("pwned"))
        }
    }

    @Test func ctrlCCancelsAndTheReportStillComes() async throws {
        try await addGated()
        let gate = home + "/never"
        let job = try writeJob("""
              - { name: one, plugin: gated, input: { gate: "\(gate)", spend: 1 }, estimate: { credits: 5 } }
              - { name: two, plugin: gated, input: { gate: "\(gate)", spend: 1 }, estimate: { credits: 5 } }
            """)
        try await Tmux.with(width: 80, height: 24, script: script(job, colour: true), in: home) { tmux in
            _ = try await tmux.waitFor("two routines running") { $0.contains("2 running") && $0.contains("  two  ") }
            try await tmux.run(["send-keys", "-t", "t", "C-c"])
            let ended = try await tmux.waitFor("purser's exit") { $0.contains("purser exited") }
            #expect(ended.contains("purser: signal 2: cancelling"), "\(ended)")
            #expect(ended.contains("purser exited \(ExitCodes.code(for: .cancelled))"), "\(ended)")
            #expect(ended.contains("verdicts: cancelled 2"), "\(ended)")
            let cursor = try await tmux.run(["display-message", "-p", "-t", "t", "#{cursor_flag}"]).stdout
            #expect(cursor.hasPrefix("1"), "the cursor is shown again: \(cursor)")
            expectFits(ended, width: 80)
        }
    }
}

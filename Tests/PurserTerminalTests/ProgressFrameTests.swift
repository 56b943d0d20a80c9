import Foundation
import PurserProtocol
import PurserTerminal
import Testing

/// The terminal view's frames, without a terminal: widths, the ETA, failures, hostile text.
@Suite("Terminal frames")
struct ProgressFrameTests {
    static let start: Int64 = 1_700_000_000_000

    /// A swarm of `total` routines, `running` of them running (the first since `start`).
    func swarm(name: String = "nightly", total: Int = 10, running: [String] = ["alpha", "beta"]) -> SwarmProgress {
        var progress = SwarmProgress(name: name, total: total, reserved: Credits(whole: 100))
        progress.take(kind: "reserve", routine: nil, fields: ["credits": 100], atMs: Self.start)
        for (index, routine) in running.enumerated() {
            progress.take(kind: "grant", routine: routine, fields: ["credits": 5], atMs: Self.start + Int64(index) * 1000)
        }
        return progress
    }

    func end(_ progress: inout SwarmProgress, _ routine: String, _ verdict: String, at: Int64, used: JSONValue = 2) {
        progress.take(kind: "verdict", routine: routine, fields: ["verdict": .string(verdict), "used": used, "returned": 3], atMs: at)
    }

    @Test(arguments: [12, 20, 40, 80, 200])
    func noLineIsWiderThanTheTerminal(width: Int) {
        var progress = swarm(
            name: "a-swarm-with-a-very-long-name-" + String(repeating: "長", count: 60),
            running: ["r" + String(repeating: "x", count: 300), String(repeating: "字", count: 120), "short"])
        progress.take(kind: "fail", routine: "bad", fields: ["message": .string(String(repeating: "y", count: 500))], atMs: Self.start)
        progress.store = String(repeating: "the store is away ", count: 30)
        let lines = ProgressFrame.live(progress, now: Self.start + 5000, width: width, height: 24)
            + progress.failures.map { ProgressFrame.failure($0, width: width) }
        for line in lines {
            #expect(line.cells < width, "\(line.plain) is \(line.cells) cells on a terminal of \(width)")
        }
    }

    @Test func cellsCountWideCharactersTwiceAndMarksNone() {
        #expect(TerminalText.cells("abc") == 3)
        #expect(TerminalText.cells("長い") == 4)
        #expect(TerminalText.cells("e\u{301}") == 1)
        #expect(TerminalText.cells("🚀") == 2)
        #expect(TerminalText.truncate("長い名前", to: 5) == "長い…")
        #expect(TerminalText.cells(TerminalText.truncate("長い名前", to: 5)) <= 5)
    }

    @Test func theFrameShowsTheBarCreditsAndRunningRoutines() {
        var progress = swarm()
        progress.take(kind: "spend", routine: "alpha", fields: ["credits": 1.5], atMs: Self.start + 2000)
        let text = ProgressFrame.live(progress, now: Self.start + 65_000, width: 80).map(\.plain)
        #expect(text[0].hasPrefix("nightly ["))
        #expect(text[0].hasSuffix("] 0/10 done"))
        #expect(text[1] == "credits 1.5 used of 100 reserved · 1m05s elapsed")
        #expect(text[2] == "2 running · 8 not started")
        #expect(text[3] == "  alpha  1m05s")
        #expect(text[4] == "  beta  1m04s")
    }

    @Test func theETAShowsOnceARoutineHasEnded() {
        var progress = swarm(total: 4)
        #expect(!ProgressFrame.live(progress, now: Self.start + 10_000, width: 80)[1].plain.contains("ETA"))
        end(&progress, "alpha", "ok", at: Self.start + 10_000)
        let figures = ProgressFrame.live(progress, now: Self.start + 10_000, width: 80)[1].plain
        // One of four in 10 s: three more take 30 s.
        #expect(figures == "credits 2 used of 100 reserved · 10s elapsed · ETA 30s", "\(figures)")
        #expect(ProgressFrame.live(progress, now: Self.start + 10_000, width: 80)[0].plain.contains("1/4 done"))
    }

    @Test func anUnknownTotalShowsCountsAlone() {
        var progress = SwarmProgress(name: "s-1", total: 0, source: .fleet)
        progress.take(kind: "claim", routine: "a", fields: [:], atMs: Self.start)
        progress.take(kind: "claim", routine: "b", fields: [:], atMs: Self.start)
        end(&progress, "a", "ok", at: Self.start + 1000)
        let lines = ProgressFrame.live(progress, now: Self.start + 2000, width: 80).map(\.plain)
        #expect(lines[0].hasSuffix("] 1 done"), "\(lines)")
        #expect(lines[0].contains("[" + String(repeating: "#", count: 25)), "half the bar: one of two known routines")
        #expect(!lines[1].contains("ETA"))
    }

    @Test func theRunningListFitsTheTerminalsHeight() {
        let progress = swarm(total: 40, running: (0..<30).map { "r\($0)" })
        let lines = ProgressFrame.live(progress, now: Self.start + 1000, width: 80, height: 12)
        #expect(lines.count == 11)
        #expect(lines.last?.plain == "  … and 23 more running")
    }

    @Test func aFailureIsPrintedOnceAboveTheLiveLines() {
        var progress = swarm()
        var screen = TerminalScreen(colour: false)
        _ = screen.next(progress, now: Self.start + 1000, width: 80, height: 24)
        end(&progress, "beta", "error", at: Self.start + 1500)
        progress.take(kind: "fail", routine: "beta", fields: ["message": "it broke"], atMs: Self.start + 1500)
        var output = ""
        for tick in 0..<5 { output += screen.next(progress, now: Self.start + 2000 + Int64(tick) * 1000, width: 80, height: 24) }
        #expect(output.components(separatedBy: "failed beta: error: it broke").count == 2, "\(output.debugDescription)")
        #expect(ProgressFrame.live(progress, now: Self.start + 2000, width: 80)[0].plain.hasSuffix("0/10 done, 1 failed"))
    }

    @Test func aRetriedRunIsNotAFailure() {
        var progress = swarm()
        end(&progress, "alpha", "error", at: Self.start + 1000)
        progress.take(kind: "retry", routine: "alpha", fields: ["attempt": 2], atMs: Self.start + 1000)
        progress.settle(now: Self.start + 60_000)
        #expect(progress.failures.isEmpty)
    }

    @Test func aFleetRunThatEndedBadlyFailsUnlessRetried() {
        var progress = SwarmProgress(name: "s", total: 3, source: .fleet)
        progress.take(kind: "claim", routine: "a", fields: [:], atMs: Self.start)
        progress.take(kind: "claim", routine: "b", fields: [:], atMs: Self.start)
        end(&progress, "a", "error", at: Self.start + 100)
        end(&progress, "b", "error", at: Self.start + 100)
        progress.take(kind: "retry", routine: "b", fields: [:], atMs: Self.start + 100)
        progress.settle(now: Self.start + 200)
        #expect(progress.failures.isEmpty, "a retry may still come")
        progress.settle(now: Self.start + 100 + SwarmProgress.settleMs)
        #expect(progress.failures == [SwarmProgress.Failure(routine: "a", text: "error")])
    }

    @Test func anUnchangedFrameWritesNothing() {
        let progress = swarm()
        var screen = TerminalScreen(colour: true)
        #expect(!screen.next(progress, now: Self.start + 1000, width: 80, height: 24).isEmpty)
        #expect(screen.next(progress, now: Self.start + 1000, width: 80, height: 24).isEmpty)
        // A second later only the lines with times change: no screen clear, the cursor shown at the end.
        let next = screen.next(progress, now: Self.start + 2000, width: 80, height: 24)
        #expect(!next.contains("\u{1B}[2J") && !next.contains("\u{1B}[H"))
        #expect(next.hasPrefix("\u{1B}[?25l") && next.hasSuffix("\u{1B}[?25h"))
        #expect(!next.contains("] 0/10 done"), "the bar did not change and is not written again")
    }

    @Test func aNarrowerTerminalRedrawsFromWhereTheRewrappedLinesBegin() {
        let progress = swarm(running: ["r" + String(repeating: "x", count: 150)])
        var screen = TerminalScreen(colour: false)
        let wide = screen.next(progress, now: Self.start + 1000, width: 200, height: 24)
        #expect(!wide.contains("\u{1B}[J"))
        // Four lines were drawn at 200 columns, the running one 153 cells: at 80 it takes two rows.
        let narrow = screen.next(progress, now: Self.start + 1000, width: 80, height: 24)
        #expect(narrow.hasPrefix("\u{1B}[?25l\r\u{1B}[5A\u{1B}[J"), "\(narrow.debugDescription)")
        #expect(narrow.contains("] 0/10 done"), "every line is written again")
    }

    @Test func hostileTextReachesTheTerminalInert() {
        let hostile = "evil\u{1B}]0;pwned\u{07}\u{1B}[2J\u{1B}[31m\r\nfake line\u{202E}desrever\u{9B}6n"
        var progress = swarm(name: hostile, running: [])
        progress.take(kind: "fail", routine: "bad", fields: ["message": .string(hostile)], atMs: Self.start)
        var screen = TerminalScreen(colour: true)
        let output = screen.next(progress, now: Self.start + 1000, width: 200, height: 24)
        #expect(output.contains("evil\\x1b]0;pwned\\x07\\x1b[2J\\x1b[31m\\x0d\\x0afake line\\u{202e}desrever\\x9b6n"))
        // What is left are purser's own sequences: cursor moves, erases, SGR colours.
        let own = try! Regex(#"\x1B\[(\?25[lh]|\d*[AKJ]|\d+m)"#)
        let stripped = output.replacing(own, with: "")
        #expect(!stripped.unicodeScalars.contains { $0.value < 0x20 && $0 != "\r" && $0 != "\n" || (0x7F...0x9F).contains($0.value) })
        #expect(!stripped.contains("\u{202E}"))
    }

    @Test func withoutColourThereIsNoSGR() {
        var progress = swarm()
        progress.take(kind: "fail", routine: "beta", fields: ["message": "x"], atMs: Self.start)
        var screen = TerminalScreen(colour: false)
        let output = screen.next(progress, now: Self.start + 1000, width: 80, height: 24)
        #expect(output.firstMatch(of: try! Regex(#"\x1B\[\d+m"#)) == nil)
        var coloured = TerminalScreen(colour: true)
        #expect(coloured.next(progress, now: Self.start + 1000, width: 80, height: 24).firstMatch(of: try! Regex(#"\x1B\[\d+m"#)) != nil)
    }
}

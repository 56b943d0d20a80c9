import Foundation
import PurserRuntime
import PurserTestSupport
import Testing

/// `purser watch` on a terminal: a fleet of one `purser serve` host on the home's SQLite
/// store, a swarm submitted to it, watched in a tmux pane.
@Suite("purser watch on a terminal", .timeLimit(.minutes(3)))
struct TerminalWatchTests {
    let home = Fixtures.temporaryHome()

    @Test func aFleetSwarmsProgressFailureAndReport() async throws {
        let manifest = home + "/trusted.yaml"
        try "trusted: true\n".write(toFile: manifest, atomically: true, encoding: .utf8)
        let added = try await runPurser(["plugin", "add", Fixtures.product("scripted"), "--name", "gated", "--manifest", manifest], home: home)
        try #require(added.status == 0, "\(added.stderr)")
        let gate = home + "/gate"
        let job = home + "/job.yaml"
        try """
            team: { name: tw, budget: { credits: 1000 } }
            swarm: { name: "watched\\e]0;pwned\\a", reservation: { credits: 100 }, concurrency: 8 }
            routines:
              - { name: quick, plugin: gated, input: { spend: 1 }, estimate: { credits: 5 } }
              - { name: bad, plugin: gated, input: { fail: "broke" }, estimate: { credits: 5 } }
              - { name: held, plugin: gated, input: { gate: "\(gate)", spend: 2 }, estimate: { credits: 5 } }
            """.write(toFile: job, atomically: true, encoding: .utf8)
        let purser = Fixtures.product("purser")
        let script = """
            export PURSER_HOME='\(home)'
            unset NO_COLOR
            '\(purser)' serve --name solo --slots 4 >'\(home)/serve.log' 2>&1 &
            serve=$!
            id=$('\(purser)' submit '\(job)')
            '\(purser)' watch "$id"
            echo "purser exited $?"
            kill -TERM $serve
            wait $serve
            exec sleep 3600
            """
        try await Tmux.with(width: 80, height: 24, script: script, in: home) { tmux in
            let running = try await tmux.waitFor("one routine running, one done, one failed") {
                $0.contains("1/3 done, 1 failed") && $0.contains("1 running") && $0.contains("failed bad: error")
            }
            #expect(running.contains("credits 1 used of 100 reserved"), "\(running)")
            #expect(running.contains("  held  "), "\(running)")
            #expect(running.contains("watched\\x1b]0;pwned\\x07"), "\(running)")
            _ = FileManager.default.createFile(atPath: gate, contents: nil)
            let ended = try await tmux.waitFor("watch's exit") { $0.contains("purser exited") }
            #expect(ended.contains("purser exited \(ExitCodes.swarmFailed)"), "\(ended)")
            #expect(ended.contains("on team tw: failed"), "\(ended)")
            #expect(ended.contains("2/3 done, 1 failed"), "\(ended)")
            #expect(ended.components(separatedBy: "failed bad:").count == 2, "the failure is listed once: \(ended)")
            #expect(try await !tmux.title().contains("pwned"))
        }
    }
}

import Foundation
import PurserTestSupport
import Testing

/// A tmux server of the test's own (a private socket, no config file) with one session of
/// `width`×`height` running `script`; `with` kills the server at the end, whatever happens.
struct Tmux: Sendable {
    let socket: String
    let width: Int
    let height: Int

    static func with(
        width: Int, height: Int, script: String, in home: String, _ body: @Sendable (Tmux) async throws -> Void
    ) async throws {
        let path = home + "/pane.sh"
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        let tmux = Tmux(socket: home + "/tmux.sock", width: width, height: height)
        // The server outlives the command that starts it, keeping every descriptor it was
        // given: Foundation's Process gives each child one whose closing ends the wait for
        // it. So the starting command is python's, which closes all but stdin, stdout and
        // stderr (the server sends those to /dev/null) before it becomes tmux (`plainStart`).
        let started = try await tmux.run(
            ["new-session", "-d", "-s", "t", "-x", "\(width)", "-y", "\(height)", "sh " + path],
            through: ["/usr/bin/python3", "-c", Self.plainStart])
        try #require(started.status == 0, "tmux: \(started.stderr)")
        do {
            try await body(tmux)
        } catch {
            await tmux.kill()
            throw error
        }
        await tmux.kill()
    }

    /// Execs its arguments with only stdin, stdout and stderr open, no signal blocked and
    /// none ignored: the test process blocks some, and tmux's kill-server is a SIGTERM to
    /// itself.
    static let plainStart = """
        import os, signal, sys
        os.closerange(3, 65536)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        for signo in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGPIPE, signal.SIGQUIT):
            signal.signal(signo, signal.SIG_DFL)
        os.execv(sys.argv[1], sys.argv[1:])
        """

    /// Ends the server and what runs in its panes.
    func kill() async {
        let killed = try? await run(["kill-server"])
        #expect(killed?.status == 0, "tmux kill-server: \(killed?.stderr ?? "did not run")")
    }

    @discardableResult
    func run(_ arguments: [String], through wrapper: [String] = []) async throws -> CommandResult {
        var environment = ProcessInfo.processInfo.environment
        environment["TMUX"] = nil
        let command = wrapper + ["/usr/bin/tmux", "-S", socket, "-f", "/dev/null"] + arguments
        return try await runCommand(command[0], Array(command.dropFirst()), environment: environment)
    }

    /// The pane and its history, wrapped lines joined (a line wider than the pane shows as
    /// one long line); with `escapes`, the SGR attributes of the cells too.
    func capture(escapes: Bool = false) async throws -> String {
        try await run(["capture-pane", "-p", "-J", "-S", "-", "-t", "t"] + (escapes ? ["-e"] : [])).stdout
    }

    /// Waits, with a generous deadline, until the pane shows what `done` looks for.
    func waitFor(_ what: String, _ done: (String) -> Bool) async throws -> String {
        var text = ""
        for _ in 0..<600 {
            text = try await capture()
            if done(text) { return text }
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("the pane never showed \(what):\n\(text)")
        throw CancellationError()
    }

    func title() async throws -> String {
        try await run(["display-message", "-p", "-t", "t", "#{pane_title}"]).stdout
    }
}

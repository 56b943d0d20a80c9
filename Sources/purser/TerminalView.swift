import Dispatch
import Foundation
import PurserProtocol
import PurserRuntime
import PurserTerminal

/// The live view of `purser run` and `purser watch` on a terminal, on stderr: a swarm's
/// bar, credits and times, its running routines, and a line per failure as it comes.
/// Redrawn five times a second, at the terminal's size of the moment; what to write
/// comes from `TerminalScreen`, this class only times and writes it.
final class TerminalView: @unchecked Sendable {
    private let lock = NSLock()
    private var progress: SwarmProgress
    private var notes: [String] = []
    /// Held while a frame is made and written; guards what the screen shows.
    private let drawing = NSLock()
    private var screen: TerminalScreen
    private var finished = false
    private let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "purser.terminal"))

    /// A view when stderr is a terminal that can move its cursor; nil otherwise (plain lines).
    static func onTerminal(_ progress: @autoclosure () -> SwarmProgress) -> TerminalView? {
        let environment = ProcessInfo.processInfo.environment
        guard isatty(2) == 1, environment["TERM"] != "dumb" else { return nil }
        // no-color.org: set and not empty means no colour.
        return TerminalView(progress(), colour: (environment["NO_COLOR"] ?? "").isEmpty)
    }

    private init(_ progress: SwarmProgress, colour: Bool) {
        self.progress = progress
        screen = TerminalScreen(colour: colour)
        timer.schedule(deadline: .now(), repeating: .milliseconds(200))
        timer.setEventHandler { [weak self] in self?.draw() }
        timer.activate()
    }

    func take(_ event: SwarmEvent) {
        lock.withLock { progress.take(kind: event.kind, routine: event.routine, fields: event.fields, atMs: event.atMs) }
    }

    /// A line of purser's own (a signal came), written at once above the live lines.
    func note(_ text: String) {
        lock.withLock { notes.append(text) }
        draw()
    }

    /// Stops redrawing and leaves the last frame on screen, the cursor below it.
    func finish() {
        timer.cancel()
        draw()
        drawing.withLock { finished = true }
    }

    /// One frame at a time (the timer's, a note's): each is computed from the last and
    /// written before the next. Events wait for the state's lock only, never for a write.
    private func draw() {
        drawing.withLock {
            guard !finished else { return }
            let (width, height) = Self.size()
            let now = unixMilliseconds()
            let (state, notes) = lock.withLock {
                progress.settle(now: now)
                defer { self.notes = [] }
                return (progress, self.notes)
            }
            let bytes = screen.next(state, notes: notes, now: now, width: width, height: height)
            if !bytes.isEmpty { FileHandle.standardError.write(Data(bytes.utf8)) }
        }
    }

    /// Columns and rows of the terminal on stderr, read each frame (a resize takes effect at
    /// the next one); 80×24 if it does not say.
    static func size() -> (width: Int, height: Int) {
        var size = winsize()
        guard ioctl(2, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0, size.ws_row > 0 else { return (80, 24) }
        return (Int(size.ws_col), Int(size.ws_row))
    }
}

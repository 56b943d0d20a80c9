import Dispatch
import Foundation
import PurserConfig
import PurserProtocol
import PurserRuntime
import PurserSandbox

/// The live view of `purser run` on a terminal: routines waiting, running, done and
/// failed; credits granted, used and returned; the longest-running routines. Redrawn in
/// place five times a second on stderr.
final class LiveView: @unchecked Sendable {
    private struct State {
        var total = 0
        var running: [String: Int64] = [:]  // routine → start, ms
        var waiting: Set<String> = []
        var done = 0
        var failed = 0
        var granted = Credits.zero
        var used = Credits.zero
        var returned = Credits.zero
        var drawnLines = 0
        /// The store's last word, while it is away.
        var store: String?
    }

    private let lock = NSLock()
    private var state = State()
    private let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "purser.live"))

    init(routines: Int) {
        state.total = routines
        timer.schedule(deadline: .now(), repeating: .milliseconds(200))
        timer.setEventHandler { [weak self] in self?.draw() }
        timer.activate()
    }

    func take(_ event: SwarmEvent) {
        lock.lock()
        defer { lock.unlock() }
        if event.kind == "store" { state.store = event.fields["message"]?.stringValue }
        guard let name = event.routine else { return }
        func credits(_ key: String) -> Credits {
            event.fields[key]?.numberValue.flatMap { try? Credits($0, field: key) } ?? .zero
        }
        switch event.kind {
        case "queue": state.waiting.insert(name)
        case "grant":
            state.waiting.remove(name)
            state.running[name] = event.atMs
            state.granted = state.granted + credits("credits")
        case "verdict":
            state.running[name] = nil
            state.used = state.used + credits("used")
            state.returned = state.returned + credits("returned")
        case "cache_hit": state.done += 1
        case "deny", "skip", "fail": state.waiting.remove(name)
        default: break
        }
        if event.kind == "verdict" {
            switch event.fields["verdict"]?.stringValue.flatMap(Verdict.init(rawValue:)) {
            case .ok: state.done += 1
            case .preempted: break  // back in line, not failed
            default: state.failed += 1
            }
        }
        if event.kind == "deny" || event.kind == "skip" { state.failed += 1 }
    }

    /// Stops redrawing and leaves the last frame on screen.
    func finish() {
        timer.cancel()
        draw()
    }

    private func draw() {
        lock.lock()
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let slowest = state.running.sorted { $0.value < $1.value }.prefix(3)
            .map { "\($0.key) \(Units.formatDuration(now - $0.value))" }
        let pending = state.total - state.done - state.failed - state.running.count
        var lines = [
            "routines: \(state.running.count) running, \(state.waiting.count) waiting for budget, \(max(pending - state.waiting.count, 0)) not ready, \(state.done) done, \(state.failed) failed or skipped",
            "credits: \(state.granted) granted, \(state.used) used, \(state.returned) returned",
        ]
        if !slowest.isEmpty { lines.append("longest running: " + slowest.joined(separator: ", ")) }
        if let store = state.store { lines.append("ledger: " + store) }
        var frame = String(repeating: "\u{1B}[1A\u{1B}[2K", count: state.drawnLines)
        frame += lines.map { "\u{1B}[2K" + $0 }.joined(separator: "\n") + "\n"
        state.drawnLines = lines.count
        lock.unlock()
        FileHandle.standardError.write(Data(frame.utf8))
    }
}

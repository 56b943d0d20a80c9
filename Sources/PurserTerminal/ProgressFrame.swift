/// The terminal view of a swarm, as lines: a pure function of its progress, the time, and
/// the terminal's size, so that tests check frames without a terminal.
public enum ProgressFrame {
    /// The live lines, redrawn in place: the bar, the credits and times, the counts, the
    /// running routines (longest first). At most `height` lines, none wider than `width - 1`
    /// cells (the last column stays free: a line that fills it makes some terminals wrap).
    public static func live(_ swarm: SwarmProgress, now: Int64, width: Int, height: Int = 24) -> [Line] {
        let columns = max(width - 1, 10)
        var lines = [bar(swarm, columns), figures(swarm, now: now), counts(swarm)]
        if let denied = swarm.denied { lines.append(Line([Span("denied: ", .red), Span(TerminalText.clean(denied))])) }
        if let store = swarm.store { lines.append(Line([Span("ledger: ", .yellow), Span(TerminalText.clean(store))])) }
        let room = max(height - 1 - lines.count, 1)
        let running = swarm.running.sorted { ($0.value, $0.key) < ($1.value, $1.key) }
        let shown = running.count > room ? room - 1 : running.count
        for (routine, since) in running.prefix(shown) {
            lines.append(Line([Span("  "), Span(TerminalText.clean(routine), .bold), Span("  " + clock(now - since), .dim)]))
        }
        if shown < running.count { lines.append(Line([Span("  … and \(running.count - shown) more running", .dim)])) }
        return lines.prefix(max(height - 1, 1)).map { $0.fitted(to: columns) }
    }

    /// The line a failure leaves above the live ones, once.
    public static func failure(_ failure: SwarmProgress.Failure, width: Int) -> Line {
        Line([Span("failed ", .red), Span(TerminalText.clean(failure.routine), .bold), Span(": " + TerminalText.clean(failure.text))])
            .fitted(to: max(width - 1, 10))
    }

    /// A message of purser's own (a signal came), above the live lines.
    public static func note(_ text: String, width: Int) -> Line {
        Line([Span(TerminalText.clean(text), .yellow)]).fitted(to: max(width - 1, 10))
    }

    static func bar(_ swarm: SwarmProgress, _ columns: Int) -> Line {
        let name = TerminalText.truncate(TerminalText.clean(swarm.name), to: max(columns / 3, 8))
        // A total unknown (a watch without the job) shows counts alone.
        var tail = swarm.total > 0 ? " \(swarm.done)/\(swarm.total) done" : " \(swarm.done) done"
        if swarm.failed > 0 { tail += ", \(swarm.failed) failed" }
        let room = columns - TerminalText.cells(name) - TerminalText.cells(tail) - 3
        let size = min(max(room, 10), 50)
        let total = max(swarm.total, swarm.finished + swarm.running.count + swarm.waiting.count, 1)
        let good = min(size * swarm.done / total, size)
        let bad = min(size * swarm.failed / total, size - good)
        return Line([
            Span(name, .bold), Span(" ["), Span(String(repeating: "#", count: good), .green),
            Span(String(repeating: "x", count: bad), .red), Span(String(repeating: ".", count: size - good - bad), .dim),
            Span("]"), Span(tail, swarm.failed > 0 ? .red : .plain),
        ])
    }

    static func figures(_ swarm: SwarmProgress, now: Int64) -> Line {
        let elapsed = max(now - (swarm.startedMs ?? now), 0)
        var text = "credits \(swarm.spent) used"
        if let reserved = swarm.reserved { text += " of \(reserved) reserved" }
        text += " · \(clock(elapsed)) elapsed"
        if let eta = eta(swarm, elapsed: elapsed) { text += " · ETA \(clock(eta))" }
        return Line([Span(text)])
    }

    /// The time left if the routines still to end take as long, on average, as those that
    /// did; unknown until one has ended.
    static func eta(_ swarm: SwarmProgress, elapsed: Int64) -> Int64? {
        let finished = swarm.finished
        guard finished > 0, finished < swarm.total else { return nil }
        return elapsed * Int64(swarm.total - finished) / Int64(finished)
    }

    static func counts(_ swarm: SwarmProgress) -> Line {
        let notReady = max(swarm.total - swarm.finished - swarm.running.count - swarm.waiting.count, 0)
        var spans = [Span("\(swarm.running.count) running", .cyan)]
        if !swarm.waiting.isEmpty { spans.append(Span(" · \(swarm.waiting.count) waiting for budget", .yellow)) }
        spans.append(Span(" · \(notReady) not started"))
        return Line(spans)
    }

    /// "4s", "3m05s", "1h02m": steady enough to read while it changes.
    public static func clock(_ milliseconds: Int64) -> String {
        let seconds = max(milliseconds, 0) / 1000
        if seconds < 60 { return "\(seconds)s" }
        if seconds < 3600 { return "\(seconds / 60)m" + two(seconds % 60) + "s" }
        return "\(seconds / 3600)h" + two(seconds % 3600 / 60) + "m"
    }

    private static func two(_ value: Int64) -> String { value < 10 ? "0\(value)" : "\(value)" }
}

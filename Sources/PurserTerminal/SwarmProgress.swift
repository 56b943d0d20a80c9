public import PurserProtocol

/// What the terminal view knows of one swarm, built from its events (`purser run`'s own,
/// or the fleet's event log for `purser watch`). A value: the view renders it as it is.
public struct SwarmProgress: Sendable {
    /// Where the events come from. A fleet's log has no `fail` event: there a run that
    /// ended badly is a failure unless a `retry` or `requeue` follows it (see `settle`).
    public enum Source: Sendable { case run, fleet }

    public struct Failure: Sendable, Equatable {
        public var routine: String
        public var text: String

        public init(routine: String, text: String) {
            self.routine = routine
            self.text = text
        }
    }

    public var name: String
    public var source: Source
    public var total: Int
    public var reserved: Credits?
    public var startedMs: Int64?
    public var done = 0
    /// Routine → when its current attempt started (ms since the epoch).
    public var running: [String: Int64] = [:]
    public var waiting: Set<String> = []
    /// Credits settled by ended runs, and spent so far by running ones.
    public var used = Credits.zero
    public var spending: [String: Credits] = [:]
    /// Failures in the order they happened; each is shown once, as it comes.
    public var failures: [Failure] = []
    /// Runs of the fleet that ended badly, not yet known to be retried: (verdict, when).
    public var unsettled: [String: (verdict: String, atMs: Int64)] = [:]
    /// The verdict of each routine's last run, for its failure line.
    public var verdicts: [String: String] = [:]
    public var denied: String?
    /// The store's last word, while it is away.
    public var store: String?

    /// How long a fleet run that ended badly waits for its `retry` before it counts as failed:
    /// a host writes both at once, so they are a batch apart at most.
    public static let settleMs: Int64 = 1_500

    public init(name: String, total: Int, reserved: Credits? = nil, source: Source = .run) {
        self.name = name
        self.total = total
        self.reserved = reserved
        self.source = source
    }

    public var failed: Int { failures.count }

    public mutating func take(kind: String, routine: String?, fields: [String: JSONValue], atMs: Int64) {
        startedMs = startedMs ?? atMs
        guard let routine else { return takeSwarm(kind: kind, fields: fields) }
        func text(_ key: String) -> String { fields[key].map { $0.stringValue ?? $0.serialized() } ?? "" }
        switch kind {
        case "queue": waiting.insert(routine)
        case "grant", "claim", "start":
            waiting.remove(routine)
            running[routine] = min(running[routine] ?? atMs, atMs)
        case "spend", "gateway_call": spending[routine, default: .zero] = spending[routine, default: .zero] + credits(fields["credits"])
        case "verdict": ended(routine, verdict: text("verdict"), used: credits(fields["used"]), atMs: atMs)
        case "cache_hit": done += 1
        case "retry", "requeue", "host_lost": unsettled[routine] = nil
        case "fail": fail(routine, [verdicts[routine] ?? "failed", text("message")].filter { !$0.isEmpty }.joined(separator: ": "))
        case "deny": fail(routine, "denied: " + text("message"))
        case "skip": fail(routine, "skipped (\(text("because")) did not succeed)")
        default: break
        }
        if ["queue", "retry", "requeue", "host_lost", "fail", "deny", "skip"].contains(kind) { running[routine] = nil }
        if kind != "queue" { waiting.remove(routine) }
    }

    /// A fleet run that ended badly and was not retried within `settleMs` is a failure.
    public mutating func settle(now: Int64) {
        for (routine, end) in unsettled.sorted(by: { $0.value.atMs < $1.value.atMs }) where now - end.atMs >= Self.settleMs {
            unsettled[routine] = nil
            fail(routine, end.verdict)
        }
    }

    private mutating func takeSwarm(kind: String, fields: [String: JSONValue]) {
        switch kind {
        case "reserve": if let credits = fields["credits"], reserved == nil || source == .run { reserved = self.credits(credits) }
        case "deny": denied = fields["message"]?.stringValue ?? ""
        case "store": store = fields["message"]?.stringValue
        case "done":
            // Every host wrote its events before `done`: what is unsettled now failed.
            settle(now: Int64.max)
        default: break
        }
    }

    private mutating func ended(_ routine: String, verdict: String, used: Credits, atMs: Int64) {
        running[routine] = nil
        spending[routine] = nil
        verdicts[routine] = verdict
        self.used = self.used + used
        switch verdict {
        case "ok": done += 1
        case "preempted", "frozen": break  // back in line, not failed
        default: if source == .fleet { unsettled[routine] = (verdict, atMs) }
        }
    }

    private mutating func fail(_ routine: String, _ text: String) {
        failures.append(Failure(routine: routine, text: text))
    }

    private func credits(_ value: JSONValue?) -> Credits {
        value?.numberValue.flatMap { try? Credits($0, field: "credits") } ?? .zero
    }

    /// Credits spent so far: what ended runs settled and what running ones reported.
    public var spent: Credits { spending.values.reduce(used, +) }

    /// Routines that ended, well or not.
    public var finished: Int { done + failed }
}

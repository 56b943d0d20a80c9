/// How one host takes part in the fleet.
public struct HostSettings: Sendable {
    /// Its name in the hosts table: unique in the fleet, the same across its restarts.
    public var name: String
    /// How many routines it runs at once.
    public var slots: Int
    /// How often it renews its row, and how old a row may be before its host is lost.
    public var heartbeatMs: Int64 = 1_000
    public var deadAfterMs: Int64 = 10_000
    /// How often it looks for work when nothing woke it and no wake-ups reach it (SQLite,
    /// or PostgreSQL while its listening connection is down).
    public var pollMs: Int64 = 250
    /// How often it looks while PostgreSQL's wake-ups reach it (`--poll`): they tell it of
    /// new work, so this only catches what a lost wake-up missed.
    public var idlePollMs: Int64 = 2_000
    /// The memory its routines' holds may take together: by default most of its RAM.
    public var memoryBytes: Int64 = HostMemory.defaultOffer()
    /// Memory pressure (PSI `some avg10`, percent) above which it claims nothing.
    public var pressureLimit = 10.0
    /// How long a drain lets running routines finish before cancelling and requeueing them.
    public var drainTimeoutMs: Int64 = 30_000

    /// How often a host looks again at a team whose first swarm waits for budget.
    static let admissionRetryMs: Int64 = 1_000

    public init(name: String, slots: Int) {
        self.name = name
        self.slots = slots
    }

    /// A host that has not renewed its row for this long stops its work: before anyone
    /// could find it lost and run its routines elsewhere. Counted from when the last
    /// renewal that succeeded was sent (the row's time is later), and checked every
    /// `fenceCheckMs`; each of a stop's three waits (cancel, exit, TERM) is at most
    /// `stopGraceMs`. So its workers are gone by 1/2 + 1/16 + 3/16 = 3/4 of `deadAfterMs`.
    public var fenceAfterMs: Int64 { deadAfterMs / 2 }
    public var fenceCheckMs: Int64 { max(deadAfterMs / 16, 10) }
    public var stopGraceMs: Int64 { max(min(1_000, deadAfterMs / 16), 10) }

    /// A swarm's hold outlives any one host: its lease is renewed by whichever host leads,
    /// and lapses only if no host is left to lead for this long.
    public var swarmLeaseMs: Int64 { max(3 * deadAfterMs, 30_000) }

    /// The ledger lease that holds this host's routines' holds.
    public var ledgerHolder: String { "host:" + name }
}

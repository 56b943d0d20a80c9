import PurserConfig
import PurserLedger
import PurserRuntime
import PurserTerminal

extension TerminalView {
    /// The view of a fleet swarm that `purser watch` follows, on a terminal: its name, its
    /// routines and its reservation from the job the queue holds (without a store, the
    /// swarm's id and counts alone). Nil off a terminal.
    static func watching(_ id: String, fleet: (any FleetStore)?) -> TerminalView? {
        let row = try? fleet?.swarm(id: id)
        let job = row.flatMap { row in try? JobFile.parse(ConfigValue.parse(row.source, file: row.file)) }
        let progress = SwarmProgress(
            name: job?.swarm.name ?? row?.name ?? id, total: job?.routines.count ?? 0, reserved: job?.swarm.credits, source: .fleet)
        return onTerminal(progress)
    }
}

import Glibc
import PurserAPI
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

    /// The same through a server: its name and routines from `GET /v1/swarms/{id}`; what it
    /// holds comes with its `reserve` event.
    static func watching(_ id: String, client: APIClient) async -> TerminalView? {
        guard isatty(2) == 1 else { return nil }
        let shown = (try? await client.send("GET", "/v1/swarms/\(id)"))?.json
        let progress = SwarmProgress(
            name: shown?["name"]?.stringValue ?? id, total: shown?["routines"]?.arrayValue?.count ?? 0, source: .fleet)
        return onTerminal(progress)
    }
}

import Glibc
import PurserAPI
import PurserConfig
import PurserProtocol
import PurserLedger
import PurserRuntime
import PurserTerminal

extension TerminalView {
    /// The view of a fleet swarm that `purser watch` follows, on a terminal: its name, its
    /// routines and its reservation from the job the queue holds (without a store, the
    /// swarm's id and counts alone). Nil off a terminal.
    static func watching(_ id: String, ledger: LedgerOptions) async -> TerminalView? {
        guard isatty(2) == 1 else { return nil }
        // The store's threads: a store's wait stays off the cooperative pool.
        let row = await StoreThreads.shared.run { () -> QueuedSwarm? in
            do {
                return try fleetStore(try ledger.runtime()).swarm(id: id)
            } catch {
                printError("purser: watch: the swarm's job could not be read for the view (\(error)); counts only")
                return nil
            }
        }
        let job = row.flatMap { row in try? JobFile.parse(ConfigValue.parse(row.source, file: row.file)) }
        let progress = SwarmProgress(
            name: job?.swarm.name ?? row?.name ?? id, total: job?.routines.count ?? 0, reserved: job?.swarm.credits, source: .fleet)
        return onTerminal(progress)
    }

    /// The same through a server: its name and routines from `GET /v1/swarms/{id}`; what it
    /// holds comes with its `reserve` event.
    static func watching(_ id: String, client: APIClient) async -> TerminalView? {
        guard isatty(2) == 1 else { return nil }
        var shown: JSONValue?
        for attempt in 1...3 where shown == nil {
            do {
                let answer = try await client.send("GET", "/v1/swarms/\(APIClient.segment(id))")
                guard answer.status == 200 else { throw commandFailure(answer) }
                shown = answer.json
            } catch {
                if attempt == 3 { printError("purser: watch: the swarm's size could not be read for the view (\(error)); counts only") }
                try? await Task.sleep(for: .milliseconds(300))
            }
        }
        let progress = SwarmProgress(
            name: shown?["name"]?.stringValue ?? id, total: shown?["routines"]?.arrayValue?.count ?? 0, source: .fleet)
        return onTerminal(progress)
    }
}

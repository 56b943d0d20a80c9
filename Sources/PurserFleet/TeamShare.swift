import PurserConfig
import PurserLedger
import PurserProtocol
import PurserRuntime

/// `proportional` between a team's swarms: when the swarms waiting for the team ask for
/// more than it has left, each starts with the credits left × its request ÷ all their
/// requests, if that is at least its `minimum`. As with `ProportionalPolicy` (a swarm's own
/// routines), a swarm whose share would be below its minimum waits for its whole request;
/// here the others' shares are then worked out again without it, so none is left idle. Granted one at a time, each share is taken from what the
/// earlier ones left: `left × a ÷ total`, then `(left − that) × b ÷ (total − a)`, which is
/// `left × b ÷ total` again, so the order of grants does not change the shares.
enum TeamShare {
    enum Outcome: Equatable {
        /// What it asks.
        case whole
        case share(Int64)
        /// It waits for its whole request; the team's others may go before it.
        case pass(String)
    }

    /// Runs on a store thread: it reads the team and its queued swarms.
    static func of(_ swarm: FleetSwarm, _ row: QueuedSwarm, host: FleetHost) throws(RuntimeError) -> Outcome {
        let team: Node
        let others: [QueuedSwarm]
        do throws(LedgerError) {
            team = try host.ledger.team(named: row.team)
            others = try host.fleet.teamSwarms(team: row.team).swarms.filter { $0.state == "queued" && $0.id != row.id }
        } catch {
            throw RuntimeError(error, context: "reading the team's waiting swarms")
        }
        let left = team.available.credits
        var contenders = [(id: row.id, asked: swarm.credits.asked, minimum: swarm.credits.minimum)]
        contenders += others.compactMap { other in Self.credits(other).map { (other.id, $0.asked, $0.minimum) } }
        while true {
            let total = contenders.reduce(Int64(0)) { $0 + $1.asked }
            guard contenders.contains(where: { $0.id == row.id }) else {
                return .pass(
                    "team \(team.name) has \(Credits(micros: left)) credits left for swarms asking more; this swarm's share "
                        + "would be below its minimum \(Credits(micros: swarm.credits.minimum)): it waits for its whole request")
            }
            guard total > left else { return .whole }
            let share = { (asked: Int64) in Int64((Double(max(left, 0)) * Double(asked) / Double(total)).rounded(.down)) }
            let dropped = Set(contenders.filter { share($0.asked) < max($0.minimum, 1) }.map(\.id))
            guard !dropped.isEmpty else { return .share(share(swarm.credits.asked)) }
            contenders.removeAll { dropped.contains($0.id) }
        }
    }

    /// What a queued swarm's job asks for and the least it starts with; nothing if its text
    /// no longer parses (it will be denied when its turn comes).
    private static func credits(_ row: QueuedSwarm) -> (asked: Int64, minimum: Int64)? {
        guard let swarm = (try? JobFile.parse(ConfigValue.parse(row.source, file: row.file)))?.swarm else { return nil }
        return (swarm.credits.micros, swarm.minimum?.micros ?? swarm.credits.micros)
    }
}

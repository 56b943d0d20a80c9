import PurserLedger
import PurserProtocol

/// The one builder of reservation requests, so that a hold's amounts, tools, holder, and
/// what analytics read of it (plugin, estimate, strategy) are filled in alike wherever a
/// hold is taken: `purser exec`'s routine, a swarm's routines and the swarm itself, a step.
extension ReserveRequest {
    /// A hold for one run of `plugin` (a routine or a step), from `parent`. `estimate`: the
    /// credits the amount came from (by default the amount itself).
    static func run(
        _ kind: NodeKind, name: String, plugin: String?, amounts: Amounts, from parent: NodeID, tools: [String],
        holder: Holder?, estimate: Credits? = nil, strategy: ReservationStrategy = .exact
    ) -> ReserveRequest {
        ReserveRequest(
            parent: parent, kind: kind, name: name, amounts: amounts.resources, tools: tools, holder: holder, plugin: plugin,
            estimate: (estimate ?? amounts.credits).micros, strategy: strategy.rawValue)
    }

    /// A swarm's hold, from its team: what its routines' holds are taken from.
    static func swarm(_ swarm: JobFile.Swarm, from team: NodeID, holder: Holder?) -> ReserveRequest {
        ReserveRequest(
            parent: team, kind: .swarm, name: swarm.name,
            amounts: Resources(credits: swarm.credits.micros, timeMs: swarm.timeMs, memoryBytes: swarm.memoryBytes),
            tools: swarm.tools, holder: holder)
    }
}

import PurserLedger
import PurserProtocol
import PurserRuntime

/// What the overview shows, read in one trip to the store's threads with the calls the API's
/// handlers make (`swarms`, `routines`, `attempts`, `hosts`, the ledger's nodes).
struct DashboardOverview: Sendable {
    /// A team's hold and what is open under it now (parents before children), and the
    /// holds of its recent swarms that closed.
    struct Team: Sendable {
        var node: Node
        var freeze: TeamFreeze?
        var open: [Node]
        var closed: [Node]
    }

    /// A swarm that has not ended, with its routines and their attempts.
    struct Active: Sendable {
        var swarm: QueuedSwarm
        var routines: [QueuedRoutine]
        var attempts: [Attempt]
    }

    var swarms: [QueuedSwarm]
    var teams: [Team]
    var active: [Active]
    var ended: [Active]
    var hosts: [HostRow]
    /// The stderr tails of recent failures, by swarm id and routine.
    var tails: [String: [String: String]]
    /// Each gateway integration's last status, as its supervisor saved it (PurserGateway's
    /// `IntegrationStatus`, about once a second while it is used), by name.
    var gateway: [(name: String, status: JSONValue)]
    /// Routines waiting for a person to approve their tools (`purser run`'s, on this store).
    var approvals: [Approval]
    var nowMs: Int64

    /// How many swarms the overview lists, and how many ended ones it shows the verdicts of.
    static let listed = 50
    static let recentEnded = 8

    static func read(fleet: any FleetStore, ledger: any LedgerStore) throws(LedgerError) -> DashboardOverview {
        let swarms = try fleet.swarms(limit: listed)
        var active: [Active] = []
        var ended: [Active] = []
        for swarm in swarms where swarm.state != "done" {
            active.append(Active(swarm: swarm, routines: try fleet.routines(swarm: swarm.id), attempts: try fleet.attempts(swarm: swarm.id)))
        }
        for swarm in swarms.filter({ $0.state == "done" }).prefix(recentEnded) {
            ended.append(Active(swarm: swarm, routines: try fleet.routines(swarm: swarm.id), attempts: []))
        }
        var teams: [Team] = []
        var seen: Set<String> = []
        for swarm in swarms where seen.insert(swarm.team).inserted {
            // A swarm still in line has no team in the ledger yet; a store that fails fails the page.
            let team: Node
            do {
                team = try ledger.team(named: swarm.team)
            } catch where error.code == .unknownTeam {
                continue
            }
            let closed = try swarms.filter { $0.team == swarm.team && $0.state == "done" }.prefix(recentEnded)
                .compactMap(\.node).map { (id) throws(LedgerError) in try ledger.node(id) }
            teams.append(Team(node: team, freeze: try ledger.freeze(of: swarm.team), open: try openBelow(team.id, ledger), closed: closed))
        }
        var tails: [String: [String: String]] = [:]
        var left = mostTails
        for swarm in active + ended where left > 0 {
            let failed = swarm.routines.filter { $0.verdict != nil && $0.verdict != "ok" }.prefix(left).map(\.name)
            left -= failed.count
            tails[swarm.swarm.id] = try stderrTails(fleet, swarm: swarm.swarm.id, of: Array(failed))
        }
        let gateway = try ledger.states().filter { $0.key.hasPrefix("gateway:") }.sorted { $0.key < $1.key }
            .map { (name: String($0.key.dropFirst(8)), status: (try? JSONParser.parse($0.value)) ?? .null) }
        return DashboardOverview(
            swarms: swarms, teams: teams, active: active, ended: ended, hosts: try fleet.hosts(), tails: tails, gateway: gateway,
            approvals: try ledger.approvals(pendingOnly: true, limit: listed), nowMs: unixMilliseconds())
    }

    /// A report holds up to 64 KiB of stderr: the overview reads this many failures' at most.
    static let mostTails = 20

    /// The end of each routine's stderr tail (its last lines, 2 KB at most), those that wrote some.
    static func stderrTails(_ fleet: any FleetStore, swarm: String, of names: [String]) throws(LedgerError) -> [String: String] {
        var tails: [String: String] = [:]
        for (name, report) in try fleet.routineReports(swarm: swarm, of: names) {
            guard let tail = (try? JSONParser.parse(report))?["stderrTail"]?.stringValue, !tail.isEmpty else { continue }
            let lines = tail.split(separator: "\n", omittingEmptySubsequences: false).suffix(20).joined(separator: "\n")
            tails[name] = String(lines.suffix(2000))
        }
        return tails
    }

    /// Every open node under `id`, depth first, parents before children.
    static func openBelow(_ id: NodeID, _ ledger: any LedgerStore, depth: Int = 0) throws(LedgerError) -> [Node] {
        guard depth < 6 else { return [] }
        var nodes: [Node] = []
        for child in try ledger.openChildren(of: id) {
            nodes.append(child)
            nodes += try openBelow(child.id, ledger, depth: depth + 1)
        }
        return nodes
    }

    /// The open hold of a running routine: a routine node of that name under the swarm's hold.
    func hold(of routine: QueuedRoutine, in swarm: QueuedSwarm) -> Node? {
        guard let team = teams.first(where: { $0.node.team == swarm.team }), let root = swarm.node else { return nil }
        let byID = Dictionary(team.open.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        return team.open.first { node in
            guard node.kind == .routine, node.name == routine.name else { return false }
            var parent = node.parent
            while let id = parent, id != root { parent = byID[id]?.parent }
            return parent == root
        }
    }
}

/// One swarm's page: its row, routines, attempts, and its hold with what is under it.
struct DashboardSwarm: Sendable {
    var swarm: QueuedSwarm
    var routines: [QueuedRoutine]
    var attempts: [Attempt]
    /// The swarm's hold, then its open holds, then its routines' closed holds.
    var nodes: [Node]
    /// The stderr tails of its routines that failed, by name.
    var tails: [String: String]
    /// Its hold by tier, as `purser run`'s report gives them: from all under its hold, not
    /// from `nodes`, which is capped.
    var tiers: [TierSummary]
    var nowMs: Int64

    /// Routines' closed holds are read one a query: a page shows this many at most.
    static let mostNodes = 200

    static func read(id: String, fleet: any FleetStore, ledger: any LedgerStore) throws(LedgerError) -> DashboardSwarm? {
        guard let swarm = try fleet.swarm(id: id) else { return nil }
        let routines = try fleet.routines(swarm: id)
        var nodes: [Node] = []
        var tiers: [TierSummary] = []
        if let root = swarm.node {
            tiers = TierSummary.tiers(of: root, in: try ledger.subtree(of: root)).tiers
            nodes.append(try ledger.node(root))
            nodes += try DashboardOverview.openBelow(root, ledger)
            let shown = Set(nodes.map(\.id))
            for id in routines.compactMap(\.node).filter({ !shown.contains($0) }).prefix(mostNodes) { nodes.append(try ledger.node(id)) }
        }
        let failed = routines.filter { $0.verdict != nil && $0.verdict != "ok" }.prefix(mostNodes).map(\.name)
        return DashboardSwarm(
            swarm: swarm, routines: routines, attempts: try fleet.attempts(swarm: id), nodes: nodes,
            tails: try DashboardOverview.stderrTails(fleet, swarm: id, of: Array(failed)), tiers: tiers, nowMs: unixMilliseconds())
    }
}

import Hummingbird
import PurserLedger
import PurserProtocol
import PurserRuntime

/// The fleet's hosts, a team's live tree and the registered plugins: `purser hosts --json`,
/// `team show --json` and `plugin list --json`, over HTTP.
struct ReadHandlers: Sendable {
    let stores: APIStores

    func hosts() async throws -> Response {
        let fleet = stores.fleet
        let hosts = try await stores.call { () throws(LedgerError) in try fleet.hosts() }
        return .json(["hosts": .array(hosts.map(\.json))])
    }

    /// The team's nodes, parents before children, as the ledger holds them now.
    func team(_ name: String) async throws -> Response {
        let ledger = stores.ledger
        let nodes = try await stores.call { () throws(LedgerError) in
            _ = try ledger.team(named: name)
            return try ledger.tree(team: name)
        }
        return .json(["team": .string(name), "nodes": .array(nodes.map(\.json))])
    }

    func plugins() async throws -> Response {
        let runtime = stores.runtime
        let records = try await stores.call(file: "") { () throws(RuntimeError) in try PluginRegistry(runtime: runtime).list() }
        return .json(["plugins": .array(records.map(\.json))])
    }
}

import Hummingbird
import Logging
import PurserGateway
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
        let (nodes, freeze) = try await stores.call { () throws(LedgerError) in
            _ = try ledger.team(named: name)
            return (try ledger.tree(team: name), try ledger.freeze(of: name))
        }
        let frozen: JSONValue = freeze.map { ["sinceMs": .number(JSONNumber($0.sinceMs)), "by": .string($0.by), "reason": .string($0.reason)] } ?? .null
        return .json(["team": .string(name), "frozen": frozen, "nodes": .array(nodes.map(\.json))])
    }

    func plugins() async throws -> Response {
        let runtime = stores.runtime
        let records = try await stores.call(file: "") { () throws(RuntimeError) in try PluginRegistry(runtime: runtime).list() }
        return .json(["plugins": .array(records.map(\.json))])
    }
}

/// `purser ledger verify` and `purser gateway status --json`, over HTTP.
extension ReadHandlers {
    /// 200 either way: the check ran; `ok` says whether every node balances.
    func verify() async throws -> Response {
        let ledger = stores.ledger
        let violations = try await stores.call { () throws(LedgerError) in try ledger.verify() }
        let listed: [JSONValue] = violations.map { ["node": .number(JSONNumber($0.node)), "message": .string($0.message)] }
        return .json(["ok": .bool(violations.isEmpty), "violations": .array(listed)])
    }

    /// What the gateways sharing this store last saved of each integration (at most a second old).
    func integrations() async throws -> Response {
        let gateway = LedgerGatewayStore(store: stores.ledger)
        let saved = await StoreThreads.shared.run { () -> Result<[String: String], any Error> in Result { try gateway.loadStates() } }
        let texts: [String: String]
        switch saved {
        case .success(let read): texts = read
        case .failure(let error):
            throw APIError(.serviceUnavailable, "store_unavailable", "the gateway's state could not be read from the store: \(error)")
        }
        // A state this version cannot read (another version's, or damaged) is left out, and said.
        var states: [IntegrationStatus] = []
        for (name, text) in texts {
            do {
                states.append(try IntegrationStatus(json: JSONParser.parse(Array(text.utf8))))
            } catch {
                Logger(label: "purser.api").warning("gateway state unreadable", metadata: ["integration": "\(name)", "error": "\(error)"])
            }
        }
        states.sort { $0.name < $1.name }
        return .json(["integrations": .array(states.map(\.json))])
    }
}

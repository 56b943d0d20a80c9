import Foundation
import PurserAPI
import PurserConfig
import PurserFleet
import PurserLedger
import PurserProtocol
import PurserRuntime

/// What `watch`, `submit --wait` and `hosts` print for a person.
enum FleetLines {
    static func show(_ event: SwarmEvent) {
        let name = event.routine ?? "swarm"
        func field(_ key: String) -> String { event.fields[key].map { $0.stringValue ?? $0.serialized() } ?? "" }
        let text: String? = switch event.kind {
        case "reserve" where event.routine == nil: "swarm: admitted by \(field("host"))"
        case "claim": "\(name): claimed by \(field("host")) (attempt \(field("attempt")))"
        case "grant": "\(name): granted \(field("credits")) credits"
        case "queue": "\(name): waiting for budget"
        case "await_approval", "approval": approval(event)
        case "cache_hit": "\(name): ok from the cache (no spawn, no credits)"
        case "deny": "\(name): denied (\(field("message")))"
        case "retry": "\(name): retrying"
        case "requeue": "\(name): back in line (its host drained)"
        case "host_lost": "\(name): its host \(field("host")) was lost; back in line"
        case "verdict": "\(name): \(field("verdict")) — used \(field("used")), returned \(field("returned"))"
        case "done": "swarm: \(field("verdict"))"
        default: nil
        }
        // Names and messages come from job files and workers: made inert on the terminal.
        if let text { printError("[watch] " + WorkerText.line(text)) }
    }

    /// A routine's wait for a person, and the decision: the same lines as `purser run`'s.
    static func approval(_ event: SwarmEvent) -> String {
        let name = event.routine ?? "swarm"
        func field(_ key: String) -> String { event.fields[key]?.stringValue ?? "" }
        guard event.kind == "await_approval" else { return "\(name): approval \(field("decision")) by \(field("by"))" }
        return "\(name): awaiting approval \(field("approval")) for "
            + "\(event.fields["tools"]?.arrayValue?.compactMap(\.stringValue).joined(separator: ",") ?? "") "
            + "(purser approve ID, or purser deny ID --reason …; denied after \(field("timeout")))"
    }

    /// The end of a swarm: its report as `watch --json` prints it (from the store, or from
    /// a server's `end` event), so that both ways print the same. The job file's names and
    /// the routines' messages are made inert: the file and the workers may come from anyone.
    static func print(report: JSONValue) {
        func text(_ key: String) -> String { WorkerText.line(report[key]?.stringValue ?? "") }
        Swift.print("swarm \(text("swarm")) (\(text("swarmId"))) on team \(text("team")): \(text("verdict"))")
        guard let routines = report["routines"]?.arrayValue else {
            if let message = report["message"]?.stringValue { Swift.print("  \(WorkerText.line(message))") }
            return
        }
        Swift.print("")
        Swift.print(row(["routine", "verdict", "attempts", "host", "message"]))
        for routine in routines {
            func text(_ key: String) -> String { WorkerText.line(routine[key].map { $0.stringValue ?? $0.serialized() } ?? "") }
            Swift.print(row([text("name"), text("verdict"), text("attempts"), text("host"), WorkerText.line(routine["message"]?.stringValue ?? "")]))
        }
        let lost = (report["attempts"]?.arrayValue ?? []).filter { $0["verdict"]?.stringValue == "host_lost" }
        if !lost.isEmpty { Swift.print("\nattempts lost with their host: \(lost.count)") }
        if let used = report["used"], let returned = report["returned"] {
            Swift.print("\nswarm used \(used.serialized()), returned \(returned.serialized())")
        }
        let tiers = (report["tiers"]?.arrayValue ?? []).compactMap(TierSummary.init(json:))
        if !tiers.isEmpty {
            Swift.print("")
            SwarmTables.printTiers(tiers)
        }
    }

    /// The hosts as `GET /v1/hosts` and `hosts --json` give them.
    static func print(hosts: [JSONValue], json: Bool) {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        if json {
            Swift.print(JSONValue.array(hosts).serialized())
            return
        }
        Swift.print(row(["host", "state", "slots", "running", "heartbeat", "version"]))
        for host in hosts {
            func text(_ key: String) -> String { host[key].map { $0.stringValue ?? $0.serialized() } ?? "" }
            let heartbeat = host["heartbeatMs"]?.numberValue?.int64 ?? 0
            Swift.print(row([text("name"), text("state"), text("slots"), text("running"), Units.formatDuration(max(now - heartbeat, 0)) + " ago", text("version")]))
            if !text("note").isEmpty { Swift.print("  " + text("note")) }
        }
    }

    private static func row(_ cells: [String]) -> String { SwarmTables.row(cells) }
}

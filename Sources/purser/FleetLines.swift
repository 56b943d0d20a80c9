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
        case "cache_hit": "\(name): ok from the cache (no spawn, no credits)"
        case "deny": "\(name): denied (\(field("message")))"
        case "retry": "\(name): retrying"
        case "requeue": "\(name): back in line (its host drained)"
        case "host_lost": "\(name): its host \(field("host")) was lost; back in line"
        case "verdict": "\(name): \(field("verdict")) — used \(field("used")), returned \(field("returned"))"
        case "done": "swarm: \(field("verdict"))"
        default: nil
        }
        if let text { printError("[watch] " + text) }
    }

    static func print(_ view: FleetReportView) {
        let swarm = view.swarm
        // The job file's names, made inert: the file may come from anyone.
        Swift.print("swarm \(WorkerText.line(swarm.name)) (\(swarm.id)) on team \(WorkerText.line(swarm.team)): \(view.verdict)")
        if let message = swarm.message, view.report == nil { Swift.print("  \(message)") }
        guard let report = view.report else { return }
        Swift.print("")
        Swift.print(row(["routine", "verdict", "attempts", "host", "message"]))
        for routine in report["routines"]?.arrayValue ?? [] {
            func text(_ key: String) -> String { routine[key].map { $0.stringValue ?? $0.serialized() } ?? "" }
            Swift.print(row([text("name"), text("verdict"), text("attempts"), text("host"), routine["message"]?.stringValue ?? ""]))
        }
        let lost = (report["attempts"]?.arrayValue ?? []).filter { $0["verdict"]?.stringValue == "host_lost" }
        if !lost.isEmpty { Swift.print("\nattempts lost with their host: \(lost.count)") }
        if let used = report["used"], let returned = report["returned"] {
            Swift.print("\nswarm used \(used.serialized()), returned \(returned.serialized())")
        }
    }

    static func print(_ hosts: [HostRow], json: Bool) {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        if json {
            Swift.print(JSONValue.array(hosts.map(\.json)).serialized())
            return
        }
        Swift.print(row(["host", "state", "slots", "running", "heartbeat", "version"]))
        for host in hosts {
            Swift.print(row([
                host.name, host.state, "\(host.slots)", "\(host.running)", Units.formatDuration(max(now - host.heartbeatMs, 0)) + " ago",
                host.version,
            ]))
            if !host.note.isEmpty { Swift.print("  " + host.note) }
        }
    }

    private static func row(_ cells: [String]) -> String {
        cells.enumerated().map { $0.element.padding(toLength: $0.offset == 0 ? 14 : 12, withPad: " ", startingAt: 0) }.joined(separator: " ")
    }
}

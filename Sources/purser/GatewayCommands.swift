import ArgumentParser
import Foundation
import PurserConfig
import PurserGateway
import PurserProtocol
import PurserRuntime

struct GatewayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway", abstract: "Check gateway configs and see the integrations' state.",
        subcommands: [Check.self, Status.self])

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate a gateway config; name the file, line and field of anything wrong (exit 2).")

        @Argument(help: "The config file (YAML or JSON).")
        var config: String

        func run() throws {
            let parsed: GatewayConfig
            do {
                parsed = try GatewayConfig.load(path: config, environment: ProcessInfo.processInfo.environment)
            } catch {
                throw CommandLineError(message: error.description)
            }
            print("\(config): ok, \(parsed.integrations.count) integration\(parsed.integrations.count == 1 ? "" : "s")")
            for integration in parsed.integrations {
                var notes = [integration.base.description]
                if let limit = integration.rateLimit { notes.append("rate \(limit.text)") }
                for quota in integration.quotas {
                    notes.append("quota per \(quota.window.rawValue): " + [
                        quota.requests.map { "\($0) requests" }, quota.credits.map { "\($0) credits" },
                    ].compactMap { $0 }.joined(separator: ", "))
                }
                notes.append("max cost \(integration.cost.max)")
                if let cache = integration.cache { notes.append("cache \(Units.formatDuration(cache.ttlMs))") }
                if let tunnel = integration.tunnel {
                    notes.append("HTTPS tunnels: at most \(Units.formatSize(tunnel.maxBytes)), max cost \(tunnel.max)")
                }
                print("  \(integration.name): " + notes.joined(separator: "; "))
            }
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Per integration: limiter, quota used in the current windows, breaker, cache hit rate.",
            discussion: "Shows what supervisors sharing this store last saved (at most a second old while they run).")

        @OptionGroup var ledgerOptions: LedgerOptions

        @Flag(help: "Print JSON.")
        var json = false

        func run() throws {
            let store = LedgerGatewayStore(store: try ledgerOptions.store())
            let states: [IntegrationStatus]
            do {
                states = try store.loadStates().values.compactMap { text in
                    try? IntegrationStatus(json: JSONParser.parse(Array(text.utf8)))
                }.sorted { $0.name < $1.name }
            } catch {
                // Reading the store failed: the supervisor's failure, not the command's input.
                throw SupervisorFailure(message: "gateway status: \(error)")
            }
            if json {
                print(JSONValue.array(states.map(\.json)).serialized())
                return
            }
            if states.isEmpty { print("no gateway has saved any state in this store yet") }
            for state in states { print(Self.describe(state)) }
        }

        private static func describe(_ state: IntegrationStatus) -> String {
            var lines = ["\(state.name)  \(state.base)"]
            if let rate = state.rateLimit {
                lines.append("  limiter: \(rate); next free slot in \(state.limiterAheadMs ?? 0) ms")
            }
            lines.append("  breaker: \(state.breaker) (\(state.consecutiveFailures) failures in a row); in flight: \(state.inFlight)")
            for quota in state.quotas {
                let requests = quota.maxRequests.map { "\(quota.usedRequests)/\($0) requests" }
                let credits = quota.maxCredits.map { "\(quota.usedCredits)/\($0) credits" }
                lines.append("  quota per \(quota.per) (\(quota.window)): " + [requests, credits].compactMap { $0 }.joined(separator: ", "))
            }
            let rate = state.cacheHitRate.map { "\(Int(($0 * 100).rounded()))%" } ?? "-"
            lines.append(
                "  calls: \(state.calls) (\(state.upstreamCalls) upstream, \(state.cacheHits) from cache, hit rate \(rate)), "
                    + "failed \(state.failures), refused \(state.refused.values.reduce(0, +)), credits \(state.credits)")
            return lines.joined(separator: "\n")
        }
    }
}

import PurserProtocol

/// The overview's gateway integrations: what each one's supervisor last saved of its
/// limiter, breaker, quota windows and cache (read from the ledger's saved states; the
/// gateway writes them about once a second while it is used).
struct GatewaySection {
    let integrations: [(name: String, status: JSONValue)]
    let nowMs: Int64

    var html: String {
        let rows = integrations.map { name, status in
            let number = { (key: String) in Table.num(status[key]?.numberValue.map { "\($0)" } ?? "") }
            let hitRate = status["cacheHitRate"]?.numberValue.map { "\($0)" } ?? ""
            let saved = status["savedAtMs"]?.numberValue?.int64.map { Table.age($0, now: nowMs) } ?? ""
            return Table.row([
                HTML.escape(name), Table.state(status["breaker"]?.stringValue ?? ""), HTML.escape(status["rateLimit"]?.stringValue ?? ""),
                number("inFlight"), number("calls"), number("upstreamCalls"), Table.num(hitRate), number("failures"),
                HTML.escape(Self.refused(status["refused"])), Self.quotas(status["quotas"]), Table.num(saved),
            ], attributes: "data-integration=\"\(HTML.escape(name))\"")
        }
        return Table.section(
            "Gateway integrations", id: "gateway",
            head: ["Integration", "Breaker", "Rate limit", "In flight", "Calls", "Upstream", "Cache hit rate", "Failures", "Refused", "Quotas", "Saved"],
            rows: rows, empty: "No integration has been used.")
    }

    /// `reason n` for each refusal reason.
    private static func refused(_ value: JSONValue?) -> String {
        guard let object = value?.objectValue else { return "" }
        return object.keys.sorted().map { "\($0) \(object[$0]?.numberValue.map { "\($0)" } ?? "?")" }.joined(separator: ", ")
    }

    /// One line a quota window: `per window: used/max requests, used/max credits`.
    private static func quotas(_ value: JSONValue?) -> String {
        let lines = (value?.arrayValue ?? []).map { quota -> String in
            let figure = { (used: String, most: String) -> String in
                let usedText = quota[used]?.numberValue.map { "\($0)" } ?? "0"
                return quota[most]?.numberValue.map { "\(usedText)/\($0)" } ?? usedText
            }
            let place = "\(quota["per"]?.stringValue ?? "") \(quota["window"]?.stringValue ?? "")"
            return "\(place): \(figure("usedRequests", "maxRequests")) requests, \(figure("usedCredits", "maxCredits")) credits"
        }
        return lines.isEmpty ? "" : "<pre class=\"tail\">\(HTML.escape(lines.joined(separator: "\n")))</pre>"
    }
}

public import PurserProtocol

/// One integration as `purser gateway status` shows it.
public struct IntegrationStatus: Sendable, Hashable {
    public var name: String
    public var base: String
    public var rateLimit: String?
    /// How far the limiter's next free slot is ahead of now: 0 when a call would pass.
    public var limiterAheadMs: Int64?
    public var inFlight: Int
    public var breaker: String
    public var consecutiveFailures: Int
    public var quotas: [QuotaStatus]
    public var calls: Int
    public var upstreamCalls: Int
    public var cacheHits: Int
    public var failures: Int
    public var refused: [String: Int]
    public var credits: Credits
    public var savedAtMs: Int64

    public var cacheHitRate: Double? { calls - refused.values.reduce(0, +) > 0 ? Double(cacheHits) / Double(cacheHits + upstreamCalls) : nil }

    public var json: JSONValue {
        [
            "name": .string(name), "base": .string(base), "rateLimit": rateLimit.map(JSONValue.string) ?? .null,
            "limiterAheadMs": limiterAheadMs.map { .number(JSONNumber($0)) } ?? .null,
            "inFlight": .number(JSONNumber(Int64(inFlight))), "breaker": .string(breaker),
            "consecutiveFailures": .number(JSONNumber(Int64(consecutiveFailures))),
            "quotas": .array(quotas.map(\.json)), "calls": .number(JSONNumber(Int64(calls))),
            "upstreamCalls": .number(JSONNumber(Int64(upstreamCalls))), "cacheHits": .number(JSONNumber(Int64(cacheHits))),
            "cacheHitRate": cacheHitRate.map { .number(JSONNumber(text: String(($0 * 1000).rounded() / 1000)) ?? JSONNumber(0)) } ?? .null,
            "failures": .number(JSONNumber(Int64(failures))),
            "refused": .object(refused.mapValues { .number(JSONNumber(Int64($0))) }), "credits": credits.json,
            "savedAtMs": .number(JSONNumber(savedAtMs)),
        ]
    }

    public init(json: JSONValue) throws(ProtocolError) {
        let fields = try Fields(json, path: "status")
        name = try fields.string("name")
        base = try fields.string("base")
        rateLimit = try fields.optionalString("rateLimit")
        limiterAheadMs = try fields.optionalNumber("limiterAheadMs")?.int64
        inFlight = Int(try fields.int("inFlight"))
        breaker = try fields.string("breaker")
        consecutiveFailures = Int(try fields.int("consecutiveFailures"))
        var quotas: [QuotaStatus] = []
        if case .array(let items)? = fields.object["quotas"] {
            for item in items { quotas.append(try QuotaStatus(json: item)) }
        }
        self.quotas = quotas
        calls = Int(try fields.int("calls"))
        upstreamCalls = Int(try fields.int("upstreamCalls"))
        cacheHits = Int(try fields.int("cacheHits"))
        failures = Int(try fields.int("failures"))
        var refused: [String: Int] = [:]
        for (reason, count) in try fields.nested("refused").object { refused[reason] = Int(count.numberValue?.int64 ?? 0) }
        self.refused = refused
        credits = try fields.credits("credits")
        savedAtMs = try fields.int("savedAtMs")
    }

    init(
        name: String, base: String, rateLimit: String?, limiterAheadMs: Int64?, inFlight: Int, breaker: String,
        consecutiveFailures: Int, quotas: [QuotaStatus], calls: Int, upstreamCalls: Int, cacheHits: Int, failures: Int,
        refused: [String: Int], credits: Credits, savedAtMs: Int64
    ) {
        self.name = name
        self.base = base
        self.rateLimit = rateLimit
        self.limiterAheadMs = limiterAheadMs
        self.inFlight = inFlight
        self.breaker = breaker
        self.consecutiveFailures = consecutiveFailures
        self.quotas = quotas
        self.calls = calls
        self.upstreamCalls = upstreamCalls
        self.cacheHits = cacheHits
        self.failures = failures
        self.refused = refused
        self.credits = credits
        self.savedAtMs = savedAtMs
    }
}

public struct QuotaStatus: Sendable, Hashable {
    public var per: String
    public var window: String
    public var maxRequests: Int64?
    public var maxCredits: Credits?
    public var usedRequests: Int64
    public var usedCredits: Credits

    init(quota: Quota, window: String, used: QuotaUsage) {
        per = quota.window.rawValue
        self.window = window
        maxRequests = quota.requests
        maxCredits = quota.credits
        usedRequests = used.requests
        usedCredits = Credits(micros: used.credits)
    }

    init(json: JSONValue) throws(ProtocolError) {
        let fields = try Fields(json, path: "quota")
        per = try fields.string("per")
        window = try fields.string("window")
        maxRequests = try fields.optionalNumber("maxRequests")?.int64
        maxCredits = try fields.optionalNumber("maxCredits").map { (number) throws(ProtocolError) in try Credits(number, field: "maxCredits") }
        usedRequests = try fields.int("usedRequests")
        usedCredits = try fields.credits("usedCredits")
    }

    var json: JSONValue {
        [
            "per": .string(per), "window": .string(window),
            "maxRequests": maxRequests.map { .number(JSONNumber($0)) } ?? .null, "maxCredits": maxCredits?.json ?? .null,
            "usedRequests": .number(JSONNumber(usedRequests)), "usedCredits": usedCredits.json,
        ]
    }
}

public import PurserConfig
public import PurserProtocol

/// What an MCP server's manifest says a tool call costs: a fixed price per call, and a price
/// per KiB of its result (the `tools/call` result as JSON, started KiB counted whole). The
/// supervisor charges it, not the bridge: the bridge runs inside the walls beside the server
/// and is believed no more than a worker. It is charged for a call the server answered
/// (verdict `ok` or `error`), on top of what the run's gateway calls cost, and never past
/// the run's hold.
public struct ToolPrice: Sendable, Hashable {
    public var perCall = Credits.zero
    public var perKiB = Credits.zero

    public init(perCall: Credits = .zero, perKiB: Credits = .zero) {
        self.perCall = perCall
        self.perKiB = perKiB
    }

    public func charge(answered: Bool, result: JSONValue?) -> Credits {
        guard answered else { return .zero }
        let bytes = Int64(result?.serialized().utf8.count ?? 0)
        let kib = (bytes + 1023) / 1024
        return Credits(micros: perCall.micros + perKiB.micros * kib)
    }

    static func load(_ value: ConfigValue) throws(ConfigError) -> ToolPrice {
        let fields = try value.mapping(allowed: ["credits", "perKiB"])
        return ToolPrice(perCall: try fields["credits"]?.credits() ?? .zero, perKiB: try fields["perKiB"]?.credits() ?? .zero)
    }

    init(stored: JSONValue) {
        perCall = stored["credits"]?.numberValue.flatMap { try? Credits($0, field: "credits") } ?? .zero
        perKiB = stored["perKiB"]?.numberValue.flatMap { try? Credits($0, field: "perKiB") } ?? .zero
    }

    var json: JSONValue { ["credits": perCall.json, "perKiB": perKiB.json] }
}

/// A manifest's `mcp` section, for a server registered with `purser mcp add`.
public struct MCPManifest: Sendable, Hashable {
    /// How long the server may take to start and answer `initialize` (Python servers take
    /// seconds on a busy host).
    public var startupMs: Int64 = 15_000
    /// Each tool's price; `default` for the tools not named.
    public var prices: [String: ToolPrice] = [:]
    public var defaultPrice = ToolPrice()

    public init() {}

    public func price(_ tool: String) -> ToolPrice { prices[tool] ?? defaultPrice }

    static func load(_ value: ConfigValue) throws(ConfigError) -> MCPManifest {
        let fields = try value.mapping(allowed: ["startupTimeout", "tools", "default"])
        var manifest = MCPManifest()
        if let startup = fields["startupTimeout"] { manifest.startupMs = try startup.duration() }
        if let price = fields["default"] { manifest.defaultPrice = try ToolPrice.load(price) }
        if let tools = fields["tools"] {
            for (name, price) in try tools.mapping().entries { manifest.prices[name] = try ToolPrice.load(price) }
        }
        return manifest
    }

    init(stored: JSONValue) {
        startupMs = stored["startupMs"]?.numberValue?.int64 ?? 15_000
        defaultPrice = stored["default"].map(ToolPrice.init(stored:)) ?? ToolPrice()
        for (name, price) in stored["tools"]?.objectValue ?? [:] { prices[name] = ToolPrice(stored: price) }
    }

    var json: JSONValue {
        [
            "startupMs": .number(JSONNumber(startupMs)), "default": defaultPrice.json,
            "tools": .object(prices.mapValues(\.json)),
        ]
    }
}

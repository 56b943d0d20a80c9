public import PurserConfig
public import PurserProtocol

/// An integration's `tunnel:`: whether a run's egress may open HTTPS tunnels (`CONNECT`) to
/// its host and port, and what one costs and may carry. Without it, none is opened.
public struct TunnelPolicy: Sendable, Hashable {
    public var perConnection = Credits.zero
    /// Charged per MiB through the tunnel, both ways together, by the started byte.
    public var perMiB = Credits.zero
    /// Bytes through the tunnel, both ways together, before it is closed.
    public var maxBytes: Int64 = 100 << 20
    /// A tunnel with no byte either way for this long is closed.
    public var idleTimeoutMs: Int64 = 60_000

    static let mebibyte: Int64 = 1 << 20

    public init() {}

    init(_ value: ConfigValue, base: BaseURL) throws(ConfigError) {
        let fields = try value.mapping(allowed: ["perConnection", "perMiB", "maxBytes", "idleTimeout"])
        guard base.scheme == "https" else { throw value.error("a tunnel needs an https:// baseURL (tunnels carry TLS only)") }
        perConnection = try fields["perConnection"]?.credits() ?? .zero
        perMiB = try fields["perMiB"]?.credits() ?? .zero
        // Below 2^40 micro-credits: `charge` multiplies it by less than 2^20 bytes.
        guard perMiB <= Credits(whole: 1_099_511) else { throw value.error("perMiB: at most 1,099,511 credits") }
        if let size = fields["maxBytes"] {
            maxBytes = try size.size()
            guard maxBytes > 0 && maxBytes <= 1 << 40 else { throw size.error("must be between 1 byte and 1TiB") }
        }
        if let idle = fields["idleTimeout"] {
            idleTimeoutMs = try idle.duration()
            guard idleTimeoutMs > 0 && idleTimeoutMs <= 3_600_000 else { throw idle.error("must be above 0 and at most 1h") }
        }
    }

    /// What `bytes` through the tunnel cost on top of the connection, rounded up to the micro-credit.
    public func charge(bytes: Int64) -> Credits {
        let whole = bytes / Self.mebibyte
        let rest = bytes % Self.mebibyte
        let (product, overflow) = whole.multipliedReportingOverflow(by: perMiB.micros)
        guard !overflow else { return Credits(micros: .max) }
        let part = (rest * perMiB.micros + Self.mebibyte - 1) / Self.mebibyte
        return Credits(micros: product) + Credits(micros: part)
    }

    /// The most a tunnel can cost: what its quota windows take when it opens.
    public var max: Credits { perConnection + charge(bytes: maxBytes) }
}

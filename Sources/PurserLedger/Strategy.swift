/// How much to reserve for an estimate.
public enum ReservationStrategy: String, Sendable, CaseIterable {
    /// 120% of the estimate: the default.
    case conservative
    /// 105% of the estimate.
    case optimistic
    /// From this plugin's history; see `adaptiveAmount`.
    case adaptive
    /// The estimate as given.
    case exact

    /// Past runs the adaptive strategy looks at, and how many it needs before trusting them.
    public static let adaptiveWindow = 50
    public static let adaptiveMinimumSamples = 10

    public func amount(for estimate: Int64, history: [Node] = []) -> Int64 {
        switch self {
        case .conservative: Self.scaled(estimate, by: 1.20)
        case .optimistic: Self.scaled(estimate, by: 1.05)
        case .exact: estimate
        case .adaptive: Self.adaptiveAmount(for: estimate, history: history) ?? Self.scaled(estimate, by: 1.20)
        }
    }

    /// The rule: over the plugin's last 50 settled runs that had an estimate, take the ratio
    /// used ÷ estimate of each; with at least 10 of them, reserve the estimate times the
    /// 90th percentile of those ratios, plus a 10% margin. With fewer, nil (conservative).
    /// Wrong estimates are then corrected in both directions: a plugin that always
    /// over-estimates gets less held idle, and one that under-estimates stops running out.
    public static func adaptiveAmount(for estimate: Int64, history: [Node]) -> Int64? {
        let ratios = history.prefix(adaptiveWindow).compactMap { node -> Double? in
            guard let planned = node.estimate, planned > 0 else { return nil }
            return Double(node.consumed.credits) / Double(planned)
        }
        guard ratios.count >= adaptiveMinimumSamples else { return nil }
        let sorted = ratios.sorted()
        let index = min(sorted.count - 1, Int((Double(sorted.count) * 0.9).rounded(.up)) - 1)
        return scaled(estimate, by: max(sorted[max(index, 0)], 0) * 1.10)
    }

    static func scaled(_ value: Int64, by factor: Double) -> Int64 {
        let result = (Double(value) * factor).rounded(.up)
        return result >= Double(Int64.max) ? Int64.max : Int64(result)
    }
}

/// How well reservations fit what was used, over settled nodes (credits).
public struct Analytics: Sendable, Hashable {
    /// Mean over nodes with an estimate of min(estimate, used) ÷ max(estimate, used):
    /// 1 when every estimate was exact.
    public var reservationAccuracy: Double
    /// Used ÷ reserved, summed over the nodes.
    public var utilizationEfficiency: Double
    /// Returned ÷ reserved, summed over the nodes.
    public var returnRate: Double
    public var nodes: Int

    public init(_ nodes: [Node]) {
        self.nodes = nodes.count
        let reserved = nodes.reduce(0.0) { $0 + Double($1.cap.credits) }
        let used = nodes.reduce(0.0) { $0 + Double($1.consumed.credits) }
        let returned = nodes.reduce(0.0) { $0 + Double($1.returned.credits) }
        utilizationEfficiency = reserved > 0 ? used / reserved : 0
        returnRate = reserved > 0 ? returned / reserved : 0
        let scores = nodes.compactMap { node -> Double? in
            guard let estimate = node.estimate else { return nil }
            let actual = node.consumed.credits
            let high = max(estimate, actual)
            return high == 0 ? 1 : Double(min(estimate, actual)) / Double(high)
        }
        reservationAccuracy = scores.isEmpty ? 0 : scores.reduce(0, +) / Double(scores.count)
    }
}

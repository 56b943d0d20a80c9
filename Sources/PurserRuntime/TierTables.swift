public import PurserLedger
public import PurserProtocol
import PurserConfig

/// A swarm's tiers and the two tables of them that `purser run` prints: computed and
/// written once, for its report, `purser watch`'s and the dashboard's swarm page.
extension TierSummary {
    /// The tiers under `swarm` in `tree` (its nodes, parents before children): the swarm's
    /// hold; the routines' holds, under it or under the chunks fleet hosts cut from it (a
    /// chunk is a hold of kind swarm); their steps', when there are any. Also the routines'
    /// nodes, for the report's analytics.
    public static func tiers(of swarm: NodeID, in tree: [Node]) -> (tiers: [TierSummary], routines: [Node]) {
        var chunks: Set<NodeID> = [swarm]
        var routines: [Node] = []
        var below: Set<NodeID> = []
        var steps: [Node] = []
        // Parents first: one pass finds chunks before their routines, steps of steps too.
        for node in tree {
            guard let parent = node.parent else { continue }
            if chunks.contains(parent) {
                if node.kind == .swarm { chunks.insert(node.id) } else {
                    routines.append(node)
                    below.insert(node.id)
                }
            } else if below.contains(parent), node.kind == .step {
                steps.append(node)
                below.insert(node.id)
            }
        }
        let tiers = [TierSummary(tier: "swarm", nodes: tree.filter { $0.id == swarm }), TierSummary(tier: "routine", nodes: routines)]
            + (steps.isEmpty ? [] : [TierSummary(tier: "step", nodes: steps)])
        return (tiers, routines)
    }

    /// A tier as its `json` wrote it (a report kept in the store); nil if it is not one.
    public init?(json: JSONValue) {
        func amounts(_ key: String) -> Resources? {
            guard let value = json[key], let number = value["credits"]?.numberValue, let credits = try? Credits(number, field: key),
                let timeMs = value["timeMs"]?.numberValue?.int64, let memory = value["memoryBytes"]?.numberValue?.int64 else { return nil }
            return Resources(credits: credits.micros, timeMs: timeMs, memoryBytes: memory)
        }
        guard let tier = json["tier"]?.stringValue, let nodes = json["nodes"]?.numberValue?.int64,
            let reserved = amounts("reserved"), let used = amounts("used"), let returned = amounts("returned") else { return nil }
        self.tier = tier
        self.nodes = Int(nodes)
        self.reserved = reserved
        self.used = used
        self.returned = returned
    }

    /// The first table: credits reserved, used and returned, and the time and peak memory used.
    public static let usageHead = ["tier", "nodes", "reserved", "used", "returned", "time used", "peak memory"]
    public var usageCells: [String] {
        [
            tier, "\(nodes)", "\(Credits(micros: reserved.credits))", "\(Credits(micros: used.credits))",
            "\(Credits(micros: returned.credits))", Units.formatDuration(used.timeMs), Units.formatSize(used.memoryBytes),
        ]
    }

    /// The second: the time and memory held, and what of them went back.
    public static let holdHead = ["tier", "time held", "returned", "memory held", "returned"]
    public var holdCells: [String] {
        [
            tier, Units.formatDuration(reserved.timeMs), Units.formatDuration(returned.timeMs), Units.formatSize(reserved.memoryBytes),
            Units.formatSize(returned.memoryBytes),
        ]
    }

    /// Both tables: each its head and a row of cells a tier.
    public static func tables(_ tiers: [TierSummary]) -> [(head: [String], rows: [[String]])] {
        [(usageHead, tiers.map(\.usageCells)), (holdHead, tiers.map(\.holdCells))]
    }
}

/// The invariants `purser ledger verify` checks, over a snapshot of every node.
enum LedgerInvariant {
    static func check(_ nodes: [Node]) -> [Violation] {
        var violations: [Violation] = []
        var children: [NodeID: [Node]] = [:]
        for node in nodes { if let parent = node.parent { children[parent, default: []].append(node) } }
        let byID = Dictionary(nodes.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        for node in nodes {
            func fail(_ message: String) { violations.append(Violation(node: node.id, message: message)) }
            let open = (children[node.id] ?? []).filter(\.isOpen)
            for (name, value) in [("available", node.available), ("reserved", node.reserved), ("consumed", node.consumed),
                                  ("returned", node.returned)] where !value.isNonNegative {
                fail("\(name) is negative: \(value)")
            }
            if node.isOpen {
                let c = node.cap, a = node.available, r = node.reserved, u = node.consumed
                if c.credits != a.credits + r.credits + u.credits {
                    fail("credits: cap \(c.credits) ≠ available \(a.credits) + reserved \(r.credits) + consumed \(u.credits)")
                }
                if c.timeMs != a.timeMs + r.timeMs + u.timeMs {
                    fail("time: cap \(c.timeMs) ≠ available \(a.timeMs) + reserved \(r.timeMs) + consumed \(u.timeMs)")
                }
                if c.memoryBytes != a.memoryBytes + r.memoryBytes {
                    fail("memory: cap \(c.memoryBytes) ≠ available \(a.memoryBytes) + reserved \(r.memoryBytes)")
                }
                let held = open.reduce(Resources.zero) { sum, child in
                    Resources(credits: sum.credits + child.cap.credits, timeMs: sum.timeMs + child.cap.timeMs,
                              memoryBytes: sum.memoryBytes + child.cap.memoryBytes)
                }
                if held != r { fail("reserved \(r) ≠ what its open children hold \(held)") }
            } else {
                if node.available != .zero || node.reserved != .zero { fail("closed, yet holds \(node.available) available, \(node.reserved) reserved") }
                if node.cap.credits != node.consumed.credits + node.returned.credits || node.cap.timeMs != node.consumed.timeMs + node.returned.timeMs {
                    fail("closed: cap \(node.cap) ≠ used \(node.consumed) + returned \(node.returned)")
                }
                if !open.isEmpty { fail("closed with open children \(open.map(\.id))") }
            }
            if let parentID = node.parent, let parent = byID[parentID] {
                let missing = parent.missingTools(node.tools)
                if !missing.isEmpty { fail("tools \(missing.sorted()) not among its parent's") }
                if node.isOpen && !parent.isOpen { fail("open under closed parent \(parentID)") }
            }
            if node.kind == .team {
                // A run sits in a seat of its parent when that hold has seats; the hold took them from the team.
                let members = nodes.filter { $0.team == node.name && $0.isOpen }
                let runs = members.filter { $0.kind.runsWorker && $0.parent.flatMap { byID[$0] }?.hasSeats != true }.count
                let held = members.filter(\.hasSeats).reduce(Int64(0)) { $0 + $1.workersCap! }
                if node.workersInUse != Int64(runs) + held {
                    fail("workers in use \(node.workersInUse) ≠ open routines and steps \(runs) + seats held below \(held)")
                }
            } else if node.hasSeats && node.isOpen {
                let sitting = open.filter(\.kind.runsWorker).count
                if node.workersInUse != Int64(sitting) { fail("seats in use \(node.workersInUse) ≠ open runs under it \(sitting)") }
            }
        }
        return violations
    }
}

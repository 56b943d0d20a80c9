import PurserConfig
import PurserLedger
import PurserProtocol

/// Tables and cells of the dashboard's pages. Cells are HTML already: the callers escape
/// what they put in (`HTML.escape`), and these helpers escape what they are given as text.
enum Table {
    static func section(_ title: String, id: String, head: [String], rows: [String], empty: String, note: String = "") -> String {
        let body = rows.isEmpty
            ? "<tr><td class=\"empty\" colspan=\"\(head.count)\">\(HTML.escape(empty))</td></tr>" : rows.joined(separator: "\n")
        let heads = head.map { "<th>\(HTML.escape($0))</th>" }.joined()
        return "<section id=\"\(id)\"><h2>\(HTML.escape(title))</h2>\(note)<table><thead><tr>\(heads)</tr></thead><tbody>\n\(body)\n</tbody></table></section>"
    }

    static func row(_ cells: [String], attributes: String = "") -> String {
        let opening = attributes.isEmpty ? "<tr>" : "<tr \(attributes)>"
        return opening + cells.map { $0.hasPrefix("<td") ? $0 : "<td>\($0)</td>" }.joined() + "</tr>"
    }

    static func num(_ text: String) -> String { "<td class=\"num\">\(HTML.escape(text))</td>" }
    static func link(_ path: String, _ text: String) -> String { "<a href=\"\(HTML.escape(path))\">\(HTML.escape(text))</a>" }
    /// A worker's pid on its host: blank until the host's first heartbeat with it.
    static func pid(_ pid: Int32?) -> String { "<td class=\"num pid\">\(pid.map { String($0) } ?? "")</td>" }

    /// A memory figure, with its bytes in `data-bytes` for a script or a test.
    static func memory(_ bytes: Int64?) -> String {
        guard let bytes else { return "<td class=\"num memory\"></td>" }
        return "<td class=\"num memory\" data-bytes=\"\(bytes)\">\(HTML.escape(Units.formatSize(bytes)))</td>"
    }

    static func state(_ state: String) -> String { "<td class=\"state\">\(HTML.escape(state))</td>" }

    static func verdict(_ verdict: String?) -> String {
        guard let verdict else { return "<td class=\"verdict\"></td>" }
        return "<td class=\"verdict verdict-\(HTML.segment(verdict))\">\(HTML.escape(verdict))</td>"
    }

    /// A message or a stderr tail: kept as written (lines and all), escaped, scrollable.
    static func message(_ text: String?, class name: String = "message") -> String {
        guard let text, !text.isEmpty else { return "<td class=\"\(name)\"></td>" }
        return "<td class=\"\(name)\"><pre class=\"tail\">\(HTML.escape(text))</pre></td>"
    }

    static let nodeHead = ["Hold", "Kind", "Credits", "Cap", "Available", "Reserved", "Used", "Returned", "State", ""]
    static let legend = "<p class=\"legend\"><span class=\"used\">used</span><span class=\"reserved\">reserved</span><span class=\"returned\">returned</span></p>"

    /// A hold's row: its bar and its credits, as `purser team show --json` gives them.
    static func node(_ node: Node, label: String, depth: Int, action: String = "") -> String {
        let credits = { (micros: Int64, part: String) in "<td class=\"num \(part)\">\(Credits(micros: micros))</td>" }
        return row([
            label, HTML.escape(node.kind.rawValue),
            HTML.bar(cap: node.cap.credits, used: node.consumed.credits, reserved: node.reserved.credits, returned: node.returned.credits),
            credits(node.cap.credits, "cap"), credits(node.available.credits, "available"), credits(node.reserved.credits, "reserved"),
            credits(node.consumed.credits, "consumed"), credits(node.returned.credits, "returned"),
            HTML.escape(node.isOpen ? "open" : node.outcome ?? "closed"), action,
        ], attributes: "data-node=\"\(node.id)\" class=\"depth\(min(depth, 3))\"")
    }

    /// Each node's depth below `root`, for nodes listed parents first; a node whose parent
    /// is not listed (a closed chunk's routine) sits right below the root.
    static func depths(_ nodes: [Node], root: NodeID) -> [NodeID: Int] {
        var depths: [NodeID: Int] = [root: 0]
        for node in nodes where node.id != root { depths[node.id] = (node.parent.flatMap { depths[$0] } ?? 0) + 1 }
        return depths
    }

    static func age(_ ms: Int64, now: Int64) -> String { duration(now - ms) + " ago" }

    static func duration(_ ms: Int64) -> String {
        let seconds = max(0, ms) / 1000
        if seconds < 60 { return "\(seconds)s" }
        if seconds < 3600 { return "\(seconds / 60)m \(seconds % 60)s" }
        if seconds < 86400 { return "\(seconds / 3600)h \(seconds % 3600 / 60)m" }
        return "\(seconds / 86400)d \(seconds % 86400 / 3600)h"
    }
}

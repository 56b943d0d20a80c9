import PurserLedger

/// Routines waiting for a person: what they would use, how long they have waited, when the
/// wait ends (denied), and, for an operator, the buttons that decide.
struct ApprovalSection {
    let approvals: [Approval]
    let operate: Bool
    let nowMs: Int64

    var html: String {
        let rows = approvals.map { approval in
            Table.row([
                HTML.escape(approval.id), HTML.escape(approval.team), HTML.escape(approval.swarm), HTML.escape(approval.routine),
                HTML.escape(approval.tools.joined(separator: ", ")), Table.num(Table.age(approval.requestedMs, now: nowMs)),
                Table.num(Table.duration(max(approval.expiresMs - nowMs, 0))), operate ? Self.buttons(approval) : "",
            ], attributes: "data-approval=\"\(HTML.escape(approval.id))\"")
        }
        return Table.section(
            "Waiting for approval", id: "approvals", head: ["ID", "Team", "Swarm", "Routine", "Tools", "Waiting", "Denied in", ""], rows: rows,
            empty: "No routine is waiting for approval.")
    }

    static func buttons(_ approval: Approval) -> String {
        let path = "/v1/approvals/\(HTML.segment(approval.id))/"
        let approve = "<button class=\"approve\" data-post=\"\(path)approve\" "
            + "data-confirm=\"\(HTML.escape("Let \(approval.routine) use \(approval.tools.joined(separator: ", "))?"))\">Approve</button>"
        let deny = "<button class=\"deny\" data-post=\"\(path)deny\" data-ask=\"\(HTML.escape("Why deny \(approval.routine)?"))\">Deny</button>"
        return approve + " " + deny
    }
}

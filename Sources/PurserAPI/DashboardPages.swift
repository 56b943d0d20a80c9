import PurserLedger
import PurserProtocol
import PurserRuntime

/// The overview's live part: swarms, the budget tree, running workers, the queue, hosts,
/// and recent verdicts. Every value is escaped (`HTML.escape`); buttons only for operators.
struct OverviewPage {
    let data: DashboardOverview
    let operate: Bool

    var html: String {
        [
            swarms, ApprovalSection(approvals: data.approvals, operate: operate, nowMs: data.nowMs).html, budget, workers, queue, hosts, verdicts,
            GatewaySection(integrations: data.gateway, nowMs: data.nowMs).html,
        ]
            .joined(separator: "\n")
    }

    private var swarms: String {
        let rows = data.swarms.map { swarm in
            let routines = data.active.first { $0.swarm.id == swarm.id }?.routines
            let progress = routines.map { "\($0.filter { $0.state == "done" }.count)/\($0.count)" } ?? ""
            return Table.row([
                Table.link("/swarms/\(HTML.segment(swarm.id))", swarm.name), HTML.escape(swarm.id), HTML.escape(swarm.team),
                Table.state(swarm.state), Table.verdict(swarm.verdict), Table.num(progress),
                Table.num(Table.age(swarm.submittedMs, now: data.nowMs)), operate ? Buttons.cancel(swarm) : "",
            ], attributes: "data-swarm=\"\(HTML.escape(swarm.id))\"")
        }
        return Table.section(
            "Swarms", id: "swarms", head: ["Swarm", "ID", "Team", "State", "Verdict", "Done", "Submitted", ""], rows: rows,
            empty: "No swarms yet.")
    }

    private var budget: String {
        var rows: [String] = []
        for team in data.teams {
            var label = HTML.escape(team.node.name)
            if let freeze = team.freeze { label += " <span class=\"frozen\" title=\"\(HTML.escape(freeze.reason))\">frozen</span>" }
            let action = operate ? Buttons.freeze(team.node.name, frozen: team.freeze != nil) : ""
            rows.append(Table.node(team.node, label: label, depth: 0, action: action))
            let depths = Table.depths(team.open, root: team.node.id)
            for node in team.open { rows.append(Table.node(node, label: HTML.escape(node.name), depth: depths[node.id] ?? 1)) }
            for node in team.closed { rows.append(Table.node(node, label: HTML.escape(node.name), depth: 1)) }
        }
        return Table.section(
            "Budget", id: "budget", head: Table.nodeHead, rows: rows, empty: "No team has run a swarm yet.", note: Table.legend)
    }

    private var workers: String {
        var rows: [String] = []
        for active in data.active {
            for routine in active.routines where routine.state == "running" {
                let started = active.attempts.first { $0.routine == routine.name && $0.attempt == routine.attempt }?.startedMs
                let hold = data.hold(of: routine, in: active.swarm)
                let credits = hold.map { "\(Credits(micros: $0.consumed.credits)) of \(Credits(micros: $0.cap.credits))" } ?? ""
                rows.append(Table.row([
                    HTML.escape(routine.host ?? ""), Table.link("/swarms/\(HTML.segment(active.swarm.id))", active.swarm.name),
                    HTML.escape(routine.name), Table.num(String(routine.attempt)), Table.pid(routine.hostPid),
                    Table.num(started.map { Table.duration(data.nowMs - $0) } ?? ""), Table.memory(routine.memoryPeakBytes),
                    Table.num(credits),
                ], attributes: "data-worker=\"\(HTML.escape(routine.name))\""))
            }
        }
        return Table.section(
            "Running workers", id: "workers",
            head: ["Host", "Swarm", "Routine", "Attempt", "PID on its host", "Elapsed", "Memory peak", "Credits used of held"],
            rows: rows, empty: "Nothing runs now.",
            note: "<p class=\"legend\">PID and memory peak as each host said at its last heartbeat; a PID is that host's.</p>")
    }

    private var queue: String {
        let rows = data.active.map { active in
            let count = { (states: Set<String>) in Table.num(String(active.routines.filter { states.contains($0.state) }.count)) }
            return Table.row([
                Table.link("/swarms/\(HTML.segment(active.swarm.id))", active.swarm.name), HTML.escape(active.swarm.team),
                Table.state(active.swarm.state + (active.swarm.paused ? " (paused)" : "")), Table.num(String(active.swarm.priority)),
                // A routine waiting for a person's approval waits too (the approvals above list it).
                count(["waiting", "awaiting_approval"]), count(["ready"]), count(["running"]), count(["done"]),
            ])
        }
        return Table.section(
            "Queue", id: "queue", head: ["Swarm", "Team", "State", "Priority", "Waiting", "Ready", "Running", "Done"], rows: rows,
            empty: "The queue is empty.")
    }

    private var hosts: String {
        let rows = data.hosts.map { host in
            Table.row([
                HTML.escape(host.name), Table.state(host.state), Table.num("\(host.running)/\(host.slots)"),
                Table.num(Table.age(host.heartbeatMs, now: data.nowMs)), HTML.escape(host.version), HTML.escape(host.note),
            ], attributes: "data-host=\"\(HTML.escape(host.name))\"")
        }
        return Table.section(
            "Hosts", id: "hosts", head: ["Host", "State", "Running/slots", "Heartbeat", "Version", "Note"], rows: rows,
            empty: "No host has joined.")
    }

    private var verdicts: String {
        var rows: [String] = []
        for swarm in data.active + data.ended {
            for routine in swarm.routines where routine.verdict != nil {
                rows.append(Table.row([
                    Table.link("/swarms/\(HTML.segment(swarm.swarm.id))", swarm.swarm.name), HTML.escape(routine.name),
                    Table.verdict(routine.verdict), HTML.escape(routine.host ?? ""), Table.message(routine.message),
                    Table.message(data.tails[swarm.swarm.id]?[routine.name], class: "stderr"),
                ]))
            }
        }
        return Table.section(
            "Recent verdicts", id: "verdicts", head: ["Swarm", "Routine", "Verdict", "Host", "Message", "Stderr (end)"], rows: Array(rows.prefix(100)),
            empty: "No routine has ended yet.")
    }
}

/// One swarm's live part: its row, the report's figures, its holds, routines and attempts.
struct SwarmPage {
    let data: DashboardSwarm
    let operate: Bool

    var html: String {
        let swarm = data.swarm
        var facts = [
            ("ID", HTML.escape(swarm.id)), ("Team", HTML.escape(swarm.team)), ("State", HTML.escape(swarm.state)),
            ("Verdict", HTML.escape(swarm.verdict ?? "")), ("Priority", HTML.escape(String(swarm.priority))),
            ("Submitted", Table.age(swarm.submittedMs, now: data.nowMs)),
        ]
        if let message = swarm.message { facts.append(("Message", "<pre class=\"tail\">\(HTML.escape(message))</pre>")) }
        if let report = swarm.report.flatMap({ try? JSONParser.parse($0) }) {
            for key in ["used", "returned"] {
                if let value = report[key] { facts.append(("Credits \(key)", HTML.escape(value.numberValue.map { "\($0)" } ?? value.serialized()))) }
            }
        }
        let list = facts.map { "<tr><th>\($0.0)</th><td class=\"fact-\(String($0.0.lowercased().map { $0 == " " ? "-" : $0 }))\">\($0.1)</td></tr>" }.joined()
        let header = "<h1 class=\"swarm-name\">\(HTML.escape(swarm.name))</h1>\(operate ? Buttons.cancel(swarm) : "")<table class=\"facts\">\(list)</table>"
        return [header, tiers, budget, routines, attempts].joined(separator: "\n")
    }

    /// The tier tables of `purser run`'s report, cell for cell.
    private var tiers: String {
        let empty = "Not admitted yet: it holds nothing."
        return zip(TierSummary.tables(data.tiers), [("Tiers", "tiers"), ("Tiers: time and memory held", "tier-holds")]).map { table, title in
            let rows = table.rows.map { cells in
                Table.row(cells.enumerated().map { $0.offset == 0 ? HTML.escape($0.element) : Table.num($0.element) })
            }
            return Table.section(title.0, id: title.1, head: table.head, rows: rows, empty: empty)
        }.joined(separator: "\n")
    }

    private var budget: String {
        let depths = Table.depths(data.nodes, root: data.nodes.first?.id ?? -1)
        let rows = data.nodes.map { Table.node($0, label: HTML.escape($0.name), depth: depths[$0.id] ?? 1) }
        return Table.section("Budget", id: "budget", head: Table.nodeHead, rows: rows, empty: "Not admitted yet: it holds nothing.", note: Table.legend)
    }

    private var routines: String {
        let rows = data.routines.map { routine in
            Table.row([
                HTML.escape(routine.name), Table.state(routine.state), Table.num(String(routine.attempt)), HTML.escape(routine.host ?? ""),
                Table.verdict(routine.verdict), Table.message(routine.message), Table.message(data.tails[routine.name], class: "stderr"),
            ], attributes: "data-routine=\"\(HTML.escape(routine.name))\"")
        }
        return Table.section("Routines", id: "routines", head: ["Routine", "State", "Attempt", "Host", "Verdict", "Message", "Stderr (end)"], rows: rows, empty: "")
    }

    private var attempts: String {
        let rows = data.attempts.map { attempt in
            Table.row([
                HTML.escape(attempt.routine), Table.num(String(attempt.attempt)), HTML.escape(attempt.host),
                Table.num(Table.duration((attempt.endedMs ?? data.nowMs) - attempt.startedMs)), Table.verdict(attempt.verdict),
            ])
        }
        return Table.section("Attempts", id: "attempts", head: ["Routine", "Attempt", "Host", "Took", "Verdict"], rows: rows, empty: "None yet.")
    }
}

/// The operator's buttons; the script POSTs to the API's routes with the session's cookie.
enum Buttons {
    static func cancel(_ swarm: QueuedSwarm) -> String {
        guard ["queued", "admitting", "running"].contains(swarm.state) else { return "" }
        return "<button class=\"cancel\" data-post=\"/v1/swarms/\(HTML.segment(swarm.id))/cancel\" "
            + "data-confirm=\"\(HTML.escape("Cancel swarm \(swarm.name)?"))\">Cancel</button>"
    }

    static func freeze(_ team: String, frozen: Bool) -> String {
        let path = "/v1/teams/\(HTML.segment(team))/"
        if frozen {
            return "<button class=\"thaw\" data-post=\"\(path)thaw\" data-confirm=\"\(HTML.escape("Thaw team \(team)?"))\">Thaw</button>"
        }
        return "<button class=\"freeze\" data-post=\"\(path)freeze\" data-ask=\"\(HTML.escape("Why freeze team \(team)? (nothing new is granted under it)"))\">Freeze</button>"
    }
}

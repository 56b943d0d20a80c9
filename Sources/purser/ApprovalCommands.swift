import ArgumentParser
import Foundation
import PurserAPI
import PurserLedger
import PurserProtocol
import PurserRuntime

/// Routines that hold a tool marked `approval` wait for a person: these list and decide them.
/// Who decided (the OS user), when and why go to the ledger's audit trail.
struct Approvals: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Routines waiting for a person's approval (purser approve / purser deny).")
    @Flag(help: "Every approval, decided ones too (newest first).") var all = false
    @Option(help: "How many (1 to 10000).") var limit = 100
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var ledgerOptions: LedgerOptions

    func validate() throws {
        guard (1...10_000).contains(limit) else { throw ValidationError("--limit: expected 1 to 10000") }
    }

    func run() throws {
        let store = try ledgerOptions.store()
        let approvals = try ledgerCall { () throws(LedgerError) in try store.approvals(pendingOnly: !all, limit: limit) }
        if json {
            print(JSONValue.array(approvals.map(\.json)).serialized())
            return
        }
        if approvals.isEmpty { print(all ? "no approvals in this store" : "nothing waits for approval") }
        let format = ISO8601DateFormatter()
        func time(_ ms: Int64) -> String { format.string(from: Date(timeIntervalSince1970: Double(ms) / 1000)) }
        for approval in approvals {
            let state = approval.state == .pending ? "pending until \(time(approval.expiresMs))"
                : "\(approval.state.rawValue) by \(approval.decidedBy ?? "?")" + (approval.reason.map { ": \($0)" } ?? "")
            // Every field but the id came from a job file or a person: made inert, so that a name
            // cannot hide or rewrite the tools an approver is asked about.
            print(WorkerText.line("\(approval.id)  \(approval.routine) of swarm \(approval.swarm) (team \(approval.team), run \(approval.run)), "
                + "tools \(approval.tools.joined(separator: ",")): \(state)"))
        }
    }
}

struct Approve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Let a routine waiting for approval reserve and run.")
    @Argument(help: "The approval's id (purser approvals).") var id: String
    @Option(help: "Why, for the audit trail.") var reason = ""
    @OptionGroup var ledgerOptions: LedgerOptions
    @OptionGroup var serverOptions: ServerOptions

    func run() async throws {
        let approval = try await decide(id, approve: true, reason: reason, ledger: ledgerOptions, server: serverOptions)
        print(WorkerText.line("approval \(approval.id) approved: \(approval.routine) of swarm \(approval.swarm) may run"))
    }
}

struct Deny: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Deny a routine waiting for approval: it ends denied, and what runs after it is skipped.")
    @Argument(help: "The approval's id (purser approvals).") var id: String
    @Option(help: "Why, for the audit trail and the swarm's report.") var reason: String
    @OptionGroup var ledgerOptions: LedgerOptions
    @OptionGroup var serverOptions: ServerOptions

    func run() async throws {
        let approval = try await decide(id, approve: false, reason: reason, ledger: ledgerOptions, server: serverOptions)
        print(WorkerText.line("approval \(approval.id) denied: \(approval.routine) of swarm \(approval.swarm) will not run"))
    }
}

/// A decision on the store (by the OS user), or through the server --server names (by the
/// token's holder, or the socket): the same rows and audit either way. The home's socket is
/// not tried unasked, so that a decision on the store keeps the person's name.
private func decide(
    _ id: String, approve: Bool, reason: String, ledger: LedgerOptions, server: ServerOptions
) async throws -> (id: String, routine: String, swarm: String) {
    guard let client = try server.named(ledger) else {
        let store = try ledger.store()
        let approval = try ledgerCall { () throws(LedgerError) in
            try store.decideApproval(id: id, approve: approve, by: operatorName(), reason: reason)
        }
        return (approval.id, approval.routine, approval.swarm)
    }
    let answer: APIAnswer
    do {
        let body = JSONValue.object(["reason": .string(reason)]).serialized()
        answer = try await client.send(
            "POST", "/v1/approvals/\(APIClient.segment(id))/\(approve ? "approve" : "deny")", body: Array(body.utf8))
    } catch {
        throw commandFailure(error)
    }
    guard answer.status == 200, let approval = answer.json else { throw commandFailure(answer) }
    func text(_ key: String) -> String { approval[key]?.stringValue ?? "" }
    return (text("id"), text("routine"), text("swarm"))
}

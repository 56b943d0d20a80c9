/// A routine that holds a tool marked `approval` waits for a person: the request lives in
/// the store, so that an operator decides from another process (`purser approve`, the API)
/// and the supervisor that runs the routine reads the decision. Every request and decision
/// is audited at the swarm's node (`audit`), with who, when and why.
public protocol ApprovalStore: Sendable {
    /// Files a request for `routine` of the swarm held at `swarm`, to be decided within
    /// `timeoutMs`; audited as `approval_requested`.
    func requestApproval(_ request: ApprovalRequest) throws(LedgerError) -> Approval
    func approval(id: String) throws(LedgerError) -> Approval?
    /// Newest first; `pendingOnly`: those still waiting and not past their time.
    func approvals(pendingOnly: Bool, limit: Int) throws(LedgerError) -> [Approval]
    /// A swarm run's approvals, whatever their state (what its supervisor waits on).
    func approvals(run: String) throws(LedgerError) -> [Approval]
    /// A person's decision on a pending approval (`approval_granted` or `approval_denied`);
    /// `unknownApproval` for an id the store does not hold, `decided` for one decided,
    /// timed out or withdrawn already, or past its time.
    func decideApproval(id: String, approve: Bool, by: String, reason: String) throws(LedgerError) -> Approval
    /// Ends a pending approval past its time as `timed_out` (`approval_timed_out`); nil
    /// when it is not pending or not yet due.
    func expireApproval(id: String, reason: String) throws(LedgerError) -> Approval?
    /// Ends a pending approval nobody needs any more (its swarm stopped): `withdrawn`.
    func withdrawApproval(id: String, reason: String) throws(LedgerError) -> Approval?
}

public struct ApprovalRequest: Sendable, Hashable {
    /// The swarm's node: where the request and its decision are audited.
    public var swarm: NodeID
    /// The swarm's run id (`s-…`), to find the run the approval belongs to.
    public var run: String
    public var routine: String
    /// The routine's tools that need approval.
    public var tools: [String]
    public var timeoutMs: Int64

    public init(swarm: NodeID, run: String, routine: String, tools: [String], timeoutMs: Int64) {
        self.swarm = swarm
        self.run = run
        self.routine = routine
        self.tools = tools
        self.timeoutMs = timeoutMs
    }
}

public struct Approval: Sendable, Hashable {
    public enum State: String, Sendable, CaseIterable {
        case pending, approved, denied
        case timedOut = "timed_out"
        case withdrawn
    }

    public var id: String
    public var team: String
    public var swarmNode: NodeID
    public var swarm: String
    public var run: String
    public var routine: String
    public var tools: [String]
    public var requestedMs: Int64
    public var expiresMs: Int64
    public var state: State
    public var decidedBy: String?
    public var decidedMs: Int64?
    public var reason: String?

    /// Approved: the routine may reserve and run. Any other end denies it.
    public var isApproved: Bool { state == .approved }
}

extension Approval {
    /// Why a routine that was not approved ends denied: its report's message, on one host
    /// and in the fleet alike.
    public var denial: String {
        let reason = reason ?? ""
        if state == .timedOut { return "\(reason) (\(id))" }
        return "\(state == .withdrawn ? "withdrawn" : "denied") by \(decidedBy ?? "?")" + (reason.isEmpty ? "" : ": \(reason)") + " (\(id))"
    }
}

/// What one look at the fleet's gated routines did (`QueueStore.tendApprovals`).
public struct ApprovalTurn: Sendable, Hashable {
    /// Requests filed for routines that began to wait.
    public var filed: [Approval] = []
    /// Approvals decided or timed out whose routines moved on: ready, or ended denied.
    public var decided: [Approval] = []

    public init() {}
}

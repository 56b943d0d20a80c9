/// Where budgets live: teams, the tree of holds below them, and the audit trail.
/// `BudgetConformanceTests` and `LedgerConformanceTests` run against every driver.
public protocol BudgetStore: Sendable {
    func createTeam(_ spec: TeamSpec) throws(LedgerError) -> Node
    func team(named name: String) throws(LedgerError) -> Node
    /// Adds tools to a team's set (never removes: holds below rely on them).
    func addTools(team name: String, tools: [String]) throws(LedgerError) -> Node
    func node(_ id: NodeID) throws(LedgerError) -> Node
    /// The team's nodes, parents before children.
    func tree(team: String) throws(LedgerError) -> [Node]
    /// A node's open children (the holds taken from it that are not settled yet).
    func openChildren(of node: NodeID) throws(LedgerError) -> [Node]
    /// A node and every node under it, open or closed, parents before children.
    func subtree(of node: NodeID) throws(LedgerError) -> [Node]

    /// Takes `amounts` from the parent's available balance, all resources or none.
    func reserve(_ request: ReserveRequest) throws(LedgerError) -> Node
    /// Records spending at a node; refused, not logged, when it exceeds what is available.
    func spend(_ node: NodeID, credits: Int64, holder: Holder?) throws(LedgerError)
    /// A spend recorded under its own event kind and detail (a gateway call, say).
    func charge(_ node: NodeID, credits: Int64, holder: Holder?, event: String, detail: String) throws(LedgerError)
    /// Several such spends in one transaction; returns those refused (each audited).
    func charges(_ node: NodeID, _ items: [(credits: Int64, detail: String)], holder: Holder?, event: String) throws(LedgerError) -> [LedgerError]
    /// Closes a node (its open descendants first), charges what was used and returns the
    /// rest to the parent, in one transaction (`ChargeRule`), and says what it charged and
    /// returned. Settling twice returns the first settlement.
    func settle(_ node: NodeID, usage: Usage, outcome: String, holder: Holder?) throws(LedgerError) -> Settlement
    /// Changes an open node's hold of credits by `credits`: more is taken from the parent's
    /// available balance, all or none (`insufficient`); less gives back what the node has
    /// not reserved or spent, at most its available credits. The node's cap moves with it.
    /// A team's swarm that is preempted gives back this way, and grows again when it resumes.
    func resize(_ node: NodeID, credits: Int64, holder: Holder?) throws(LedgerError) -> Node

    /// Stops every grant under the team, at once, for every process sharing the store: a
    /// reserve anywhere below it is refused (`frozen`) until `thaw`. Holds already granted go
    /// on. Who and why go to the audit trail. False when it was frozen already.
    func freeze(team: String, by: String, reason: String) throws(LedgerError) -> Bool
    /// Lets the team grant again. False when it was not frozen.
    func thaw(team: String, by: String) throws(LedgerError) -> Bool
    func freeze(of team: String) throws(LedgerError) -> TeamFreeze?

    func audit(node: NodeID?, team: String?) throws(LedgerError) -> [AuditEvent]
    func verify() throws(LedgerError) -> [Violation]
    /// Closed nodes, for analytics and the adaptive strategy.
    func history(plugin: String?, team: String?, limit: Int) throws(LedgerError) -> [Node]
}

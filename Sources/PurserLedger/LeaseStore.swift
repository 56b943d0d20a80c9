/// Supervisors' leases, which fence the holds they take (`ReserveRequest.holder`): a
/// holder whose lease expired, or who is known dead, loses its holds to a reclaim.
public protocol LeaseStore: Sendable {
    /// Starts a lease for a supervisor instance: a new epoch, valid for `ttlMs`.
    func acquireLease(holder id: String, ttlMs: Int64) throws(LedgerError) -> Holder
    func heartbeat(_ holder: Holder, ttlMs: Int64) throws(LedgerError)
    /// Closes every hold of every expired lease, keeping what was spent charged.
    func reclaimExpired() throws(LedgerError) -> [Settlement]
    /// The holders whose leases are live.
    func liveLeases() throws(LedgerError) -> [String]
    /// Ends these holders' leases now, as if they had expired, and closes their holds: for
    /// holders known to be dead (a supervisor of this host whose process is gone).
    func reclaim(leases holders: [String]) throws(LedgerError) -> [Settlement]
}

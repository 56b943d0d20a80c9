/// A focused store over a `SQLDriver`, with its tables and its statements in one file.
///
/// Each concern the stores keep (budgets and the leases that fence them, plugins, swarm
/// runs, the gateway's state, the routine cache) has a protocol saying what callers need,
/// and one `SQLStore` that keeps it in SQL both drivers take. `SQLLedger` opens them all
/// over one driver; a caller that needs one concern can open that store alone.
///
/// To add a store: its protocol; a `SQLStore` giving its `tables` (CREATE … IF NOT EXISTS,
/// so that a database made before it gains them) and its queries, in one file; a line in
/// `SQLLedger.init` if the composition should open it; and a conformance suite in
/// PurserLedgerTests, parameterised over `StoreKind` so that it runs against both drivers.
public protocol SQLStore: Sendable {
    associatedtype Driver: SQLDriver
    var driver: Driver { get }
    /// The store's tables and indexes, and what brings an older database up to them.
    static func tables(_ dialect: SQLDialect) -> [String]
    /// A store over tables that exist already (`open` makes them).
    init(existing driver: Driver)
}

extension SQLStore {
    /// Opens the store, making its tables where they are missing.
    public static func open(_ driver: Driver) throws(LedgerError) -> Self {
        try createTables([tables(driver.dialect)], in: driver)
        return Self(existing: driver)
    }
}

/// Runs the statements that make several stores' tables, in one transaction.
func createTables(_ lists: [[String]], in driver: some SQLDriver) throws(LedgerError) {
    try driver.transaction { (session) throws(LedgerError) in
        for statement in lists.joined() { try session.run(statement) }
    }
}

/// A focused store over a `SQLDriver`, with its tables and its statements in one file.
///
/// Each concern the stores keep (budgets and the leases that fence them, plugins, swarm
/// runs, the gateway's state, the routine cache) has a protocol saying what callers need,
/// and one `SQLStore` that keeps it in SQL both drivers take. `SQLLedger` opens them all
/// over one driver; a caller that needs one concern can open that store alone.
///
/// To add a store: its protocol; a `SQLStore` giving its `tables` (CREATE … IF NOT EXISTS,
/// so that a database made before it gains them; `addedColumns` for a column a table gained
/// later) and its queries, in one file; a line in
/// `SQLLedger.init` if the composition should open it; and a conformance suite in
/// PurserLedgerTests, parameterised over `StoreKind` so that it runs against both drivers.
public protocol SQLStore: Sendable {
    associatedtype Driver: SQLDriver
    var driver: Driver { get }
    /// The store's tables and indexes, and what brings an older database up to them.
    static func tables(_ dialect: SQLDialect) -> [String]
    /// Columns its tables gained after they first shipped: a database made before gains
    /// them as the store opens (`CREATE TABLE IF NOT EXISTS` leaves an old table as it is).
    static var addedColumns: [AddedColumn] { get }
    /// A store over tables that exist already (`open` makes them).
    init(existing driver: Driver)
}

extension SQLStore {
    public static var addedColumns: [AddedColumn] { [] }

    /// Opens the store, making its tables and columns where they are missing.
    public static func open(_ driver: Driver) throws(LedgerError) -> Self {
        try createTables([tables(driver.dialect)], adding: addedColumns, in: driver)
        return Self(existing: driver)
    }
}

/// A column added to a table after the table first shipped. Nullable, with no default:
/// adding one rewrites no row, on either database.
public struct AddedColumn: Sendable {
    public var table: String
    public var name: String
    public var type: String

    public init(table: String, name: String, type: String) {
        self.table = table
        self.name = name
        self.type = type
    }
}

/// Runs the statements that make several stores' tables, then adds the columns a table
/// made before lacks, in one transaction. A column is looked up before it is added: an
/// ALTER TABLE takes the table's strongest lock even where it has nothing to do.
func createTables(_ lists: [[String]], adding columns: [AddedColumn] = [], in driver: some SQLDriver) throws(LedgerError) {
    let dialect = driver.dialect
    try driver.transaction { (session) throws(LedgerError) in
        for statement in lists.joined() { try session.run(statement) }
        for column in columns where try session.run(dialect.columnLookup, column.table.sql, column.name.sql).isEmpty {
            try session.run(dialect.addColumn(column))
        }
    }
}

extension SQLDialect {
    /// A row if table `$1` has a column named `$2`.
    var columnLookup: String {
        serverFunctions
            ? "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 AND column_name = $2"
            : "SELECT 1 FROM pragma_table_info($1) WHERE name = $2"
    }

    /// PostgreSQL's IF NOT EXISTS for two hosts opening an old database at once: the second
    /// waits for the first's lock, then finds the column there. (SQLite's write lock, taken
    /// at BEGIN, keeps the lookup and the ALTER together; it has no IF NOT EXISTS here.)
    func addColumn(_ column: AddedColumn) -> String {
        "ALTER TABLE \(column.table) ADD COLUMN \(serverFunctions ? "IF NOT EXISTS " : "")\(column.name) \(column.type)"
    }
}

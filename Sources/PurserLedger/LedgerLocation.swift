import CLibPQ

/// Opens the store a location names: a PostgreSQL URL or connection string, else a SQLite file.
/// A location that cannot name a store (a malformed URL, a missing directory) is `.invalid`:
/// the caller's mistake; a store that fails is `.storeFailed`.
public enum LedgerLocation {
    public static func isPostgres(_ location: String) -> Bool {
        location.hasPrefix("postgres://") || location.hasPrefix("postgresql://") || location.contains("dbname=")
    }

    /// The location as messages may show it: a PostgreSQL location without its password.
    public static func redacted(_ location: String) -> String {
        isPostgres(location) ? PostgresConnection.redacted(location) : location
    }

    /// `retry`: how long a PostgreSQL store that went away is waited for (SQLite waits on
    /// its busy timeout instead).
    public static func open(_ location: String, retry: StoreRetry = StoreRetry()) throws(LedgerError) -> any LedgerStore {
        try ledger(driver(location, retry: retry))
    }

    /// The driver for a location, for a caller that opens one store alone (`SQLStore.open`).
    public static func driver(_ location: String, retry: StoreRetry = StoreRetry()) throws(LedgerError) -> any SQLDriver {
        if isPostgres(location) {
            try checkConnectionString(location)
            return try PostgresDriver(url: location, retry: retry)
        }
        return try SQLiteDriver(path: location)
    }

    /// The fleet's queue and hosts at a location, over a driver of their own.
    public static func openFleet(_ location: String, retry: StoreRetry = StoreRetry()) throws(LedgerError) -> any FleetStore {
        try fleet(driver(location, retry: retry))
    }

    private static func fleet<Driver: SQLDriver>(_ driver: Driver) throws(LedgerError) -> any FleetStore {
        try SQLFleetStore<Driver>.open(driver)
    }

    private static func ledger<Driver: SQLDriver>(_ driver: Driver) throws(LedgerError) -> any LedgerStore {
        try SQLLedger(driver: driver)
    }

    /// libpq's own parse, and the port a number, before anything connects.
    static func checkConnectionString(_ location: String) throws(LedgerError) {
        var error: UnsafeMutablePointer<CChar>?
        guard let options = PQconninfoParse(location, &error) else {
            let message = error == nil ? "out of memory" : PostgresConnection.trimmed(error)
            PQfreemem(error)
            throw LedgerError(.invalid, "not a PostgreSQL location: \(message)")
        }
        defer { PQconninfoFree(options) }
        var option = options
        while let keyword = option.pointee.keyword {
            if String(cString: keyword) == "port", let value = option.pointee.val {
                let ports = String(cString: value).split(separator: ",", omittingEmptySubsequences: false)
                if let bad = ports.first(where: { UInt16($0) == nil }) {
                    throw LedgerError(.invalid, "not a PostgreSQL location: the port '\(bad)' is not a number")
                }
            }
            option += 1
        }
    }
}

/// The team `purser exec` draws from when no --team is given, made on first use.
public enum LocalTeam {
    public static let name = "local"
    public static let spec = TeamSpec(
        name: name,
        caps: Resources(credits: 1_000_000 * 1_000_000, timeMs: 10 * 365 * 86_400_000, memoryBytes: 1 << 40),
        tools: ["*"])

    public static func open(in store: any LedgerStore) throws(LedgerError) -> Node {
        do {
            let team = try store.team(named: name)
            // Made before the local team permitted every tool.
            return team.tools.contains("*") ? team : try store.addTools(team: name, tools: ["*"])
        } catch where error.code == .unknownTeam {
            do {
                return try store.createTeam(spec)
            } catch where error.code == .invalid || error.code == .constraint {
                // Another process made it first. (A store that fails says so: not "no team".)
                return try store.team(named: name)
            }
        }
    }
}

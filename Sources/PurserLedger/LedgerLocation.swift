/// Opens the store a location names: a PostgreSQL URL or connection string, else a SQLite file.
public enum LedgerLocation {
    public static func isPostgres(_ location: String) -> Bool {
        location.hasPrefix("postgres://") || location.hasPrefix("postgresql://") || location.contains("dbname=")
    }

    /// `retry`: how long a PostgreSQL store that went away is waited for (SQLite waits on
    /// its busy timeout instead).
    public static func open(_ location: String, retry: StoreRetry = StoreRetry()) throws(LedgerError) -> any LedgerStore {
        if isPostgres(location) { return try PostgresLedger(url: location, retry: retry) }
        return try SQLiteLedger(path: location)
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
            } catch {
                // Another process made it first.
                return try store.team(named: name)
            }
        }
    }
}

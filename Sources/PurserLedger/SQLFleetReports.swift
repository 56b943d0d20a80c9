extension SQLFleetStore {
    public func routineReports(swarm id: String, of names: [String]) throws(LedgerError) -> [String: String] {
        guard !names.isEmpty else { return [:] }
        return try transaction { (session) throws(LedgerError) in
            var reports: [String: String] = [:]
            for name in Set(names) {
                let row = try session.run(
                    "SELECT report FROM fleet_routines WHERE swarm = $1 AND name = $2 AND report IS NOT NULL", id.sql, name.sql
                ).first
                if let report = row?[0].string { reports[name] = report }
            }
            return reports
        }
    }
}

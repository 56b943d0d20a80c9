public import Logging
public import PurserLedger

/// What a log line says of a run, so that an operator can find it in the ledger and in
/// `purser runs`: its id, its node, its team, its plugin.
public enum LogMetadata {
    public static func run(_ runID: String?, node: Node, plugin: String? = nil) -> Logger.Metadata {
        var metadata: Logger.Metadata = ["node": "\(node.id)", "team": "\(node.team)"]
        if let runID { metadata["run"] = "\(runID)" }
        if let plugin { metadata["plugin"] = "\(plugin)" }
        return metadata
    }
}

extension Logger {
    /// A failure nobody else hears of: `message`, the run's metadata and the error.
    func failure(_ message: Logger.Message, _ metadata: Logger.Metadata, _ error: any Error, level: Logger.Level = .error) {
        var metadata = metadata
        metadata["error"] = "\(error)"
        log(level: level, message, metadata: metadata)
    }
}

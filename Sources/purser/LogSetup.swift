import Glibc
import Logging
import PurserLog

/// Takes the log flags out of the command line and sends every logger of the process to
/// stderr in the chosen format. Runs once, before the command is parsed; only this
/// executable bootstraps the logging system, the libraries just take loggers.
enum LogSetup {
    static func bootstrap(_ arguments: inout [String]) throws(CommandLineError) {
        let settings: LogSettings
        do {
            settings = try LogSettings.take(from: &arguments, environment: environment())
        } catch {
            throw CommandLineError(message: error.message)
        }
        LoggingSystem.bootstrap { label in LineLogHandler(label: label, level: settings.level, format: settings.format) }
    }

    private static func environment() -> [String: String] {
        guard let value = getenv("PURSER_LOG_LEVEL") else { return [:] }
        return ["PURSER_LOG_LEVEL": String(cString: value)]
    }
}

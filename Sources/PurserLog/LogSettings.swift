public import Logging

/// How log lines are written: logfmt (`key=value`, for people and grep) or one JSON
/// object a line (for collectors).
public enum LogFormat: String, Sendable, CaseIterable {
    case logfmt, json
}

/// A bad `--log-level`, `--log-format` or `PURSER_LOG_LEVEL`: named, for exit code 2.
public struct LogSettingsError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// The level and format of purser's log, from the command line and the environment.
public struct LogSettings: Sendable, Equatable {
    public var level: Logger.Level = .info
    public var format: LogFormat = .logfmt

    public init(level: Logger.Level = .info, format: LogFormat = .logfmt) {
        self.level = level
        self.format = format
    }

    /// Takes `--log-level` and `--log-format` (`--flag value` or `--flag=value`, anywhere
    /// before a `--`) out of `arguments`, which every subcommand then parses without them.
    /// `PURSER_LOG_LEVEL` gives the level when the flag does not.
    public static func take(from arguments: inout [String], environment: [String: String]) throws(LogSettingsError) -> LogSettings {
        var settings = LogSettings()
        if let value = environment["PURSER_LOG_LEVEL"], !value.isEmpty {
            settings.level = try level(value, from: "PURSER_LOG_LEVEL")
        }
        var kept: [String] = []
        var index = arguments.startIndex
        while index < arguments.endIndex {
            let argument = arguments[index]
            if argument == "--" {
                kept += arguments[index...]
                break
            }
            let (flag, inline) = split(argument)
            guard flag == "--log-level" || flag == "--log-format" else {
                kept.append(argument)
                index += 1
                continue
            }
            let value: String
            if let inline {
                value = inline
                index += 1
            } else {
                guard index + 1 < arguments.endIndex else { throw LogSettingsError(message: "\(flag): a value is missing") }
                value = arguments[index + 1]
                index += 2
            }
            if flag == "--log-level" {
                settings.level = try level(value, from: flag)
            } else {
                guard let format = LogFormat(rawValue: value) else {
                    throw LogSettingsError(message: "\(flag): '\(value)' is not a format (logfmt, json)")
                }
                settings.format = format
            }
        }
        arguments = kept
        return settings
    }

    private static func split(_ argument: String) -> (String, String?) {
        guard argument.hasPrefix("--log-"), let equals = argument.firstIndex(of: "=") else { return (argument, nil) }
        return (String(argument[..<equals]), String(argument[argument.index(after: equals)...]))
    }

    private static func level(_ value: String, from source: String) throws(LogSettingsError) -> Logger.Level {
        guard let level = Logger.Level(rawValue: value) else {
            let known = Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")
            throw LogSettingsError(message: "\(source): '\(value)' is not a level (\(known))")
        }
        return level
    }
}

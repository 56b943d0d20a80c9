import Glibc
import Logging
import PurserProtocol

/// One log event's fields, and the two ways of writing them as a line.
struct LogLine {
    var time: String
    var level: String
    var label: String
    var message: String
    var metadata: Logger.Metadata

    /// `ts=… level=… label=… msg=… key=value…`, keys sorted; values quoted when they must be.
    var logfmt: String {
        var parts = ["ts=\(time)", "level=\(level)", "label=\(Self.logfmtValue(label))", "msg=\(Self.logfmtValue(message))"]
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
            parts.append("\(Self.key(key))=\(Self.logfmtValue(Self.text(value)))")
        }
        return parts.joined(separator: " ")
    }

    /// One JSON object: `ts`, `level`, `label`, `msg`, then the metadata (which cannot replace those).
    var json: String {
        var object: [String: JSONValue] = [:]
        for (key, value) in metadata { object[Self.key(key)] = Self.json(value) }
        object["ts"] = .string(time)
        object["level"] = .string(level)
        object["label"] = .string(WorkerText.line(label))
        object["msg"] = .string(WorkerText.line(message))
        return JSONValue.object(object).serialized()
    }

    /// Keys are the supervisor's own, but only `[A-Za-z0-9_.-]` reaches a line all the same.
    static func key(_ key: String) -> String {
        let kept = String(key.unicodeScalars.map { scalar -> Character in
            switch scalar {
            case "a"..."z", "A"..."Z", "0"..."9", "_", ".", "-": Character(scalar)
            default: "_"
            }
        })
        return kept.isEmpty ? "_" : kept
    }

    /// Escaped by `WorkerText.line`, then quoted (with `\` and `"` escaped) if it holds a
    /// space, `=` or `"`, or is empty.
    static func logfmtValue(_ raw: String) -> String {
        let text = WorkerText.line(raw)
        guard text.isEmpty || text.contains(where: { $0 == " " || $0 == "=" || $0 == "\"" }) else { return text }
        var quoted = "\""
        for character in text {
            if character == "\\" || character == "\"" { quoted.append("\\") }
            quoted.append(character)
        }
        return quoted + "\""
    }

    static func text(_ value: Logger.MetadataValue) -> String {
        switch value {
        case .string(let text): text
        case .stringConvertible(let convertible): convertible.description
        case .array, .dictionary: json(value).serialized()
        }
    }

    static func json(_ value: Logger.MetadataValue) -> JSONValue {
        switch value {
        case .string(let text): .string(WorkerText.line(text))
        case .stringConvertible(let convertible): .string(WorkerText.line(convertible.description))
        case .array(let values): .array(values.map(json))
        case .dictionary(let values):
            .object(Dictionary(values.map { (key($0.key), json($0.value)) }, uniquingKeysWith: { $1 }))
        }
    }

    /// UTC, to the millisecond: `2026-12-06T08:15:15.123Z`.
    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var parts = tm()
        var seconds = now.tv_sec
        gmtime_r(&seconds, &parts)
        func padded(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(padded(parts.tm_year + 1900, 4))-\(padded(parts.tm_mon + 1, 2))-\(padded(parts.tm_mday, 2))"
            + "T\(padded(parts.tm_hour, 2)):\(padded(parts.tm_min, 2)):\(padded(parts.tm_sec, 2))"
            + ".\(padded(Int32(now.tv_nsec / 1_000_000), 3))Z"
    }
}

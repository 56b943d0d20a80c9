import Logging
import PurserLog
import PurserProtocol
import Synchronization
import Testing

/// Lines a handler wrote, kept for the test.
final class Captured: Sendable {
    private let lines = Mutex<[String]>([])
    var text: String { lines.withLock { $0.joined() } }
    var sink: LogSink { LogSink { line in self.lines.withLock { $0.append(line) } } }
}

func logger(_ format: LogFormat, level: Logger.Level = .info, into captured: Captured) -> Logger {
    Logger(label: "purser.test") { label in LineLogHandler(label: label, level: level, format: format, sink: captured.sink) }
}

/// Splits one logfmt line into its pairs, undoing the quoting (`\"`, `\\`) and nothing else.
func logfmtPairs(_ line: Substring) -> [String: String] {
    var pairs: [String: String] = [:]
    var rest = line[...]
    while !rest.isEmpty {
        rest = rest.drop { $0 == " " }
        guard let equals = rest.firstIndex(of: "=") else { break }
        let key = String(rest[..<equals])
        rest = rest[rest.index(after: equals)...]
        var value = ""
        if rest.first == "\"" {
            rest = rest.dropFirst()
            while let character = rest.first, character != "\"" {
                rest = rest.dropFirst()
                if character == "\\", let next = rest.first {
                    value.append(next)
                    rest = rest.dropFirst()
                } else {
                    value.append(character)
                }
            }
            rest = rest.dropFirst()
        } else {
            let end = rest.firstIndex(of: " ") ?? rest.endIndex
            value = String(rest[..<end])
            rest = rest[end...]
        }
        pairs[key] = value
    }
    return pairs
}

@Suite("purser's log lines")
struct LogLineTests {
    /// What a hostile worker would put in a message or a field: a newline and a forged
    /// line, quotes that would close the value early, `=` and a terminal escape.
    static let forged = "done\"\n" + #"ts=x level=critical msg="verdict: ok" run=r-forged"# + "\u{1b}[2J\u{202e}"

    @Test func aLogfmtLineCarriesItsMetadataAndCannotBeForged() {
        let captured = Captured()
        logger(.logfmt, into: captured).warning(
            "settle failed: \(Self.forged)", metadata: ["run": "r-1", "node": "42", "plugin": .string(Self.forged)])
        let lines = captured.text.split(separator: "\n")
        #expect(lines.count == 1 && captured.text.hasSuffix("\n"), "\(captured.text)")
        let pairs = logfmtPairs(lines[0])
        #expect(pairs["level"] == "warning")
        #expect(pairs["label"] == "purser.test")
        #expect(pairs["run"] == "r-1")
        #expect(pairs["node"] == "42")
        #expect(pairs["plugin"]?.hasPrefix("done\"\\x0ats=x level=critical") == true, "\(pairs)")
        #expect(pairs["msg"]?.hasPrefix("settle failed: done") == true)
        #expect(!captured.text.contains("\u{1b}") && !captured.text.contains("\u{202e}"))
        #expect(pairs.keys.sorted() == ["label", "level", "msg", "node", "plugin", "run", "ts"])
    }

    @Test func aJSONLineParsesWithItsMetadataAndCannotBeForged() throws {
        let captured = Captured()
        logger(.json, into: captured).error(
            "heartbeat failed", metadata: ["holder": "h-1", "detail": .string(Self.forged), "msg": "not the message"])
        let lines = captured.text.split(separator: "\n")
        #expect(lines.count == 1 && captured.text.hasSuffix("\n"), "\(captured.text)")
        let object = try JSONParser.parse(String(lines[0]))
        #expect(object["level"] == "error")
        #expect(object["msg"] == "heartbeat failed")
        #expect(object["holder"] == "h-1")
        #expect(object["ts"]?.stringValue?.hasSuffix("Z") == true)
        #expect(object["detail"]?.stringValue?.contains("\\x0a") == true)
        #expect(!captured.text.contains("\u{1b}") && !captured.text.contains("\u{202e}"))
    }

    @Test func eventsBelowTheLevelAreNotWritten() {
        let captured = Captured()
        let log = logger(.logfmt, level: .warning, into: captured)
        log.info("not this")
        log.debug("nor this")
        log.warning("this")
        #expect(captured.text.split(separator: "\n").map { logfmtPairs($0)["msg"] } == ["this"])
    }
}

@Suite("--log-level, --log-format, PURSER_LOG_LEVEL")
struct LogSettingsTests {
    @Test func theFlagsAreTakenOutWhereverTheyStand() throws {
        var arguments = ["exec", "--log-level", "debug", "./echo", "--log-format=json", "--input", "1"]
        let settings = try LogSettings.take(from: &arguments, environment: [:])
        #expect(settings == LogSettings(level: .debug, format: .json))
        #expect(arguments == ["exec", "./echo", "--input", "1"])
    }

    @Test func theVariableGivesTheLevelAndTheFlagWins() throws {
        var none: [String] = []
        #expect(try LogSettings.take(from: &none, environment: ["PURSER_LOG_LEVEL": "error"]).level == .error)
        var flagged = ["--log-level=trace"]
        #expect(try LogSettings.take(from: &flagged, environment: ["PURSER_LOG_LEVEL": "error"]).level == .trace)
        var defaults: [String] = []
        #expect(try LogSettings.take(from: &defaults, environment: [:]) == LogSettings(level: .info, format: .logfmt))
    }

    @Test func nothingAfterADoubleDashIsTaken() throws {
        var arguments = ["exec", "--", "--log-level", "debug"]
        #expect(try LogSettings.take(from: &arguments, environment: [:]).level == .info)
        #expect(arguments == ["exec", "--", "--log-level", "debug"])
    }

    @Test(arguments: [
        (["--log-level", "loud"], [:], "--log-level"), (["--log-format", "xml"], [:], "--log-format"),
        (["--log-level"], [:], "--log-level"), ([], ["PURSER_LOG_LEVEL": "loud"], "PURSER_LOG_LEVEL"),
    ])
    func aBadValueIsNamed(arguments: [String], environment: [String: String], named: String) {
        var arguments = arguments
        #expect { try LogSettings.take(from: &arguments, environment: environment) } throws: { error in
            (error as? LogSettingsError)?.message.hasPrefix(named) == true
        }
    }
}

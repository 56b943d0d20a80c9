import Glibc
public import Logging
import PurserProtocol
import Synchronization

/// Writes each log event as one line, logfmt or JSON. Every value goes through
/// `WorkerText.line` first: log text and metadata may carry bytes a worker chose, and no
/// value may end the line, start a forged one, or reach a terminal as a control sequence.
public struct LineLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    public let label: String
    public let format: LogFormat
    private let sink: LogSink

    public init(label: String, level: Logger.Level, format: LogFormat, sink: LogSink = .standardError) {
        self.label = label
        self.logLevel = level
        self.format = format
        self.sink = sink
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        if let error = event.error { merged["error"] = .string("\(error)") }
        let fields = LogLine(
            time: LogLine.timestamp(), level: event.level.rawValue, label: label, message: event.message.description,
            metadata: merged)
        sink.write(format == .json ? fields.json : fields.logfmt)
    }
}

/// Where log lines go: stderr, or (for tests) a closure.
public struct LogSink: Sendable {
    private let output: @Sendable (String) -> Void

    /// `output` gets each line with its newline.
    public init(_ output: @escaping @Sendable (String) -> Void) { self.output = output }

    func write(_ line: String) { output(line + "\n") }

    /// Whole lines, one writer at a time, so that lines of several threads never interleave.
    public static let standardError = LogSink { line in
        stderrLock.withLock { _ in
            var bytes = Array(line.utf8)[...]
            while !bytes.isEmpty {
                let written = bytes.withUnsafeBytes { Glibc.write(2, $0.baseAddress, $0.count) }
                if written < 0 && errno == EINTR { continue }
                guard written > 0 else { return }
                bytes = bytes.dropFirst(written)
            }
        }
    }
}

private let stderrLock = Mutex(())

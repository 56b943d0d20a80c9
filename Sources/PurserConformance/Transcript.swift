import PurserProtocol
import PurserRuntime

/// What a worker wrote that is not an answer a check waits for: kept for the checks that
/// judge it, bounded so that a flooding worker cannot fill memory.
struct Transcript {
    static let keptSamples = 3
    static let keptNotifications = 4096

    /// Lines on stdout that are no JSON-RPC 2.0 message (§9): how many, and the first few.
    var strayCount = 0
    var strays: [String] = []
    /// Lines on stdout past the line limit: how long each was when it passed it.
    var oversized: [Int] = []
    /// Lines on stderr that are protocol messages, which nobody reads there.
    var stderrMessageCount = 0
    var stderrMessages: [String] = []
    /// The last line on stderr, printable and bounded.
    var lastStderrLine: String?
    /// Notifications, in the order they came.
    var notifications: [(method: String, params: JSONValue?)] = []
    var droppedNotifications = 0
    /// Responses to no request awaiting one (unknown ids, or answered twice).
    var unmatched: [RPCID] = []
    /// The worker's own requests, by method, as they came.
    var requests: [String] = []
    /// Problems of the checker's own side (answering the worker's requests), and messages
    /// it dropped because more than `keptNotifications` were waiting.
    var notes: [String] = []
    var droppedMessages = 0

    /// What the checker could not do, for the check's detail; nil when nothing.
    var checkerProblems: String? {
        var problems = Array(notes.prefix(Self.keptSamples))
        if notes.count > Self.keptSamples { problems.append("\(notes.count - Self.keptSamples) more") }
        if droppedMessages > 0 { problems.append("\(droppedMessages) messages dropped unread (a flood)") }
        if droppedNotifications > 0 { problems.append("\(droppedNotifications) notifications past the first \(Self.keptNotifications) not judged") }
        return problems.isEmpty ? nil : problems.joined(separator: "; ")
    }

    mutating func note(_ problem: String) {
        if notes.count < 1000, !notes.contains(problem) { notes.append(problem) }
    }

    mutating func stray(_ line: ArraySlice<UInt8>, _ reason: String) {
        strayCount += 1
        if strays.count < Self.keptSamples { strays.append("\(reason): \(escapedPreview(line))") }
    }

    mutating func stderrLine(_ line: ArraySlice<UInt8>) {
        lastStderrLine = escapedPrefix(line, limit: 200)
        guard (try? RPCMessage(line: line)) != nil else { return }
        stderrMessageCount += 1
        if stderrMessages.count < Self.keptSamples { stderrMessages.append(escapedPreview(line)) }
    }

    mutating func notification(_ method: String, _ params: JSONValue?) {
        guard notifications.count < Self.keptNotifications else { return droppedNotifications += 1 }
        notifications.append((method, params))
    }
}

/// The start of a line a worker wrote, printable and bounded.
func escapedPreview(_ line: ArraySlice<UInt8>) -> String { escapedPrefix(line, limit: 80) }

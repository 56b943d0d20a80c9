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
    /// Notifications, in the order they came.
    var notifications: [(method: String, params: JSONValue?)] = []
    var droppedNotifications = 0
    /// Responses to no request awaiting one (unknown ids, or answered twice).
    var unmatched: [RPCID] = []
    /// The worker's own requests, by method, as they came.
    var requests: [String] = []
    /// Problems of the checker's own side (answering the worker's requests).
    var notes: [String] = []

    mutating func stray(_ line: ArraySlice<UInt8>, _ reason: String) {
        strayCount += 1
        if strays.count < Self.keptSamples { strays.append("\(reason): \(escapedPreview(line))") }
    }

    mutating func stderrLine(_ line: ArraySlice<UInt8>) {
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

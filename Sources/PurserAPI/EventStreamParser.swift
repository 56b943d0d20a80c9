/// Server-Sent Events as the WHATWG spec reads them: lines (LF, CRLF or CR), `event:` and
/// `data:` fields, an event dispatched at a blank line; comments and other fields ignored.
struct EventStreamParser {
    struct Event: Equatable {
        var name: String
        var data: String
        /// The last `id:` the stream gave (the spec's last event ID), if any.
        var id: String?
    }

    /// A line longer than this (1 MiB) is cut, and an event's data past `maxEvent` (8 MiB)
    /// ends the stream: a peer must not grow the client without end.
    static let maxLine = 1 << 20
    static let maxEvent = 8 << 20
    /// The event being gathered outgrew `maxEvent`.
    private(set) var overflowed = false
    private var dataBytes = 0
    private var line: [UInt8] = []
    private var name = ""
    private var lastID: String?
    private var data: [String] = []
    private var afterCR = false

    /// The events `bytes` completes.
    mutating func take(_ bytes: [UInt8]) -> [Event] {
        var events: [Event] = []
        for byte in bytes {
            if afterCR && byte == UInt8(ascii: "\n") {
                afterCR = false
                continue
            }
            afterCR = byte == UInt8(ascii: "\r")
            if byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r") {
                if let event = end() { events.append(event) }
            } else if line.count < Self.maxLine {
                line.append(byte)
            }
        }
        return events
    }

    private mutating func end() -> Event? {
        defer { line.removeAll(keepingCapacity: true) }
        guard !line.isEmpty else {
            defer { (name, data, dataBytes) = ("", [], 0) }
            return data.isEmpty ? nil : Event(name: name.isEmpty ? "message" : name, data: data.joined(separator: "\n"), id: lastID)
        }
        let text = String(decoding: line, as: UTF8.self)
        let field = text.prefix { $0 != ":" }
        var value = text.dropFirst(field.count).dropFirst()
        if value.hasPrefix(" ") { value = value.dropFirst() }
        switch field {
        case "event": name = String(value)
        case "id" where !value.contains("\0"): lastID = String(value)
        case "data":
            dataBytes += value.utf8.count + 1
            if dataBytes > Self.maxEvent { overflowed = true } else { data.append(String(value)) }
        default: break
        }
        return nil
    }
}

/// Server-Sent Events as the WHATWG spec reads them: lines (LF, CRLF or CR), `event:` and
/// `data:` fields, an event dispatched at a blank line; comments and other fields ignored.
struct EventStreamParser {
    struct Event: Equatable {
        var name: String
        var data: String
    }

    /// A line longer than this (1 MiB) is cut: a stream must not grow the client without end.
    static let maxLine = 1 << 20
    private var line: [UInt8] = []
    private var name = ""
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
            defer { (name, data) = ("", []) }
            return data.isEmpty ? nil : Event(name: name.isEmpty ? "message" : name, data: data.joined(separator: "\n"))
        }
        let text = String(decoding: line, as: UTF8.self)
        let field = text.prefix { $0 != ":" }
        var value = text.dropFirst(field.count).dropFirst()
        if value.hasPrefix(" ") { value = value.dropFirst() }
        switch field {
        case "event": name = String(value)
        case "data": data.append(String(value))
        default: break
        }
        return nil
    }
}

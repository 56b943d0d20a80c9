import PurserProtocol

/// How much log and progress text one run may send on: messages are cut at
/// `WorkerText.maxMessageBytes`, and past `WorkerText.maxRunBytes` in all, log messages are dropped
/// and progress keeps only its fraction. What was dropped is counted for the report.
struct WorkerTextBudget {
    private(set) var shownBytes = 0
    /// Log messages dropped, and progress messages whose text was dropped.
    private(set) var dropped = 0

    /// The message as it may be shown, or nil (counted) when the run's allowance is spent.
    mutating func admit(text: String) -> String? {
        let shown = WorkerText.line(text)
        guard shownBytes + shown.utf8.count <= WorkerText.maxRunBytes else {
            dropped += 1
            return nil
        }
        shownBytes += shown.utf8.count
        return shown
    }

    /// Whether this was the first message dropped: the moment to say so once.
    var justStartedDropping: Bool { dropped == 1 }
}

/// Printable, bounded view of a line for logs.
public func escapedPrefix(_ line: ArraySlice<UInt8>, limit: Int = 200) -> String {
    var text = ""
    for byte in line.prefix(limit) {
        switch byte {
        case 0x20..<0x7F where byte != 0x5C: text.unicodeScalars.append(Unicode.Scalar(byte))
        default: text += "\\x" + String(byte, radix: 16).leftPadded(to: 2)
        }
    }
    return line.count > limit ? text + "…" : text
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}

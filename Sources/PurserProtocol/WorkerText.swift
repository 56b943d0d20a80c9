/// Text a worker chose (log and progress messages, error messages, its stderr), made safe
/// to show wherever the supervisor shows it: a terminal, a report, an event file, a log.
/// A worker must not be able to write a line of its own into purser's output (a newline
/// followed by `[purser] … verdict: ok`), nor a sequence a terminal acts on (ESC, CSI,
/// OSC 52 writing the clipboard), nor text that reads in another order than it is stored
/// (bidirectional overrides). Such characters become visible escapes: `\x1b`, `\u{202e}`.
public enum WorkerText {
    /// The most of one message that is kept; the rest is cut with a note of its size.
    public static let maxMessageBytes = 4096
    /// The most log and progress text one run may send on (see `WorkerTextBudget`).
    public static let maxRunBytes = 256 * 1024

    /// One line: every control and format character escaped, newlines too; cut at `limit` bytes.
    public static func line(_ text: String, limit: Int = maxMessageBytes) -> String {
        escape(text, keepingNewlines: false, limit: limit)
    }

    /// Several lines (a stderr tail): as `line`, but newlines kept and no cut.
    public static func lines(_ text: String) -> String {
        escape(text, keepingNewlines: true, limit: Int.max)
    }

    private static func escape(_ text: String, keepingNewlines: Bool, limit: Int) -> String {
        if text.utf8.count <= limit, !text.unicodeScalars.contains(where: { needsEscape($0, keepingNewlines) }) {
            return text
        }
        var result = ""
        var consumed = 0
        for scalar in text.unicodeScalars {
            let piece = needsEscape(scalar, keepingNewlines) ? visible(scalar) : String(scalar)
            guard result.utf8.count + piece.utf8.count <= limit else {
                return result + "…[cut \(text.utf8.count - consumed) bytes]"
            }
            consumed += scalar.utf8.count
            result += piece
        }
        return result
    }

    static func needsEscape(_ scalar: Unicode.Scalar, _ keepingNewlines: Bool) -> Bool {
        switch scalar.value {
        case 0x0A: !keepingNewlines
        case 0x09: false
        case 0x00..<0x20, 0x7F...0x9F: true
        // Bidirectional embeddings, overrides and isolates; line and paragraph separators.
        case 0x202A...0x202E, 0x2066...0x2069, 0x2028, 0x2029, 0x200E, 0x200F, 0x061C: true
        default: false
        }
    }

    private static func visible(_ scalar: Unicode.Scalar) -> String {
        let hex = String(scalar.value, radix: 16)
        return scalar.value < 0x100 ? "\\x" + (hex.count < 2 ? "0" + hex : hex) : "\\u{\(hex)}"
    }
}

/// Text shown on a terminal that a worker or a job file chose (routine and swarm names,
/// failure messages): made inert, and measured in the cells a terminal gives it.
///
/// An allow-list: letters, marks, numbers, punctuation, symbols and the plain space pass;
/// every other scalar (controls such as ESC, format characters such as bidirectional
/// overrides, separators, private-use and unassigned code points) becomes a visible
/// escape, `\x1b` or `\u{202e}`, so nothing can move the cursor, set the title or
/// reorder a line.
public enum TerminalText {
    public static func clean(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: { !allowed($0) }) else { return text }
        var result = ""
        for scalar in text.unicodeScalars {
            if allowed(scalar) { result.unicodeScalars.append(scalar) } else { result += visible(scalar) }
        }
        return result
    }

    /// The cells `text` takes on a terminal (wide East Asian characters and emoji take two,
    /// combining marks none). Meant for text that went through `clean`.
    public static func cells(_ text: String) -> Int {
        text.reduce(0) { $0 + cells($1) }
    }

    /// At most `width` cells of `text`, with `…` in the last cell when something was cut.
    public static func truncate(_ text: String, to width: Int) -> String {
        guard width > 0 else { return "" }
        guard cells(text) > width else { return text }
        var result = ""
        var used = 0
        for character in text {
            let size = cells(character)
            guard used + size <= width - 1 else { break }
            result.append(character)
            used += size
        }
        return result + "…"
    }

    static func cells(_ character: Character) -> Int {
        guard let first = character.unicodeScalars.first else { return 0 }
        if character.unicodeScalars.count > 1, character.unicodeScalars.contains(where: { $0.properties.isEmojiPresentation || $0.value == 0xFE0F }) {
            return 2
        }
        switch first.properties.generalCategory {
        case .nonspacingMark, .enclosingMark, .format: return 0
        default: return isWide(first) ? 2 : 1
        }
    }

    /// East Asian Wide and Fullwidth ranges, and emoji shown as pictures.
    private static func isWide(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x1100...0x115F, 0x2E80...0x303E, 0x3041...0x33FF, 0x3400...0x4DBF, 0x4E00...0x9FFF, 0xA000...0xA4CF,
            0xAC00...0xD7A3, 0xF900...0xFAFF, 0xFE30...0xFE4F, 0xFF00...0xFF60, 0xFFE0...0xFFE6, 0x1F300...0x1F64F,
            0x1F900...0x1F9FF, 0x20000...0x3FFFD:
            return true
        default:
            return scalar.properties.isEmojiPresentation
        }
    }

    private static func allowed(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter,
            .nonspacingMark, .spacingMark, .enclosingMark,
            .decimalNumber, .letterNumber, .otherNumber,
            .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation, .initialPunctuation,
            .finalPunctuation, .otherPunctuation,
            .mathSymbol, .currencySymbol, .modifierSymbol, .otherSymbol:
            return true
        case .spaceSeparator: return scalar == " "
        default: return false
        }
    }

    private static func visible(_ scalar: Unicode.Scalar) -> String {
        let hex = String(scalar.value, radix: 16)
        return scalar.value < 0x100 ? "\\x" + (hex.count < 2 ? "0" + hex : hex) : "\\u{\(hex)}"
    }
}

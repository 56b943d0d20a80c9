/// One line of the view: pieces of clean text, each with its colour.
public struct Line: Sendable, Equatable {
    public var spans: [Span]

    public init(_ spans: [Span]) { self.spans = spans }

    /// The text alone, as a terminal without colour shows it.
    public var plain: String { spans.map(\.text).joined() }

    public var cells: Int { TerminalText.cells(plain) }

    /// The line cut to `width` cells, with `…` where it was cut.
    public func fitted(to width: Int) -> Line {
        guard cells > width else { return self }
        var left = width - 1
        var kept: [Span] = []
        for span in spans where left > 0 {
            let piece = TerminalText.cells(span.text) <= left ? span.text : TerminalText.truncate(span.text, to: left + 1).dropLast().description
            kept.append(Span(piece, span.style))
            left -= TerminalText.cells(piece)
        }
        kept.append(Span("…", kept.last?.style ?? .plain))
        return Line(kept)
    }

    /// The line as bytes for the terminal: with SGR colours, or without any escape.
    public func rendered(colour: Bool) -> String {
        guard colour else { return plain }
        return spans.map { span in
            span.style == .plain || span.text.isEmpty ? span.text : "\u{1B}[\(span.style.rawValue)m" + span.text + "\u{1B}[0m"
        }.joined()
    }
}

public struct Span: Sendable, Equatable {
    public enum Style: String, Sendable { case plain = "0", bold = "1", dim = "2", red = "31", green = "32", yellow = "33", cyan = "36" }

    public var text: String
    public var style: Style

    public init(_ text: String, _ style: Style = .plain) {
        self.text = text
        self.style = style
    }
}

/// What to write to a terminal to bring it from the frame it shows to the next: a pure
/// function of the two, so that tests read the bytes. The live lines are rewritten in
/// place, only those that changed, each over the old text and then erased to its end:
/// the screen is never cleared, so nothing flickers. The cursor is hidden while it moves
/// and shown again at the end of every update, so that no way out of purser (a second
/// Ctrl-C, a crash) can leave it hidden.
public struct FrameWriter: Sendable {
    /// The live lines on screen, as written, and the width they were drawn at.
    public private(set) var drawn: [String] = []
    private var drawnCells: [Int] = []
    private var drawnWidth = 0

    public init() {}

    static let hide = "\u{1B}[?25l"
    static let show = "\u{1B}[?25h"
    static let eraseLine = "\u{1B}[K"
    static let eraseBelow = "\u{1B}[J"

    /// The bytes that print `above` once (failures, notes), above the live lines, and then
    /// show `live`; empty when the screen shows that already.
    public mutating func update(above: [Line], live: [Line], width: Int, colour: Bool) -> String {
        let lines = live.map { $0.rendered(colour: colour) }
        let narrower = width < drawnWidth
        guard !above.isEmpty || lines != drawn || narrower else { return "" }
        var out = Self.hide + "\r"
        let rows = narrower ? drawnCells.reduce(0) { $0 + max(($1 + width - 1) / width, 1) } : drawn.count
        if rows > 0 { out += "\u{1B}[\(rows)A" }
        // Lines printed above, or a narrower terminal that may have rewrapped the old ones,
        // move every live line: all are written again.
        let old = above.isEmpty && !narrower ? drawn : []
        if narrower { out += Self.eraseBelow }
        for line in above { out += line.rendered(colour: colour) + Self.eraseLine + "\r\n" }
        for (index, line) in lines.enumerated() {
            out += index < old.count && old[index] == line ? "\n" : line + Self.eraseLine + "\r\n"
        }
        if lines.count < drawn.count || !above.isEmpty { out += Self.eraseBelow }
        drawn = lines
        drawnCells = live.map(\.cells)
        drawnWidth = width
        return out + Self.show
    }
}

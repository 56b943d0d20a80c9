/// The screen of a terminal view, frame after frame: failures and notes printed once each
/// above the live lines, the live lines rewritten in place. A value, fed the swarm's
/// progress of the moment; what it returns is what to write to the terminal.
public struct TerminalScreen: Sendable {
    public let colour: Bool
    private var writer = FrameWriter()
    private var failuresShown = 0

    public init(colour: Bool) { self.colour = colour }

    public mutating func next(_ progress: SwarmProgress, notes: [String] = [], now: Int64, width: Int, height: Int) -> String {
        let above = notes.map { ProgressFrame.note($0, width: width) }
            + progress.failures.dropFirst(failuresShown).map { ProgressFrame.failure($0, width: width) }
        failuresShown = max(failuresShown, progress.failures.count)
        let live = ProgressFrame.live(progress, now: now, width: width, height: height)
        return writer.update(above: above, live: live, width: width, colour: colour)
    }
}

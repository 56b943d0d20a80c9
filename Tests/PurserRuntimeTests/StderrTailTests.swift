@testable import PurserRuntime
import Testing

@Suite("stderr tail")
struct StderrTailTests {
    func tail(_ chunks: [String]) -> String {
        var tail = StderrTail()
        for chunk in chunks { Array(chunk.utf8).withUnsafeBytes { tail.append($0) } }
        return tail.text
    }

    @Test func longLinesAreCutAt64KiB() {
        let text = tail(["short\n", String(repeating: "a", count: 100_000), "b\nnext\n"])
        #expect(text.hasSuffix("a…[cut]\nnext\n"), "the long line is cut and the next one kept")
        #expect(!text.contains("b"))
        #expect(text.utf8.count <= StderrTail.limit)
    }

    @Test func onlyTheLast64KiBAreKept() {
        let lines = (0..<20_000).map { "line \($0)\n" }
        let text = tail(lines)
        #expect(text.utf8.count <= StderrTail.limit)
        #expect(text.hasSuffix("line 19999\n"))
        #expect(!text.contains("line 0\n"))
    }
}

@testable import PurserAPI
import Testing

extension APISuites {
    @Suite("The token file")
    struct TokenFileTests {
        @Test("read and operate lines, comments and blank lines; each token gives its access, others none")
        func parses() throws {
            let tokens = try Tokens.parse("# ops\n\nread  aaaaaaaaaaaaaaaa\noperate bbbbbbbbbbbbbbbb # CI\n", file: "t")
            #expect(tokens.access(for: "aaaaaaaaaaaaaaaa".utf8) == .read)
            #expect(tokens.access(for: "bbbbbbbbbbbbbbbb".utf8) == .operate)
            #expect(tokens.access(for: "bbbbbbbbbbbbbbb".utf8) == nil)
            #expect(tokens.access(for: "bbbbbbbbbbbbbbbbb".utf8) == nil)
            #expect(tokens.access(for: "".utf8) == nil)
        }

        @Test("a bad line is refused with its line, never its token", arguments: [
            ("write cccccccccccccccc\n", 1), ("read\n", 1), ("# x\nread short\n", 2), ("read cccccccccccccccc extra\n", 1),
        ])
        func refuses(_ text: String, _ line: Int) {
            #expect {
                _ = try Tokens.parse(text, file: "t")
            } throws: { error in
                let message = "\(error)"
                return message.contains("t:\(line):") && !message.contains("cccccccccccccccc") && !message.contains("short")
            }
        }

        @Test("a file of no token is refused")
        func empty() {
            #expect(throws: APIStartError.self) { try Tokens.parse("# nothing\n", file: "t") }
        }
    }
}

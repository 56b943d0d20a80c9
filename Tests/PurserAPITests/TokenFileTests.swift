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

        @Test("a token's third word names its holder for the audit trail; an unnamed one is its place in the file")
        func holders() throws {
            let tokens = try Tokens.parse("read aaaaaaaaaaaaaaaa\noperate bbbbbbbbbbbbbbbb ops-alice@example\n", file: "t")
            #expect(tokens.holder(of: "bbbbbbbbbbbbbbbb".utf8) == "ops-alice@example")
            #expect(tokens.access(for: "bbbbbbbbbbbbbbbb".utf8) == .operate)
            #expect(tokens.holder(of: "aaaaaaaaaaaaaaaa".utf8) == "token 1")
            #expect(tokens.holder(of: "cccccccccccccccc".utf8) == nil)
        }

        @Test("a bad line is refused with its line, never its token", arguments: [
            ("write cccccccccccccccc\n", 1), ("read\n", 1), ("# x\nread short\n", 2), ("read cccccccccccccccc two words\n", 1),
            ("\nread cccccccccccccccc <b>\n", 2),
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

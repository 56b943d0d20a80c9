import Glibc

/// The bearer tokens a TCP listener accepts, from `--token-file`: one a line, `read TOKEN`
/// (the GET routes) or `operate TOKEN` (everything, submit and cancel too); `#` starts a
/// comment; a third word names the token's holder in the audit trail (`operate TOKEN alice`).
/// The file must be private (`PrivateFile`).
public struct Tokens: Sendable {
    public enum Access: Sendable, Equatable { case read, operate }

    private let entries: [(token: [UInt8], access: Access, holder: String)]

    /// A token without a name is "token N", its place among the file's tokens.
    public init(entries: [(String, Access)], holders: [String?] = []) {
        self.entries = entries.enumerated().map { index, entry in
            let holder = index < holders.count ? holders[index] : nil
            return (Array(entry.0.utf8), entry.1, holder ?? "token \(index + 1)")
        }
    }

    /// Reads a token file; its errors name the file and the line, never a token.
    public static func load(path: String) throws(APIStartError) -> Tokens {
        switch PrivateFile.problem(path) {
        case .unreadable(let code): throw APIStartError("--token-file: cannot read \(path): \(String(cString: strerror(code)))")
        case .notOwn: throw APIStartError("--token-file: \(path) is not this user's own file")
        case .open(let mode): throw APIStartError("--token-file: \(path) may be read by others (mode \(String(mode, radix: 8))); chmod 600 it")
        case nil: break
        }
        guard let text = readText(path) else { throw APIStartError("--token-file: cannot read \(path)") }
        return try parse(text, file: path)
    }

    static func parse(_ text: String, file: String) throws(APIStartError) -> Tokens {
        var entries: [(String, Access)] = []
        var holders: [String?] = []
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            if words.isEmpty { continue }
            let place = "--token-file: \(file):\(index + 1)"
            guard (2...3).contains(words.count), let access = ["read": Access.read, "operate": .operate][String(words[0])] else {
                throw APIStartError("\(place): expected 'read TOKEN [NAME]' or 'operate TOKEN [NAME]'")
            }
            if words.count == 3 {
                // The name goes to the audit trail and the log: a plain word.
                guard words[2].utf8.count <= 64, words[2].allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.@".contains($0)) }) else {
                    throw APIStartError("\(place): a token's name is up to 64 letters, digits, '-', '_', '.' or '@'")
                }
            }
            holders.append(words.count == 3 ? String(words[2]) : nil)
            // Printable ASCII only (a header carries it), and long enough not to be guessed.
            guard words[1].utf8.count >= 16, words[1].utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else {
                throw APIStartError("\(place): a token is at least 16 printable ASCII characters")
            }
            entries.append((String(words[1]), access))
        }
        guard !entries.isEmpty else { throw APIStartError("--token-file: \(file) holds no token") }
        return Tokens(entries: entries, holders: holders)
    }

    /// A presented token's access, and who holds it (for the audit trail: its name, else "token N").
    public struct Caller: Sendable, Equatable {
        public let access: Access
        public let holder: String
    }

    /// The caller a presented token names, nil for none. Every entry is compared, each in
    /// time that depends on lengths only, so timing tells nothing of which bytes matched.
    public func caller(for presented: some Sequence<UInt8>) -> Caller? {
        let given = Array(presented)
        var found: Caller?
        for entry in entries where Self.equal(entry.token, given) { found = found ?? Caller(access: entry.access, holder: entry.holder) }
        return found
    }

    /// The access a presented token gives, nil for none.
    public func access(for presented: some Sequence<UInt8>) -> Access? { caller(for: presented)?.access }

    /// Who holds a presented token.
    public func holder(of presented: some Sequence<UInt8>) -> String? { caller(for: presented)?.holder }

    static func equal(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(a.count == b.count ? 0 : 1)
        for index in 0..<max(a.count, b.count) {
            difference |= (index < a.count ? a[index] : 0) ^ (index < b.count ? b[index] : 0)
        }
        return difference == 0
    }

    private static func readText(_ path: String) -> String? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = fread(&buffer, 1, buffer.count, file)
            if count <= 0 { break }
            bytes += buffer[0..<count]
            if bytes.count > 1 << 20 { return nil }
        }
        return ferror(file) == 0 ? String(decoding: bytes, as: UTF8.self) : nil
    }
}

/// What stops the API from starting (a bad token file, a socket path in use): a clear message, exit 2.
public struct APIStartError: Error, Sendable, CustomStringConvertible {
    public enum Code: Sendable { case settings, socketInUse, pathTooLong }
    public let code: Code
    public let message: String
    public init(_ message: String, code: Code = .settings) {
        self.code = code
        self.message = message
    }
    public var description: String { message }
}

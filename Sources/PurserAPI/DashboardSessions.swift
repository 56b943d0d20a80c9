import Synchronization

/// A TCP listener's dashboard logins: a browser cannot send a bearer header on navigation,
/// so `POST /login` trades a token for a random session id, which an HttpOnly,
/// SameSite=Strict cookie carries. The id says nothing of the token; the sessions live in
/// this process only (a restarted serve asks to log in again).
final class DashboardSessions: Sendable {
    static let cookie = "purser_session"
    /// How long a login lasts, and how many may be open at once (the oldest go first).
    static let lifetime = Duration.seconds(12 * 3600)
    static let most = 1000

    private struct Session {
        var token: String
        var ends: ContinuousClock.Instant
    }

    private let sessions = Mutex<[String: Session]>([:])

    /// A new session for a token the server knows; its id for the cookie.
    func open(token: String) -> String {
        var generator = SystemRandomNumberGenerator()
        let id = (0..<4).map { _ in hex(generator.next()) }.joined()
        let now = ContinuousClock.now
        sessions.withLock { sessions in
            sessions = sessions.filter { $0.value.ends > now }
            if sessions.count >= Self.most, let oldest = sessions.min(by: { $0.value.ends < $1.value.ends }) {
                sessions.removeValue(forKey: oldest.key)
            }
            sessions[id] = Session(token: token, ends: now + Self.lifetime)
        }
        return id
    }

    /// The token a live session stands for.
    func token(for id: String) -> String? {
        sessions.withLock { sessions in
            guard let session = sessions[id] else { return nil }
            guard session.ends > ContinuousClock.now else {
                sessions.removeValue(forKey: id)
                return nil
            }
            return session.token
        }
    }

    func close(_ id: String) {
        _ = sessions.withLock { $0.removeValue(forKey: id) }
    }

    /// The session id in a `Cookie` header, if it holds one of the right shape.
    static func id(inCookies header: String?) -> String? {
        guard let header else { return nil }
        for pair in header.split(separator: ";") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, trimmed(parts[0]) == cookie else { continue }
            let value = String(trimmed(parts[1]))
            if value.utf8.count == 64, value.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }) { return value }
        }
        return nil
    }

    static func setCookie(_ id: String) -> String {
        "\(cookie)=\(id); Path=/; HttpOnly; SameSite=Strict; Max-Age=\(Int(lifetime.components.seconds))"
    }

    static let clearCookie = "\(cookie)=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"

    private func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}

/// Text without the spaces and tabs around it.
private func trimmed(_ text: Substring) -> Substring {
    var text = text
    while let first = text.first, first == " " || first == "\t" { text.removeFirst() }
    while let last = text.last, last == " " || last == "\t" { text.removeLast() }
    return text
}

import ArgumentParser
import Foundation
import PurserAPI
import PurserRuntime

/// Where `submit`, `watch`, `cancel` and `hosts` send their requests: a `purser serve`'s API
/// when one is named or answers on the home's socket, else the store directly.
struct ServerOptions: ParsableArguments {
    @Option(help: "A purser serve's API: http://HOST:PORT or unix:PATH (default: $PURSER_SERVER, else the home's socket when a serve answers on it).")
    var server: String?

    @Option(name: .customLong("server-token-file"), help: "A file holding the bearer token for a TCP --server, mode 0600 (default: $PURSER_TOKEN).")
    var tokenFile: String?

    /// The server to ask, or nil to open the store. The home's socket is tried only when
    /// nothing names where to go (--server, $PURSER_SERVER, --ledger or $PURSER_LEDGER: a named
    /// store may be another than the home's serve uses), and only if something answers on it.
    func client(_ ledger: LedgerOptions) async throws -> APIClient? {
        let environment = ProcessInfo.processInfo.environment
        if let named = try named(ledger) { return named }
        guard ledger.location == nil, (environment["PURSER_LEDGER"] ?? "").isEmpty else { return nil }
        let socket = Runtime.defaultHome() + "/purser.sock"
        guard FileManager.default.fileExists(atPath: socket) else { return nil }
        let client = APIClient(target: .unix(path: socket), token: nil)
        // A socket left by a serve that died answers nothing: then the store, as without one.
        guard (try? await client.send("GET", "/v1/hosts", quiet: .seconds(3))) != nil else { return nil }
        return client
    }

    /// The server --server or $PURSER_SERVER names, if any; the home's socket is not tried.
    func named(_ ledger: LedgerOptions) throws -> APIClient? {
        let environment = ProcessInfo.processInfo.environment
        guard let named = server ?? environment["PURSER_SERVER"].flatMap({ $0.isEmpty ? nil : $0 }) else { return nil }
        guard ledger.location == nil else { throw CommandLineError(message: "--ledger and --server: choose one place to ask") }
        let target: APIClient.Target
        do {
            target = try APIClient.target(named)
        } catch {
            throw CommandLineError(message: error.message)
        }
        return APIClient(target: target, token: try token(environment))
    }

    private func token(_ environment: [String: String]) throws -> String? {
        guard let tokenFile else { return environment["PURSER_TOKEN"].flatMap { $0.isEmpty ? nil : $0 } }
        let problem = PrivateFile.problem(tokenFile)
        let unreadable = if case .unreadable = problem { true } else { false }
        guard !unreadable, let text = try? String(contentsOfFile: tokenFile, encoding: .utf8) else {
            throw CommandLineError(message: "--server-token-file: cannot read \(tokenFile)")
        }
        switch problem {
        case .notOwn: throw CommandLineError(message: "--server-token-file: \(tokenFile) is not this user's own file")
        case .open: throw CommandLineError(message: "--server-token-file: \(tokenFile) may be read by others; chmod 600 it")
        case .unreadable, nil: break
        }
        let token = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty, !token.contains(where: { $0.isWhitespace }) else {
            throw CommandLineError(message: "--server-token-file: \(tokenFile) should hold one token and nothing else")
        }
        return token
    }
}

/// An API request's failure as the command's: the caller's fault (4xx) exits 2, the
/// server's or the network's 1, with the server's own message.
func commandFailure(_ error: APIClientError) -> any Error {
    error.code == .settings ? CommandLineError(message: error.message) : SupervisorFailure(message: error.message)
}

func commandFailure(_ answer: APIAnswer) -> any Error {
    (400..<500).contains(answer.status) ? CommandLineError(message: answer.errorMessage) : SupervisorFailure(message: answer.errorMessage)
}

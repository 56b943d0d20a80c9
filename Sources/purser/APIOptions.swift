import ArgumentParser
import Logging
import PurserAPI
import PurserLedger
import PurserRuntime

/// `purser serve`'s HTTP API (docs/api.md): where it listens, and who may use it.
struct APIOptions: ParsableArguments {
    @Option(help: "The API's Unix socket, mode 0600 (default: $PURSER_HOME/purser.sock).")
    var socket: String?

    @Flag(help: "Serve no API on a Unix socket.")
    var noSocket = false

    @Option(help: "Also serve the API on TCP at HOST:PORT (port 0: any free one); needs --token-file.")
    var listen: String?

    @Option(help: "Bearer tokens for --listen, one a line: 'read TOKEN' (GET only) or 'operate TOKEN' (submit, cancel too); mode 0600.")
    var tokenFile: String?

    /// Starts the listeners asked for; nil when none is.
    func start(runtime: Runtime, fleet: any FleetStore) async throws -> APIServer? {
        let path = noSocket ? nil : socket ?? runtime.home + "/purser.sock"
        guard path != nil || listen != nil else { return nil }
        // /metrics renders what the modules count from here on (once: serve starts one API).
        MetricsBackend.bootstrap()
        do {
            if listen != nil, tokenFile == nil {
                throw APIStartError("--listen needs --token-file: a TCP listener takes bearer tokens only")
            }
            let tokens = try tokenFile.map { (file) throws(APIStartError) in try Tokens.load(path: file) }
            let settings = APIServer.Settings(socket: path, listen: listen, tokens: tokens, socketIsDefault: socket == nil)
            // Hummingbird's info lines name the private path the socket is bound at; purser says where it listens.
            var logger = Logger(label: "purser.api")
            if logger.logLevel < .notice { logger.logLevel = .notice }
            let server = try await APIServer.start(settings, stores: APIStores(runtime: runtime, fleet: fleet), logger: logger)
            for address in server.addresses { printError("purser: API on \(address)") }
            for note in server.notes { printError("purser: API: \(note)") }
            return server
        } catch let error as APIStartError {
            throw CommandLineError(message: error.message)
        }
    }
}

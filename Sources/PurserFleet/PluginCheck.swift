import Glibc
import PurserLedger
import PurserRuntime

/// What a host tells the fleet about the registered plugins it cannot run: those whose
/// bytes are not in the store (a `#!` script, a file over the stored limit) and whose file
/// is missing here or is not the pinned one. `purser hosts` shows it, so an operator knows
/// where to install what. Looked at when the host joins and then once a minute.
struct PluginCheck {
    let host: FleetHost
    static let intervalMs: Int64 = 60_000
    /// The note is a row's text: a long list is cut.
    static let noteLimit = 2_000

    func run() async {
        while !Task.isCancelled {
            let note = await StoreThreads.shared.run { () -> String in self.note() }
            host.state.withLock { $0.pluginNote = note }
            try? await Task.sleep(for: .milliseconds(Self.intervalMs))
        }
    }

    /// Runs on a store thread: it reads the registry and hashes path-only plugins' files.
    func note() -> String {
        let lacking: [String]
        do throws(RuntimeError) {
            let registry = try PluginRegistry(runtime: host.runtime)
            var names: [String] = []
            for record in try registry.list() where try registry.whyNotStored(record) != nil {
                do throws(RuntimeError) {
                    close(try PluginRegistry.openPinned(record).fd)
                } catch {
                    names.append("\(record.name): \(error.message)")
                }
            }
            lacking = names
        } catch {
            host.logger.warning("checking the registered plugins failed", metadata: ["error": "\(error.message)"])
            return "plugins not checked: \(error.message)"
        }
        guard !lacking.isEmpty else { return "" }
        let note = "cannot run " + lacking.joined(separator: "; ")
        return note.count > Self.noteLimit ? String(note.prefix(Self.noteLimit)) + "…" : note
    }
}

import Dispatch
import Foundation
import Glibc
import Synchronization

/// SIGINT and SIGTERM while runs are in flight. The first cancels them: every run ends
/// `cancelled`, settles what it used, returns the rest, and is reported. A second ends
/// purser at once, as an operator who means it expects: its runs die with it (the workers'
/// parent-death signal, and purser-watchdog for the rest of their groups), and what they
/// held is reclaimed by the next purser to start on this host (or when its lease lapses).
final class Interrupts {
    private final class Count: Sendable {
        let value = Atomic<Int>(0)
    }

    private var sources: [any DispatchSourceSignal] = []
    private let count = Count()

    /// Starts listening; `cancel` runs once, on the first signal. `stopAtOnce`: signals that
    /// end purser at the first (SIGHUP for `serve`). `say` writes what a signal did (a
    /// terminal view writes it above its live lines).
    init(
        firstMessage: String = "cancelling; a second one stops at once",
        secondMessage: String = "stopping at once (signal %d again); the next start on this host reclaims the holds",
        stopAtOnce: [Int32] = [], say: @escaping @Sendable (String) -> Void = printError, cancel: @escaping @Sendable () -> Void
    ) {
        let count = self.count
        for signo in stopAtOnce {
            signal(signo, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signo, queue: .global())
            source.setEventHandler {
                printError("purser: stopping at once (signal \(signo)); its runs are rescued by another host")
                _exit(128 + signo)
            }
            source.activate()
            sources.append(source)
        }
        sources += [SIGINT, SIGTERM].map { signo in
            signal(signo, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signo, queue: .global())
            source.setEventHandler {
                guard count.value.add(1, ordering: .relaxed).newValue == 1 else {
                    say("purser: " + secondMessage.replacingOccurrences(of: "%d", with: String(signo)))
                    _exit(128 + signo)
                }
                say("purser: signal \(signo): \(firstMessage)")
                cancel()
            }
            source.activate()
            return source
        }
    }

    /// Whether a signal came.
    var fired: Bool { count.value.load(ordering: .relaxed) > 0 }

    /// Stops listening (the signals then end purser as they would by default).
    func stop() {
        for source in sources { source.cancel() }
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
    }
}

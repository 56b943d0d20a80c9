import Synchronization

/// Wakes a loop that otherwise sleeps for its poll interval: a run that ended, a slot
/// that came free. A signal that comes while nobody waits is kept for the next wait.
final class Wakeup: Sendable {
    private let state = Mutex<(pending: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))

    func signal() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard let waiter = state.waiter else {
                state.pending = true
                return nil
            }
            state.waiter = nil
            return waiter
        }
        waiter?.resume()
    }

    /// Whether a signal waits for the next `wait`.
    var pending: Bool { state.withLock { $0.pending } }

    /// Returns at the next signal, or after `ms`.
    func wait(ms: Int64) async {
        let timer = Task {
            // A wait ended by a signal cancels its timer, which must then not signal: that
            // left a signal behind, and every run's end cost the host a second pass.
            guard (try? await Task.sleep(for: .milliseconds(ms))) != nil else { return }
            self.signal()
        }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { state -> Bool in
                if state.pending {
                    state.pending = false
                    return true
                }
                state.waiter = continuation
                return false
            }
            if now { continuation.resume() }
        }
        timer.cancel()
        await timer.value
    }
}

@testable import PurserFleet
import Testing

@Suite("Wakeup")
struct WakeupTests {
    @Test("a wait ended by a signal leaves no signal behind for the next wait")
    func noSignalLeftBehind() async {
        let wakeup = Wakeup()
        wakeup.signal()
        await wakeup.wait(ms: 60_000)
        // Time for a cancelled timer to signal, were it to (it did: every run's end cost a
        // second pass). Not an assertion on time: a wait ends with its timer now.
        try? await Task.sleep(for: .milliseconds(200))
        #expect(!wakeup.pending, "the next wait would return at once: a pass for nothing")
        wakeup.signal()
        #expect(wakeup.pending, "a signal nobody waits for is kept")
    }
}

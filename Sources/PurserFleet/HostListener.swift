import PurserLedger

/// On PostgreSQL, the host listens for the fleet's wake-ups (`PostgresListener`, on a
/// thread of its own): a submit, an admission, a cancel or another host's work wakes it at
/// once, so that it polls at `idlePollMs` rather than `pollMs` while the listener is up.
/// The wake-up is a hint: what it misses, the next look finds. On SQLite nothing listens.
struct HostListener {
    let host: FleetHost

    func run() async {
        let name = "purser-listen " + host.settings.name
        guard let location = host.runtime.ledger?.location,
            let listener = LedgerLocation.listener(location, applicationName: name, logger: host.logger)
        else { return }
        // Blocks in poll(2) for as long as the host serves: a thread of its own, never the
        // cooperative pool's or the store's.
        let thread = StoreThreads(count: 1)
        let host = self.host
        await withTaskCancellationHandler {
            await thread.run {
                listener.run(heard: { look in host.heard(look: look) }, live: { live in host.listen(live) })
            }
        } onCancel: {
            listener.stop()
        }
    }
}

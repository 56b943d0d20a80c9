import Hummingbird

/// A request's context, with who asked: `BearerAuth` decides it once on a TCP listener, and
/// the handlers (the audit trail, the dashboard's buttons) read it from here.
struct APIContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    /// The bearer token's caller; nil on the Unix socket, where the socket's mode is the access.
    var caller: Tokens.Caller?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
    }
}

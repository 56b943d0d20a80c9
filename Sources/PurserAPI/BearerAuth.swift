import Hummingbird

/// A TCP listener's gate: every request shows `Authorization: Bearer TOKEN`; a read token
/// may only read. Refusals say why, never which token was given (it is not logged either).
/// The token's caller goes on the context, for the handlers.
struct BearerAuth: RouterMiddleware {
    let tokens: Tokens

    func handle(_ request: Request, context: APIContext, next: (Request, APIContext) async throws -> Response) async throws -> Response {
        // The scheme's name is case-insensitive (RFC 9110).
        guard let header = request.headers[.authorization], header.prefix(7).lowercased() == "bearer " else {
            throw APIError(.unauthorized, "unauthorized", "this listener needs Authorization: Bearer TOKEN")
        }
        guard let caller = tokens.caller(for: header.utf8.dropFirst(7)) else {
            throw APIError(.unauthorized, "unauthorized", "the token is not one of the server's")
        }
        // Only GET reads; every other method changes something, and needs an operator token.
        if caller.access == .read && request.method != .get {
            throw APIError(.forbidden, "forbidden", "a read token cannot \(request.method.rawValue) \(request.uri.path)")
        }
        var context = context
        context.caller = caller
        return try await next(request, context)
    }
}

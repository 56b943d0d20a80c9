public import Hummingbird
import NIOCore
import PurserConfig
import PurserLedger
public import PurserProtocol
import PurserRuntime

/// An error as the API answers it: `{"error": {"code", "message", "field", "line"}}`.
/// Codes are stable (docs/api.md lists them); messages are for people.
public struct APIError: Error, Sendable {
    public var status: HTTPResponse.Status
    public var code: String
    public var message: String
    /// The field at fault (a job file's `routines.fetch.plugin`), when one is.
    public var field: String?
    /// The job file's line at fault, when one is.
    public var line: Int?

    public init(_ status: HTTPResponse.Status, _ code: String, _ message: String, field: String? = nil, line: Int? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.line = line
    }

    public var json: JSONValue {
        var error: [String: JSONValue] = ["code": .string(code), "message": .string(message)]
        if let field { error["field"] = .string(field) }
        if let line { error["line"] = .number(JSONNumber(line)) }
        return ["error": .object(error)]
    }

    var response: Response {
        var response = Response.json(json, status: status)
        if status == .unauthorized { response.headers[.wwwAuthenticate] = "Bearer" }
        return response
    }

    static func notFound(_ what: String) -> APIError { APIError(.notFound, "not_found", what) }

    /// A job file's error, with its line and field.
    init(job error: ConfigError) {
        self.init(.unprocessableContent, "invalid_job", error.description, field: error.field.isEmpty ? nil : error.field, line: error.line)
    }

    /// A runtime error: bad input is the caller's (422), the rest the server's.
    init(_ error: RuntimeError, file: String) {
        switch error.code {
        case .invalidRequest:
            let (line, field) = Self.place(error.message, file: file)
            self.init(.unprocessableContent, "invalid_job", error.message, field: field, line: line)
        case .sandbox: self.init(.unprocessableContent, "sandbox", error.message)
        case .store: self.init(.serviceUnavailable, "store_unavailable", error.message)
        default: self.init(.internalServerError, "internal", error.message)
        }
    }

    init(_ error: LedgerError) {
        switch error.code {
        case .unknownTeam, .unknownNode, .unknownApproval: self.init(.notFound, "not_found", error.message)
        case .decided: self.init(.conflict, "decided", error.message)
        case .storeFailed: self.init(.serviceUnavailable, "store_unavailable", error.message)
        default: self.init(.unprocessableContent, "invalid", error.message)
        }
    }

    /// The line and field of a message `FILE:LINE: FIELD: text`, as every job check writes them.
    static func place(_ message: String, file: String) -> (Int?, String?) {
        guard message.hasPrefix(file + ":") else { return (nil, nil) }
        let rest = message.dropFirst(file.count + 1).split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
        guard rest.count == 3, let line = Int(rest[0]) else { return (nil, nil) }
        let field = rest[1].trimmingCharacters(in: .whitespaces)
        return (line, field.isEmpty || field.contains(" ") ? nil : field)
    }
}

extension Response {
    static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        Response(
            status: status, headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: value.serialized() + "\n")))
    }
}

/// Answers every error in the API's shape: the router's 404 and 405, a body too large, and
/// what nothing else caught (500, its text in the log, not the answer).
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            return error.response
        } catch let error as HTTPError where error.status == .notFound && !APIRoute.methods(servedOn: request.uri.path).isEmpty {
            let allowed = APIRoute.methods(servedOn: request.uri.path)
            var response = APIError(.methodNotAllowed, "method_not_allowed", "\(request.uri.path) answers \(allowed.joined(separator: ", ")) only").response
            response.headers[.allow] = allowed.joined(separator: ", ")
            return response
        } catch let error as HTTPError {
            let code = switch error.status {
            case .notFound: "not_found"
            case .contentTooLarge: "too_large"
            default: "bad_request"
            }
            return APIError(error.status, code, error.body ?? error.status.reasonPhrase).response
        } catch {
            context.logger.error("API request failed", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
            return APIError(.internalServerError, "internal", "the server failed; its log says why").response
        }
    }
}

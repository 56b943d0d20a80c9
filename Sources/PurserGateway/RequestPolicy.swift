import Glibc
import PurserProtocol

/// What a worker's call may become: a request under the integration's base URL and
/// nowhere else, with the worker's headers the integration allows, plus the credentials.
/// Anything else is `invalid_request`, refused before a byte leaves.
enum RequestPolicy {
    static let maxRedirects = 5
    static let maxBodyBytes = 8 << 20
    static let idempotent: Set<String> = ["GET", "HEAD", "PUT", "DELETE", "OPTIONS"]

    static func prepare(
        _ params: GatewayCallParams, for integration: Integration, deadlineMs: Int64?
    ) throws(GatewayFailure) -> UpstreamRequest {
        let method = params.method.uppercased()
        guard integration.methods.contains(method) else {
            throw invalid("\(integration.name) does not allow \(params.method)")
        }
        guard params.body.count <= maxBodyBytes else { throw invalid("the body is larger than \(maxBodyBytes) bytes") }
        let (url, asked) = try url(path: params.path, query: params.query, integration)
        var headers: [String] = []
        for (name, value) in params.headers.sorted(by: { $0.key < $1.key }) {
            guard HTTPHeaders.isToken(name), HTTPHeaders.isSafeValue(value) else { throw invalid("bad header '\(name)'") }
            try HeaderPolicy.check(name, value, integration)
            headers.append("\(name): \(value)")
        }
        // Only a GET to a cached integration is looked up by it.
        let cached = integration.cache != nil && method == "GET"
        let variant = cached ? [asked] + params.headers.map { "\($0.key.lowercased()): \($0.value)" }.sorted() : []
        headers += credentialHeaders(integration)
        return UpstreamRequest(
            url: url, method: method, headers: headers, body: params.body,
            connectTimeoutMs: integration.connectTimeoutMs, totalTimeoutMs: integration.totalTimeoutMs,
            maxResponseBytes: integration.maxResponseBytes, variant: variant)
    }

    /// The base's origin and path, then the worker's path: checked, never normalised, so
    /// that what was checked is what is sent; then checked again as libcurl parses it.
    /// `asked` is the same URL without the credentials.
    static func url(
        path: String, query: [String: String], _ integration: Integration
    ) throws(GatewayFailure) -> (sent: String, asked: String) {
        let (pathPart, rawQuery) = try PathPolicy.check(path)
        var queryItems = rawQuery.map { [$0] } ?? []
        queryItems += query.sorted { $0.key < $1.key }.map { "\(URLEncoding.component($0.key))=\(URLEncoding.component($0.value))" }
        let base = integration.base
        let asked = base.origin + base.path + pathPart + (queryItems.isEmpty ? "" : "?" + queryItems.joined(separator: "&"))
        for case .query(let name, let value) in integration.credentials {
            queryItems.append("\(URLEncoding.component(name))=\(URLEncoding.component(value))")
        }
        let url = base.origin + base.path + pathPart + (queryItems.isEmpty ? "" : "?" + queryItems.joined(separator: "&"))
        guard let parts = URLParts(url), parts.scheme == base.scheme, parts.host == base.host, parts.port == base.port,
            parts.pathAndQuery.hasPrefix(base.path + "/")
        else { throw invalid("'\(path)' does not stay under \(integration.name)'s base URL") }
        return (url, asked)
    }

    /// The next request after a redirect, if its target stays under the base.
    static func redirect(
        _ request: UpstreamRequest, status: Int64, location: String, for integration: Integration
    ) throws(GatewayFailure) -> UpstreamRequest {
        let base = integration.base
        let target: String
        if location.hasPrefix("/") && !location.hasPrefix("//") {
            target = base.origin + location
        } else if let parts = URLParts(location), parts.scheme == base.scheme, parts.host == base.host, parts.port == base.port {
            target = base.origin + parts.pathAndQuery
        } else {
            throw GatewayFailure(.invalidRequest, "the upstream redirected away from \(integration.name)'s base URL; not followed")
        }
        let relative = String(target.dropFirst(base.origin.count))
        guard relative.hasPrefix(base.path + "/") else {
            throw GatewayFailure(.invalidRequest, "the upstream redirected outside \(integration.name)'s base path; not followed")
        }
        _ = try PathPolicy.check(String(relative.dropFirst(base.path.count)))
        var next = request
        next.url = target
        for case .query(let name, let value) in integration.credentials where !target.contains(URLEncoding.component(name) + "=") {
            next.url += (target.contains("?") ? "&" : "?") + "\(URLEncoding.component(name))=\(URLEncoding.component(value))"
        }
        if status == 303 || ((status == 301 || status == 302) && request.method == "POST") {
            next.method = "GET"
            next.body = []
        }
        return next
    }

    static func credentialHeaders(_ integration: Integration) -> [String] {
        integration.credentials.compactMap { credential in
            switch credential {
            case .header(let name, let value): "\(name): \(value)"
            case .basic(let user, let password): "Authorization: Basic " + Base64Text.encode(Array("\(user):\(password)".utf8))
            case .query: nil
            }
        }
    }

    /// Milliseconds left for a call: the integration's total timeout from the call's
    /// start, and never past the run's deadline.
    static func remainingMs(_ call: Call, _ integration: Integration) -> Int64 {
        let elapsed = (monotonicNanoseconds() - call.started) / 1_000_000
        var remaining = integration.totalTimeoutMs - elapsed
        if let deadline = call.caller.deadlineMs { remaining = min(remaining, deadline - unixMilliseconds()) }
        return remaining
    }

    /// Failures where a retry may succeed: the connection failed or broke.
    static func isConnectionFailure(_ response: UpstreamResponse) -> Bool {
        // CURLE_COULDNT_CONNECT 7, SEND_ERROR 55, RECV_ERROR 56, GOT_NOTHING 52, PARTIAL_FILE 18.
        [7, 18, 52, 55, 56].contains(response.curlCode)
    }

    /// Retry-After: delta-seconds or an HTTP date; at most an hour.
    static func retryAfterMs(_ value: String) -> Int64? {
        let trimmed = value.trimmingCharacters()
        if let seconds = Int64(trimmed), seconds >= 0 { return min(seconds, 3600) * 1000 }
        guard let at = httpDateMs(trimmed) else { return nil }
        return min(max(0, at - unixMilliseconds()), 3_600_000)
    }

    /// "Sun, 06 Nov 1994 08:49:37 GMT" (RFC 9110's preferred format).
    static func httpDateMs(_ text: String) -> Int64? {
        let fields = text.split(separator: " ")
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        guard fields.count == 6, fields[5] == "GMT", let day = Int32(fields[1]), let month = months.firstIndex(of: String(fields[2])),
            let year = Int32(fields[3])
        else { return nil }
        let clock = fields[4].split(separator: ":").compactMap { Int32($0) }
        guard clock.count == 3 else { return nil }
        var parts = tm()
        parts.tm_year = year - 1900
        parts.tm_mon = Int32(month)
        parts.tm_mday = day
        parts.tm_hour = clock[0]
        parts.tm_min = clock[1]
        parts.tm_sec = clock[2]
        return Int64(timegm(&parts)) * 1000
    }

    private static func invalid(_ message: String) -> GatewayFailure { GatewayFailure(.invalidRequest, message) }
}

extension String {
    fileprivate func trimmingCharacters() -> String {
        String(drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}

extension CostModel {
    /// The credits a call is charged, never more than `max`: each earlier attempt that
    /// reached the upstream costs `perRequest`; the final one, if it got a response,
    /// `perRequest` + `perKiB` per started KiB + the JSON field and header prices; if it
    /// reached the upstream without a response (a timeout, a reset), `perRequest`.
    func charge(final response: UpstreamResponse?, sentAttempts: Int) -> Credits {
        let earlier = Swift.max(0, sentAttempts - (response == nil ? 0 : 1))
        var micros = Int64(earlier) * perRequest.micros
        if let response { micros += responseCost(response) }
        return Credits(micros: Swift.min(Swift.max(0, micros), max.micros))
    }

    private func responseCost(_ response: UpstreamResponse) -> Int64 {
        let kib = Int64((response.body.count + 1023) / 1024)
        var micros = perRequest.micros + kib * perKiB.micros
        if let (field, price) = fromJSON, let value = Self.number(at: field, in: response.body) {
            micros += Self.multiply(value, price)
        }
        if let (name, price) = fromHeader, let text = response.header(name), let value = JSONNumber(text: text) {
            micros += Self.multiply(value, price)
        }
        return micros
    }

    private static func number(at path: [String], in body: [UInt8]) -> JSONNumber? {
        guard var value = try? JSONParser.parse(body) else { return nil }
        for key in path {
            guard let next = value.objectValue?[key] else { return nil }
            value = next
        }
        return value.numberValue
    }

    /// `value` × `price` in micro-credits, exactly, saturating instead of overflowing.
    private static func multiply(_ value: JSONNumber, _ price: Credits) -> Int64 {
        guard let scaled = value.scaled(by: Credits.scale), scaled >= 0 else { return 0 }
        let (product, overflow) = scaled.multipliedReportingOverflow(by: price.micros)
        return overflow ? Int64.max / 2 : (product + Credits.microsPerCredit - 1) / Credits.microsPerCredit
    }
}

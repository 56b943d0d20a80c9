import HTTPTypes
import Hummingbird
import NIOCore

/// The dashboard's HTML: every value a worker, a job or a store chose goes through `escape`,
/// and the page loads nothing but its own stylesheet and script (the CSP says so to the browser).
enum HTML {
    /// Text safe in an element and in a quoted attribute.
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for character in text.unicodeScalars {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(character)
            }
        }
        return out
    }

    /// A path segment for a link or an API call: everything but unreserved characters encoded.
    static func segment(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            let unreserved = (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
                || byte == 0x2d || byte == 0x2e || byte == 0x5f || byte == 0x7e
            out += unreserved ? String(UnicodeScalar(byte)) : "%" + (byte < 16 ? "0" : "") + String(byte, radix: 16, uppercase: true)
        }
        return out
    }

    /// The whole page: `live` is the part the script refreshes.
    static func page(title: String, live: String, user: String?) -> String {
        let logout = user.map { who in
            "<form method=\"post\" action=\"/logout\" class=\"logout\"><span>\(escape(who))</span> <button type=\"submit\">Log out</button></form>"
        } ?? ""
        return """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(escape(title)) · purser</title><link rel="stylesheet" href="/dashboard.css"><script src="/dashboard.js" defer></script></head>
            <body><header><a href="/" class="brand">purser</a> <span class="status" id="status">live</span>\(logout)</header>
            <main id="live">\(live)</main></body></html>

            """
    }

    /// Security headers every dashboard answer carries.
    static var headers: HTTPFields {
        [
            .contentType: "text/html; charset=utf-8", .cacheControl: "no-store",
            HTTPField.Name("Content-Security-Policy")!: csp,
            HTTPField.Name("X-Content-Type-Options")!: "nosniff",
            HTTPField.Name("Referrer-Policy")!: "same-origin",
            HTTPField.Name("X-Frame-Options")!: "DENY",
        ]
    }

    static let csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; object-src 'none'; "
        + "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

    static func response(_ body: String, status: HTTPResponse.Status = .ok, extra: HTTPFields = [:]) -> Response {
        var headers = Self.headers
        headers.append(contentsOf: extra)
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }

    static func asset(_ text: String, type: String) -> Response {
        var headers = Self.headers
        headers[.contentType] = type
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }

    /// A bar of a hold's credits: used, reserved and returned, as shares of its cap; the
    /// widths are SVG attributes, not inline styles, which the CSP forbids.
    static func bar(cap: Int64, used: Int64, reserved: Int64, returned: Int64) -> String {
        guard cap > 0 else { return "<svg class=\"bar\" viewBox=\"0 0 100 6\" preserveAspectRatio=\"none\"></svg>" }
        var x = 0.0
        var rects = ""
        for (part, amount) in [("used", used), ("reserved", reserved), ("returned", returned)] where amount > 0 {
            let width = min(100 - x, Double(amount) * 100 / Double(cap))
            rects += "<rect class=\"\(part)\" x=\"\(format(x))\" y=\"0\" width=\"\(format(width))\" height=\"6\"/>"
            x += width
        }
        return "<svg class=\"bar\" viewBox=\"0 0 100 6\" preserveAspectRatio=\"none\" role=\"img\">\(rects)</svg>"
    }

    private static func format(_ value: Double) -> String { String(Double(Int(value * 100)) / 100) }
}

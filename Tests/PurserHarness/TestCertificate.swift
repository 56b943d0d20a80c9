import Foundation

/// A self-signed certificate for 127.0.0.1 and localhost, made with `openssl req` in a
/// fresh directory (removed with the instance): what `HTTPTestServer.start(tls:)` serves,
/// and what a client given `pem`, or the file at `certificatePath`, trusts.
public final class TestCertificate: Sendable {
    public let directory: String
    public var certificatePath: String { directory + "/cert.pem" }
    public var keyPath: String { directory + "/key.pem" }
    /// The certificate, PEM text: a client's only trusted root.
    public let pem: String

    /// Made under `parent`: /tmp by default; a sandboxed worker that reads the certificate
    /// needs it elsewhere (its /tmp is its own), e.g. /var/tmp, shared with `--read-only`.
    public static func make(under parent: String = "/tmp") async throws -> TestCertificate {
        let directory = parent + "/purser-tls-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let made = try await runCommand("/usr/bin/openssl", [
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout", directory + "/key.pem", "-out", directory + "/cert.pem",
        ])
        guard made.status == 0 else {
            try? FileManager.default.removeItem(atPath: directory)
            throw HTTPTestServerError("openssl req failed (is openssl installed?): \(made.stderr)")
        }
        return try TestCertificate(directory: directory)
    }

    private init(directory: String) throws {
        self.directory = directory
        pem = try String(contentsOfFile: directory + "/cert.pem", encoding: .utf8)
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }
}

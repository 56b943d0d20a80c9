import Foundation

/// A self-signed certificate for 127.0.0.1 and localhost, made with `openssl req` in a
/// fresh directory under /tmp (removed with the instance): what `HTTPTestServer.start(tls:)`
/// serves, and what a client given `pem` trusts.
public final class TestCertificate: Sendable {
    public let directory: String
    public var certificatePath: String { directory + "/cert.pem" }
    public var keyPath: String { directory + "/key.pem" }
    /// The certificate, PEM text: a client's only trusted root.
    public let pem: String

    public static func make() async throws -> TestCertificate {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("purser-tls-\(UUID().uuidString)").path
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

import Foundation
import PurserLedger
import PurserProtocol
import PurserSandbox
import PurserTestSupport
import Testing

enum StoreKind: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case sqlite
    case postgres

    var testDescription: String { rawValue }
}

/// Registered plugins travel through the store: `plugin add` keeps the pinned bytes, and a
/// host without the file at its path fetches them by digest into `$PURSER_HOME/plugins`.
@Suite("Plugins stored by digest", .timeLimit(.minutes(3)))
struct StoredPluginTests {
    /// Two hosts' homes sharing one store, and a folder for plugin files.
    struct Hosts {
        let root = Fixtures.temporaryHome()
        let location: String

        init(_ kind: StoreKind) async throws {
            location = switch kind {
            case .sqlite: root + "/store.db"
            case .postgres: try await PostgresServer.database()
            }
        }

        func purser(_ arguments: [String], host: String = "a") async throws -> CommandResult {
            try await runPurser(arguments, home: root + "/" + host, extra: ["PURSER_LEDGER": location], directory: root)
        }

        /// A copy of a built plugin, registered as `name`; its digest.
        func add(_ product: String, as name: String) async throws -> String {
            let path = root + "/" + name
            try FileManager.default.copyItem(atPath: Fixtures.product(product), toPath: path)
            let added = try await purser(["plugin", "add", path, "--name", name, "--json"])
            try #require(added.status == 0, "\(added.stderr)")
            let record = try JSONParser.parse(added.stdout)
            #expect(record["notStored"] == .null, "its bytes are in the store")
            return try #require(record["sha256"]?.stringValue)
        }

        func cached(_ digest: String, host: String = "a") -> String { root + "/" + host + "/plugins/" + digest }

        func job(_ plugin: String) throws -> String {
            let path = root + "/job.yaml"
            try """
                team: { name: t, budget: { credits: 10 } }
                swarm: { name: s, reservation: { credits: 5 } }
                routines:
                  - { name: a, plugin: \(plugin), input: { text: "one two three" } }
                """.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }

        func sql(_ statement: String, _ arguments: [SQLValue]) throws -> [[SQLValue]] {
            try LedgerLocation.driver(location).single(statement, arguments)
        }
    }

    /// The file is deleted after `plugin add`: each host runs it from its own cache, fetched
    /// from the store, by `exec` and in a swarm.
    @Test(arguments: StoreKind.allCases)
    func aDeletedPluginStillRunsOnEveryHost(kind: StoreKind) async throws {
        let hosts = try await Hosts(kind)
        let digest = try await hosts.add("wordcount", as: "moved")
        try FileManager.default.removeItem(atPath: hosts.root + "/moved")
        for host in ["a", "b"] {
            let ran = try await hosts.purser(["exec", "moved", "--input", #"{"text":"a b"}"#, "--json"], host: host)
            #expect(ran.status == 0, "\(ran.stderr)")
            #expect(try JSONParser.parse(ran.stdout)["output"]?["words"] == 2)
            let cached = try FileManager.default.attributesOfItem(atPath: hosts.cached(digest, host: host))
            #expect((cached[.posixPermissions] as? Int) == 0o755)
            #expect(try sha256Hex([UInt8](Data(contentsOf: URL(fileURLWithPath: hosts.cached(digest, host: host))))) == digest)
        }
        let verified = try await hosts.purser(["plugin", "verify"])
        #expect(verified.status == 1 && verified.stdout.contains("runs use its pinned bytes from the store"), "\(verified.stdout)")
        let run = try await hosts.purser(["run", try hosts.job("moved"), "--json"], host: "c")
        #expect(run.status == 0, "\(run.stderr)")
        #expect(try JSONParser.parse(run.stdout)["routines"]?.arrayValue?.first?["output"]?["words"] == 3)
        #expect(FileManager.default.fileExists(atPath: hosts.cached(digest, host: "c")))
    }

    /// Bytes altered in the store are never run, by `exec` or in a swarm, and never cached.
    @Test(arguments: StoreKind.allCases)
    func bytesAlteredInTheStoreAreRefused(kind: StoreKind) async throws {
        let hosts = try await Hosts(kind)
        let digest = try await hosts.add("wordcount", as: "tampered")
        try FileManager.default.removeItem(atPath: hosts.root + "/tampered")
        var bytes = try #require(try hosts.sql("SELECT bytes FROM plugin_files WHERE sha256 = $1", [.text(digest)]).first?.first)
        guard case .blob(var altered) = bytes else { Issue.record("not a blob: \(bytes)"); return }
        altered[altered.count / 2] ^= 0xff
        bytes = .blob(altered)
        _ = try hosts.sql("UPDATE plugin_files SET bytes = $1 WHERE sha256 = $2", [bytes, .text(digest)])
        let refused = try await hosts.purser(["exec", "tampered", "--input", #"{"text":"a"}"#])
        #expect(refused.status == 2, "\(refused.stdout)")
        #expect(refused.stderr.contains("plugin tampered: the store's copy of its file has sha256"), "\(refused.stderr)")
        #expect(refused.stderr.contains("not the pinned \(digest.prefix(12))"), "\(refused.stderr)")
        let run = try await hosts.purser(["run", try hosts.job("tampered")])
        #expect(run.status == 2)
        #expect(run.stderr.contains("routines.a.plugin: plugin tampered: the store's copy"), "\(run.stderr)")
        #expect(!FileManager.default.fileExists(atPath: hosts.cached(digest)))
    }

    /// A cached copy that no longer has the pinned digest is fetched again.
    @Test func aCachedCopyThatChangedIsFetchedAgain() async throws {
        let hosts = try await Hosts(.sqlite)
        let digest = try await hosts.add("wordcount", as: "wc")
        try FileManager.default.removeItem(atPath: hosts.root + "/wc")
        #expect(try await hosts.purser(["exec", "wc", "--input", #"{"text":"a"}"#]).status == 0)
        try FileManager.default.removeItem(atPath: hosts.cached(digest))
        try FileManager.default.copyItem(atPath: Fixtures.product("echo"), toPath: hosts.cached(digest))
        let ran = try await hosts.purser(["exec", "wc", "--input", #"{"text":"a b c d"}"#, "--json"])
        #expect(ran.status == 0, "\(ran.stderr)")
        #expect(try JSONParser.parse(ran.stdout)["output"]?["words"] == 4, "wordcount ran, not the echo left in the cache")
        #expect(try sha256Hex([UInt8](Data(contentsOf: URL(fileURLWithPath: hosts.cached(digest))))) == digest)
    }

    /// A file changed at its path runs as pinned, from the store; the store keeps one copy
    /// of a digest however many names pin it.
    @Test func aChangedFileRunsAsPinnedAndADigestIsStoredOnce() async throws {
        let hosts = try await Hosts(.sqlite)
        let digest = try await hosts.add("wordcount", as: "first")
        try FileManager.default.copyItem(atPath: hosts.root + "/first", toPath: hosts.root + "/second")
        #expect(try await hosts.purser(["plugin", "add", hosts.root + "/second", "--name", "second"]).status == 0)
        #expect(try hosts.sql("SELECT count(*) FROM plugin_files", []).first?.first == .integer(1))
        try FileManager.default.removeItem(atPath: hosts.root + "/first")
        try FileManager.default.copyItem(atPath: Fixtures.product("echo"), toPath: hosts.root + "/first")
        let ran = try await hosts.purser(["exec", "first", "--input", #"{"text":"a b"}"#, "--json"])
        #expect(ran.status == 0, "\(ran.stderr)")
        #expect(try JSONParser.parse(ran.stdout)["output"]?["words"] == 2)
        #expect(FileManager.default.fileExists(atPath: hosts.cached(digest)))
    }

    /// A `#!` script needs its interpreter: it stays at its path, and `plugin add` says so.
    @Test func aScriptIsNotStored() async throws {
        let hosts = try await Hosts(.sqlite)
        let script = hosts.root + "/greeter.sh"
        try Fixtures.writeScriptPlugin(at: script, name: "greeter")
        let added = try await hosts.purser(["plugin", "add", script])
        #expect(added.status == 0, "\(added.stderr)")
        #expect(added.stdout.contains("not in the store: a #! script needs its interpreter on each host: install it at \(script) on every host"), "\(added.stdout)")
        #expect(try hosts.sql("SELECT count(*) FROM plugin_files", []).first?.first == .integer(0))
    }
}

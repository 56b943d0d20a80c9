import Foundation
import PurserProtocol
import PurserTestSupport
import Testing

/// Hosts that lack a registered plugin's file run it from the store (issue 18).
extension FleetSuites {
@Suite("The fleet runs plugins fetched from the store", .timeLimit(.minutes(3)))
struct FleetPluginFileTests {
    /// The plugin's file is deleted after `plugin add`; two hosts, each with a home of its
    /// own, fetch it by digest into their caches and run the whole swarm.
    @Test(arguments: StoreKind.allCases)
    func aPluginDeletedAfterAddRunsOnTheHosts(kind: StoreKind) async throws {
        let fleet = try await Fleet(kind)
        let file = fleet.home + "/gone-scripted"
        try FileManager.default.copyItem(atPath: Fixtures.product("scripted"), toPath: file)
        let added = try await fleet.purser(["plugin", "add", file, "--name", "gone", "--json"])
        try #require(added.status == 0, "\(added.stderr)")
        let digest = try #require(try JSONParser.parse(added.stdout)["sha256"]?.stringValue)
        try FileManager.default.removeItem(atPath: file)
        let homes = ["a", "b"].map { fleet.home + "/host-" + $0 }
        let hosts = try zip(["a", "b"], homes).map { try ServeProcess(name: $0, fleet: fleet, home: $1) }
        let id = try await fleet.submit(try fleet.job("fetched", count: 12, input: "{ spend: 0.5, sleepMs: 200 }", plugin: "gone"))
        let watched = try await fleet.purser(["watch", id, "--json"])
        #expect(watched.status == 0, "\(watched.stderr)")
        let routines = try JSONParser.parse(Array(watched.stdout.utf8))["routines"]?.arrayValue ?? []
        #expect(routines.count == 12 && routines.allSatisfy { $0["verdict"] == "ok" }, "\(watched.stdout)")
        for (name, home) in zip(["a", "b"], homes) where routines.contains(where: { $0["host"]?.stringValue == name }) {
            #expect(FileManager.default.fileExists(atPath: home + "/plugins/" + digest), "host \(name) ran it from its cache")
        }
        for host in hosts { host.kill(SIGTERM) }
        for host in hosts { #expect(await host.exitStatus() == 0, "\(host.output)") }
    }

    /// A plugin the store cannot carry (a `#!` script) whose file a host lacks: `purser hosts`
    /// says which host cannot run it and why; a host that has it says nothing.
    @Test func hostsSayWhichPluginsTheyCannotRun() async throws {
        let fleet = try await Fleet(.sqlite)
        let script = fleet.home + "/shout.sh"
        try Fixtures.writeScriptPlugin(at: script, name: "shout")
        let added = try await fleet.purser(["plugin", "add", script, "--name", "shout"])
        try #require(added.status == 0, "\(added.stderr)")
        let host = try ServeProcess(name: "a", fleet: fleet)
        try await fleet.wait("host a to join") { store in try store.hosts().contains { $0.name == "a" } }
        try await Task.sleep(for: .seconds(1))
        let before = try await fleet.purser(["hosts", "--json"])
        #expect(!before.stdout.contains("cannot run"), "it has the script: \(before.stdout)")
        host.kill(SIGTERM)
        #expect(await host.exitStatus() == 0)
        try FileManager.default.removeItem(atPath: script)
        let again = try ServeProcess(name: "a", fleet: fleet)
        try await fleet.wait("host a to say it cannot run shout") { store in
            try store.hosts().contains { $0.name == "a" && $0.state == "live" && $0.note.contains("cannot run shout:") }
        }
        let shown = try await fleet.purser(["hosts"])
        #expect(shown.stdout.contains("cannot run shout:") && shown.stdout.contains(script), "\(shown.stdout)")
        again.kill(SIGTERM)
        _ = await again.exitStatus()
    }
}
}

import Foundation
import PurserLedger
import PurserProtocol
import PurserRuntime
import PurserSandbox
import PurserTestSupport
import Testing

/// A manifest has one type: what the operator's file declares is what the registry keeps
/// and what a run reads back from it.
@Suite("Plugin manifests")
struct PluginManifestTests {
    func record(_ manifest: PluginManifest) -> PluginRecord {
        let info: JSONValue = ["version": "1", "manifest": manifest.json]
        return PluginRecord(name: "p", path: "/p", sha256: "00", info: info.serialized(), addedMs: 0)
    }

    @Test func aManifestReadsBackFromTheRegistryAsItWasDeclared() throws {
        let file = Fixtures.temporaryHome() + "/plugin.yaml"
        try """
            name: p
            reservation: { default: { credits: 2, time: 30s, memory: 64MiB }, max: { credits: 5 } }
            tools: [web, db]
            environment: [HOME]
            trusted: true
            optOut: [seccomp]
            deterministic: true
            reuse: false
            """.write(toFile: file, atomically: true, encoding: .utf8)
        var declared = try PluginManifest.load(path: file)
        let stored = try PluginCall(record(declared), tool: nil).manifest
        #expect(stored.sandbox == .trusted && stored.optOut == [.seccomp])
        declared.name = nil  // the record keeps the name, not the manifest's JSON
        #expect(stored == declared)
    }

    @Test func aRecordWithoutAManifestGetsTheDefaults() throws {
        let bare = try PluginCall(PluginRecord(name: "p", path: "/p", sha256: "00", info: "{}", addedMs: 0), tool: nil).manifest
        #expect(bare == PluginManifest())
        #expect(bare.sandbox == .untrusted && bare.reuse)
    }
}

import PurserLedger
import PurserTestSupport
import Testing

@Suite("Plugin file store conformance", .storeWork, .timeLimit(.minutes(1)))
struct PluginFileStoreConformanceTests {
    static func open<Driver: SQLDriver>(_ driver: Driver) throws -> any PluginFileStore {
        try SQLPluginFileStore<Driver>.open(driver)
    }

    @Test("bytes are kept by digest exactly, NULs and high bytes included; a digest kept is not overwritten",
        arguments: StoreKind.allCases)
    func keeps(kind: StoreKind) throws {
        let store = try Self.open(kind.driver())
        let bytes: [UInt8] = [0x7f, 0x45, 0x4c, 0x46, 0, 0, 0xff, 0x80, 0x0a, 0x5c, 0x78, 0]
        #expect(try store.pluginFile(sha256: "aa") == nil)
        #expect(try !store.hasPluginFile(sha256: "aa"))
        try store.putPluginFile(sha256: "aa", bytes: bytes)
        try store.putPluginFile(sha256: "aa", bytes: [1, 2, 3])
        try store.putPluginFile(sha256: "bb", bytes: [])
        #expect(try store.pluginFile(sha256: "aa") == bytes)
        #expect(try store.hasPluginFile(sha256: "aa"))
        #expect(try store.pluginFile(sha256: "bb") == [])
        #expect(try store.pluginFile(sha256: "cc") == nil)
    }

    @Test("a file of a few MiB of every byte value comes back whole", arguments: StoreKind.allCases)
    func large(kind: StoreKind) throws {
        let store = try Self.open(kind.driver())
        var rng = SplitMix(seed: 18)
        let bytes = (0..<(3 << 20 + 5)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        try store.putPluginFile(sha256: "big", bytes: bytes)
        #expect(try store.pluginFile(sha256: "big") == bytes)
    }
}

import Foundation
import PurserSandbox
import Testing

/// A supervisor is taken for dead, and what it left killed, only when that is certain: a
/// live one, or one this host cannot see (another PID namespace, another boot or host), never.
@Suite("Who a dead supervisor was")
struct SupervisorIdentityTests {
    func identity(_ me: SupervisorIdentity, pid: Int32? = nil, start: UInt64? = nil, namespace: UInt64? = nil, boot: String? = nil)
        -> SupervisorIdentity?
    {
        let fields = ["\(pid ?? me.pid)", "\(start ?? me.startTime)", "\(namespace ?? me.pidNamespace)"] + [boot ?? me.boot].compactMap { $0 }
        return SupervisorIdentity(Substring(fields.joined(separator: ".")))
    }

    @Test func aLiveSupervisorIsNotDead() throws {
        let me = try #require(SupervisorIdentity.current)
        #expect(SupervisorIdentity(Substring(me.local))?.isDead == false)
        #expect(SupervisorIdentity(Substring(me.global))?.isDead == false)
        #expect(me.boot != nil, "this host has a boot id")
    }

    /// Alive while its process lives; dead once it is gone, or its pid is another's.
    @Test func aSupervisorWhoseProcessIsGoneOrWhosePidWasReusedIsDead() throws {
        let me = try #require(SupervisorIdentity.current)
        #expect(identity(me, start: me.startTime + 1)?.isDead == true)
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/sleep")
        child.arguments = ["60"]
        try child.run()
        let stat = try String(contentsOfFile: "/proc/\(child.processIdentifier)/stat", encoding: .utf8)
        let fields = stat[stat.index(after: try #require(stat.lastIndex(of: ")")))...].split(separator: " ")
        let start = try #require(UInt64(fields[19]))
        let other = try #require(identity(me, pid: child.processIdentifier, start: start))
        #expect(!other.isDead)
        kill(child.processIdentifier, SIGKILL)
        child.waitUntilExit()
        #expect(other.isDead)
    }

    @Test func oneOfAnotherNamespaceOrBootIsNeverTakenForDead() throws {
        let me = try #require(SupervisorIdentity.current)
        #expect(identity(me, start: me.startTime + 1, namespace: me.pidNamespace + 1)?.isDead == false)
        let otherBoot = String(repeating: me.boot?.first == "0" ? "1" : "0", count: 32)
        #expect(identity(me, start: me.startTime + 1, boot: otherBoot)?.isDead == false)
    }

    @Test(arguments: ["", "1.2", "a.2.3", "1.2.3.4.5", "1.2.3.xyz", "-1.2.3", "0.2.3", "1..3", "1.2.3." + String(repeating: "g", count: 32)])
    func anythingElseIsNoIdentity(text: String) {
        #expect(SupervisorIdentity(Substring(text)) == nil)
    }
}

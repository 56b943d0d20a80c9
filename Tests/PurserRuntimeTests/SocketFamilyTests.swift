import Foundation
import Glibc
import PurserProtocol
import PurserRuntime
import PurserSandbox
import PurserTestSupport
import Testing

/// The network wall is an allow-list of socket families: a namespace holds IPv4, IPv6, Unix
/// and netlink-route sockets, but not vsock (which reaches the hypervisor on a VM) nor the
/// other families and protocols the kernel offers. The worker tries every one (the
/// "sockets" mode); the trusted profile, which has no filter, shows which this host has.
@Suite("No socket reaches past the network namespace", .timeLimit(.minutes(2)))
struct SocketFamilyTests {
    /// Unix sockets (socketpairs, its own names), IPv4 and IPv6 (its namespace has only
    /// loopback, down, so every connect fails with ENETUNREACH, as the SPEC promises), and
    /// netlink-route (its own namespace's interfaces, which getaddrinfo and getifaddrs read).
    static let allowed: Set<Int32> = [AF_UNIX, AF_INET, AF_INET6, AF_NETLINK]
    static let inetAllowed: Set<String> = ["tcp", "tcp by number", "tcp nonblocking", "udp", "udp by number"]

    /// Each level's probe, run once for the suite (a run is a spawn and a /proc scan, and the
    /// machine is small and shared).
    static let probes = Task { () async throws -> [SandboxLevel: RunReport] in
        var reports: [SandboxLevel: RunReport] = [:]
        for level in SandboxLevel.allCases {
            var request = Fixtures.hostile("sockets")
            request.sandbox = level
            reports[level] = try await run(request)
        }
        return reports
    }

    func probe(_ level: SandboxLevel) async throws -> JSONValue {
        let report = try #require(try await Self.probes.value[level])
        #expect(report.verdict == .ok, "\(report.message ?? "") \(report.stderrTail)")
        return try #require(report.output)
    }

    @Test func onlyTheAllowedFamiliesOpen() async throws {
        let closed = try await probe(.untrusted)
        let open = try await probe(.trusted)
        var reachable: [Int32] = []
        for family in Int32(0)..<64 {
            let key = "\(family)"
            if open["socket"]?[key] == "OK" { reachable.append(family) }
            if Self.allowed.contains(family) {
                #expect(closed["socket"]?[key] == "OK", "family \(family) is allowed: \(closed["socket"]?[key] ?? nil)")
            } else {
                #expect(closed["socket"]?[key] != "OK" && closed["socket"]?[key] != nil, "socket(\(family)) opened")
            }
            #expect((closed["socketpair"]?[key] == "OK") == (family == AF_UNIX), "socketpair(\(family)): \(closed["socketpair"]?[key] ?? nil)")
        }
        #expect(Set(reachable).subtracting(Self.allowed).count > 0, "without the filter this host opens more (\(reachable)): the check can fail")
    }

    /// On a VM, vsock reaches the hypervisor: the socket is refused, so neither a machine-wide
    /// bind nor a connect to the host can follow; nor does junk in the argument's high word,
    /// which the kernel ignores, get it past the filter.
    @Test func vsockIsRefused() async throws {
        let closed = try await probe(.untrusted)
        for step in ["socket", "bind", "connect", "dgram", "seqpacket", "high bits"] {
            #expect(closed["vsock"]?[step] != "OK" && closed["vsock"]?[step] != nil, "vsock \(step): \(closed["vsock"]?[step] ?? nil)")
        }
        #expect(closed["vsock"]?["socket"] == "EAFNOSUPPORT", "the filter refuses it, not a host without vsock")
        if FileManager.default.fileExists(atPath: "/dev/vsock") {
            let open = try await probe(.trusted)
            #expect(open["vsock"]?["socket"] == "OK", "trusted, this VM's vsock opens: the check can fail")
            #expect(open["vsock"]?["bind"] == "OK")
            #expect(open["vsock"]?["high bits"] == "OK")
        }
    }

    /// IPv4 and IPv6 give TCP and UDP only: not raw, ping, SCTP, DCCP, UDP-Lite nor MPTCP (kernel
    /// surface the worker has no use for, and modules a socket() would otherwise load).
    /// Netlink gives the route protocol only: the others (uevents, audit, sock_diag, generic,
    /// …) are not all kept to the namespace.
    @Test func inetIsTCPAndUDPAndNetlinkIsRoutesOnly() async throws {
        let closed = try await probe(.untrusted)
        let open = try await probe(.trusted)
        var openedByTrusted: [String] = []
        for family in ["inet", "inet6"] {
            let kinds = try #require(closed[family]?.objectValue).keys
            #expect(kinds.count == 15)
            for kind in kinds {
                if open[family]?[kind] == "OK" && !Self.inetAllowed.contains(kind) { openedByTrusted.append("\(family) \(kind)") }
                if Self.inetAllowed.contains(kind) {
                    #expect(closed[family]?[kind] == "OK", "\(family) \(kind): \(closed[family]?[kind] ?? nil)")
                } else {
                    #expect(closed[family]?[kind] != "OK", "\(family) \(kind) opened")
                }
            }
        }
        #expect(!openedByTrusted.isEmpty, "without the filter more opens: the check can fail")
        var netlinkOpen: [Int] = []
        for number in 0..<32 {
            #expect((closed["netlink"]?["\(number)"] == "OK") == (number == 0), "netlink \(number): \(closed["netlink"]?["\(number)"] ?? nil)")
            if open["netlink"]?["\(number)"] == "OK" { netlinkOpen.append(number) }
        }
        #expect(netlinkOpen.count > 1, "without the filter more netlink protocols open (\(netlinkOpen)): the check can fail")
    }

    /// Another ABI's numbers would slip past a filter written for this one's: the x32 bit and
    /// i386 calls (socket, and socketcall, which multiplexes every socket call) fail whole.
    @Test func otherABIsCannotOpenSockets() async throws {
        let closed = try await probe(.untrusted)
        let abi = try #require(closed["abi"]?.objectValue)
        for (call, result) in abi where call != "native only" {
            #expect(result == "ENOSYS", "\(call): \(result)")
        }
        #if arch(x86_64)
        let open = try await probe(.trusted)
        if open["abi"]?["i386 socket"] == "OK" {
            #expect(open["abi"]?["i386 socketcall"] == "OK", "trusted, i386 calls open vsock: the check can fail")
        }
        #endif
    }
}

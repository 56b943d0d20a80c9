@testable import PurserRuntime
import Testing

/// The egress proxy reads a request head a worker chooses how to send.
@Suite("Egress proxy request heads")
struct ProxyHeadTests {
    /// A head sent a byte at a time (64 KiB of reads of one byte each) must cost the
    /// supervisor a look at each byte, not a scan of all read so far after each: that is
    /// 2^31 comparisons a connection, 16 connections at once, on the supervisor's CPU.
    @Test func aHeadSentAByteAtATimeIsScannedOnce() {
        var headEnd = ProxyConnection.HeadEnd()
        var bytes: [UInt8] = []
        for _ in 0..<(64 << 10) {
            bytes.append(UInt8(ascii: "a"))
            #expect(headEnd.find(bytes) == nil)
        }
        bytes += Array("\r\n\r".utf8)
        #expect(headEnd.find(bytes) == nil)
        bytes += Array("\n".utf8)
        #expect(headEnd.find(bytes) == 64 << 10, "the end is found across reads")
        #expect(headEnd.examined <= bytes.count, "each position is looked at once: \(headEnd.examined)")
    }
}

/// The last 64 KiB of a worker's stderr, with lines cut at 64 KiB.
struct StderrTail {
    static let limit = 64 * 1024
    private var bytes: [UInt8] = []
    private var lineLength = 0

    mutating func append(_ chunk: UnsafeRawBufferPointer) {
        for byte in chunk {
            if byte == 0x0A {
                lineLength = 0
                bytes.append(byte)
            } else if lineLength < Self.limit {
                lineLength += 1
                bytes.append(byte)
                if lineLength == Self.limit { bytes.append(contentsOf: Array("…[cut]".utf8)) }
            }
        }
        if bytes.count > 2 * Self.limit { bytes.removeFirst(bytes.count - Self.limit) }
    }

    var text: String {
        String(decoding: bytes.suffix(Self.limit), as: UTF8.self)
    }
}

import Glibc

/// Parameters as libpq takes them: text, except blobs, which go in binary with their
/// length (BYTEA's text form would double them, and their first NUL would end them).
struct PostgresParameters {
    var values: [UnsafePointer<CChar>?]
    var lengths: [Int32]?
    var formats: [Int32]?

    init(values: [UnsafePointer<CChar>?], arguments: [SQLValue]) {
        self.values = values
        guard arguments.contains(where: { if case .blob = $0 { true } else { false } }) else { return }
        lengths = arguments.map { if case .blob(let bytes) = $0 { Int32(clamping: bytes.count) } else { 0 } }
        formats = arguments.map { if case .blob = $0 { 1 } else { 0 } }
    }
}

/// The bytes in memory from malloc, for the caller to free.
func mallocCopy(_ bytes: [UInt8]) -> UnsafeMutablePointer<CChar>? {
    guard let copy = malloc(max(bytes.count, 1)) else { return nil }
    bytes.withUnsafeBytes { source in
        if let base = source.baseAddress { copy.copyMemory(from: base, byteCount: source.count) }
    }
    return copy.assumingMemoryBound(to: CChar.self)
}

/// A BYTEA in PostgreSQL's text form (`\x` and two hex digits a byte, the default output
/// since 9.0), as its bytes. Results come as text so that one query's integers and text
/// read as they always have; a plugin file of 64 MiB arrives as 128 MiB of hex. Any other
/// form (a server set to `bytea_output = escape`) reads as no bytes, which no digest matches.
func hexBytes(_ text: UnsafePointer<CChar>?, _ length: Int32) -> [UInt8] {
    guard let text, length >= 2 else { return [] }
    let raw = UnsafeRawPointer(text).assumingMemoryBound(to: UInt8.self)
    guard raw[0] == UInt8(ascii: "\\"), raw[1] == UInt8(ascii: "x") else { return [] }
    let count = (Int(length) - 2) / 2
    return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
        for index in 0..<count {
            buffer[index] = nibble(raw[2 + 2 * index]) << 4 | nibble(raw[3 + 2 * index])
        }
        initialized = count
    }
}

private func nibble(_ digit: UInt8) -> UInt8 {
    switch digit {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): digit - UInt8(ascii: "A") + 10
    default: 0
    }
}

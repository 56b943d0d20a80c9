import CLibPQ
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

/// A BYTEA in PostgreSQL's text form (`\x` and two hex digits a byte by default; the
/// older escape form too), as its bytes, decoded by libpq. Results come as text so that one
/// query's integers and text read as they always have; a plugin file of 64 MiB arrives as
/// 128 MiB of hex. Text libpq cannot decode reads as no bytes, which no digest matches.
func byteaBytes(_ text: UnsafePointer<CChar>?) -> [UInt8] {
    guard let text else { return [] }
    var length = 0
    guard let decoded = PQunescapeBytea(UnsafeRawPointer(text).assumingMemoryBound(to: UInt8.self), &length) else { return [] }
    defer { PQfreemem(decoded) }
    return [UInt8](UnsafeBufferPointer(start: decoded, count: length))
}

/// Human units for durations and sizes, as command lines and job files write them.
public enum Units {
    /// "500ms", "30s", "2m", "1h", "1.5s"; a bare number is seconds. Returns milliseconds.
    public static func parseDuration(_ text: String) -> Int64? {
        let units: [(String, Double)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]
        return parse(text, units: units, bare: 1000)
    }

    /// "64MiB", "2GiB", "512K", "1GB", "100B"; a bare number is bytes. Returns bytes.
    public static func parseSize(_ text: String) -> Int64? {
        let kib = 1024.0
        let units: [(String, Double)] = [
            ("KiB", kib), ("MiB", kib * kib), ("GiB", kib * kib * kib), ("TiB", kib * kib * kib * kib),
            ("KB", 1e3), ("MB", 1e6), ("GB", 1e9), ("TB", 1e12),
            ("K", kib), ("M", kib * kib), ("G", kib * kib * kib), ("T", kib * kib * kib * kib), ("B", 1),
        ]
        return parse(text, units: units, bare: 1)
    }

    private static func parse(_ text: String, units: [(String, Double)], bare: Double) -> Int64? {
        let trimmed = text.trimmingSpaces()
        var number = Substring(trimmed)
        var factor = bare
        // Longest suffix first, so "ms" is not read as "m" + "s".
        for (suffix, value) in units.sorted(by: { $0.0.count > $1.0.count }) where trimmed.hasSuffix(suffix) {
            number = trimmed.dropLast(suffix.count)
            factor = value
            break
        }
        guard !number.isEmpty, number.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
            number.filter({ $0 == "." }).count <= 1, let value = Double(number)
        else { return nil }
        let result = (value * factor).rounded(.up)
        guard result.isFinite, result >= 0, result < 9.2e18 else { return nil }
        return Int64(result)
    }

    /// Exact: "7ms", "30s", "9.993s".
    public static func formatDuration(_ milliseconds: Int64) -> String {
        if milliseconds < 1000 { return "\(milliseconds)ms" }
        if milliseconds % 3_600_000 == 0 { return "\(milliseconds / 3_600_000)h" }
        if milliseconds % 60_000 == 0 { return "\(milliseconds / 60_000)m" }
        var fraction = String(milliseconds % 1000)
        fraction = String(repeating: "0", count: 3 - fraction.count) + fraction
        while fraction.hasSuffix("0") { fraction.removeLast() }
        return "\(milliseconds / 1000)" + (fraction.isEmpty ? "" : "." + fraction) + "s"
    }

    public static func formatSize(_ bytes: Int64) -> String {
        let steps = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes)
        var step = 0
        while value >= 1024 && step < steps.count - 1 {
            value /= 1024
            step += 1
        }
        return (step == 0 ? "\(bytes)" : decimal(value)) + steps[step]
    }

    private static func decimal(_ value: Double) -> String {
        let tenths = (value * 10).rounded()
        return tenths.truncatingRemainder(dividingBy: 10) == 0 ? "\(Int64(tenths / 10))" : "\(tenths / 10)"
    }
}

extension String {
    func trimmingSpaces() -> String {
        String(drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}

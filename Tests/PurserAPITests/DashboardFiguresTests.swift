import Foundation
import PurserProtocol
import PurserTestSupport
import Testing

extension APISuites {
    @Suite("The dashboard's workers and tiers")
    struct DashboardFiguresTests {
        @Test("a running worker shows its host, its real pid there and a memory peak, on the page and in the API")
        func runningWorker() async throws {
            let serve = try await APIServe()
            let socket = "unix:" + serve.socket
            let job = serve.job("slow", count: 1, input: "{ sleepMs: 600000 }")
            let submitted = try await HTTPAnswer.request("POST", "/v1/swarms?file=slow.yaml", on: socket, body: job)
            try #require(submitted.status == 201, "\(submitted.body)")
            let id = try #require(submitted.json["swarmId"]?.stringValue)
            // The host says at its heartbeats (every 300 ms here): asked every 100 ms, a minute at most.
            var shown = try await HTTPAnswer.request("GET", "/v1/swarms/\(id)", on: socket)
            for _ in 0..<600 where shown.json["routines"]?.arrayValue?.first?["hostPid"] == nil {
                try await Task.sleep(for: .milliseconds(100))
                shown = try await HTTPAnswer.request("GET", "/v1/swarms/\(id)", on: socket)
            }
            let routine = shown.json["routines"]?.arrayValue?.first ?? .null
            let pid = try #require(routine["hostPid"]?.numberValue?.int64.flatMap { Int32(exactly: $0) }, "no pid: \(shown.body)")
            #expect((routine["memoryPeakBytes"]?.numberValue?.int64 ?? 0) > 0, "\(shown.body)")
            #expect(Contract.problems(shown, "GET", "/v1/swarms/{id}").isEmpty, "\(Contract.problems(shown, "GET", "/v1/swarms/{id}"))")
            #expect(Self.ancestors(of: pid).contains(serve.pid), "pid \(pid) is not under the serve (\(serve.pid))")
            let command = (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? ""
            #expect(command.contains("scripted"), "pid \(pid) runs '\(command)'")

            let page = try await HTTPAnswer.request("GET", "/?part=live", on: socket)
            let row = try #require(Self.rows(in: page.body, section: "workers").first { $0.attributes.contains("data-worker=\"r0\"") }, "\(page.body)")
            #expect(row.cells.first == "api", "the host: \(row.cells)")
            #expect(row.cells.contains(String(pid)), "the pid: \(row.cells)")
            let bytes = row.html.firstMatch(of: /data-bytes="([0-9]+)"/).flatMap { Int64($0.1) }
            #expect((bytes ?? 0) > 0, "the memory peak: \(row.html)")
            let cancelled = try await HTTPAnswer.request("POST", "/v1/swarms/\(id)/cancel", on: socket)
            #expect(cancelled.status == 202, "\(cancelled.body)")
        }

        @Test("a finished swarm's page shows the tier tables its `purser watch` report prints, figure for figure")
        func tiers() async throws {
            let serve = try await APIServe()
            let socket = "unix:" + serve.socket
            let submitted = try await HTTPAnswer.request(
                "POST", "/v1/swarms?file=tiers.yaml", on: socket, body: serve.job("tiers", count: 3, input: "{ spend: 0.25 }"))
            try #require(submitted.status == 201, "\(submitted.body)")
            let id = try #require(submitted.json["swarmId"]?.stringValue)
            let watched = try await runPurser(["watch", id], home: serve.home)
            #expect(watched.status == 0, "\(watched.stdout)\(watched.stderr)")
            let text = Self.textTables(watched.stdout)
            #expect(text.count == 2, "two tier tables: \(watched.stdout)")
            #expect(text.first?.first { $0.first == "routine" }?.dropFirst().first == "3", "three routines: \(text)")

            let page = try await HTTPAnswer.request("GET", "/swarms/\(id)?part=live", on: socket)
            try #require(page.status == 200, "\(page.body)")
            let shown = ["tiers", "tier-holds"].map { section in
                [Self.head(in: page.body, section: section)] + Self.rows(in: page.body, section: section).map(\.cells)
            }
            #expect(shown.map { $0.map(Self.words) } == text, "page \(shown) text \(text)")
        }

        /// A row of a page's section: its attributes, its cells' text, and its HTML.
        struct Row {
            var attributes: String
            var cells: [String]
            var html: String
        }

        static func rows(in html: String, section: String) -> [Row] {
            guard let body = sectionHTML(html, section) else { return [] }
            return body.matches(of: /<tr([^>]*)>(.*?)<\/tr>/).compactMap { match in
                let cells = match.2.matches(of: /<td[^>]*>(.*?)<\/td>/).map { text(String($0.1)) }
                return cells.isEmpty ? nil : Row(attributes: String(match.1), cells: cells, html: String(match.0))
            }
        }

        static func head(in html: String, section: String) -> [String] {
            sectionHTML(html, section)?.matches(of: /<th>(.*?)<\/th>/).map { text(String($0.1)) } ?? []
        }

        private static func sectionHTML(_ html: String, _ id: String) -> Substring? {
            guard let start = html.range(of: "<section id=\"\(id)\">") else { return nil }
            let rest = html[start.upperBound...]
            return rest[..<(rest.range(of: "</section>")?.lowerBound ?? rest.endIndex)]
        }

        /// A cell's text: its tags dropped (a link's), its entities read.
        private static func text(_ cell: String) -> String {
            cell.replacing(/<[^>]*>/, with: "").replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
                .replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&#39;", with: "'")
                .replacingOccurrences(of: "&amp;", with: "&")
        }

        /// The tier tables of a report as text: each table from its `tier` header to a blank
        /// line, each line as its words (the columns are padded with spaces).
        static func textTables(_ output: String) -> [[[String]]] {
            var tables: [[[String]]] = []
            var current: [[String]]?
            for line in output.split(separator: "\n", omittingEmptySubsequences: false) {
                let words = words([String(line)])
                if words.first == "tier" { current = [] }
                if current != nil && words.isEmpty {
                    tables.append(current!)
                    current = nil
                }
                if current != nil { current!.append(words) }
            }
            if let current { tables.append(current) }
            return tables
        }

        static func words(_ cells: [String]) -> [String] {
            cells.flatMap { $0.split(whereSeparator: \.isWhitespace).map(String.init) }
        }

        /// The process's parent, its parent's, and so on (from /proc).
        static func ancestors(of pid: Int32) -> [Int32] {
            var chain: [Int32] = []
            var current = pid
            while current > 1 && chain.count < 32 {
                let status = (try? String(contentsOfFile: "/proc/\(current)/status", encoding: .utf8)) ?? ""
                guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("PPid:") }),
                    let parent = Int32(line.dropFirst(5).trimmingCharacters(in: .whitespaces)) else { break }
                chain.append(parent)
                current = parent
            }
            return chain
        }
    }
}

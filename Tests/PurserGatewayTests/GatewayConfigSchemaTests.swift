import Foundation
import PurserConfig
import PurserGateway
import PurserProtocol
import PurserTestSupport
import Testing

/// protocol/schemas/gateway-config.json describes what `GatewayConfig.parse` accepts: the
/// example config and the schema's own examples pass both, and bad configs fail both.
@Suite("Gateway config against protocol/schemas/gateway-config.json", .timeLimit(.minutes(1)))
struct GatewayConfigSchemaTests {
    static let schemaPath = Fixtures.file("protocol/schemas/gateway-config.json")
    static let environment = [
        "EXAMPLE_TOKEN": "example-token-0451", "TOKEN": "token-0451", "CRM_PASSWORD": "crm-password-0451",
    ]

    /// The schema's problems with `yaml`, and the loader's error, if any.
    static func verdicts(_ yaml: String) throws -> (schema: [String], loader: String?) {
        let value = try ConfigValue.parse(yaml, file: "test.yaml")
        let problems = try SchemaValidator(path: schemaPath).validate(value.json)
        do {
            _ = try GatewayConfig.parse(value, environment: environment)
            return (problems, nil)
        } catch {
            return (problems, "\(error)")
        }
    }

    /// A config with one integration, `api`, and `extra` lines in it.
    static func api(_ extra: String) -> String {
        "integrations:\n  api:\n    baseURL: http://example.com/v1/\n    \(extra)\n"
    }

    @Test("examples/gateway.yaml validates against the schema and loads")
    func exampleConfig() throws {
        let path = Fixtures.file("examples/gateway.yaml")
        let json = try ConfigValue.load(path: path).json
        let problems = try SchemaValidator(path: Self.schemaPath).validate(json)
        #expect(problems.isEmpty, "\(problems)")
        // The example's integrations use every field of an integration between them.
        let fields = try #require(try Self.integrationFields())
        let used = (json["integrations"]?.objectValue?.values.map { $0 } ?? []).flatMap { $0.objectValue?.keys.map { $0 } ?? [] }
        #expect(Set(used) == fields)
        let config = try GatewayConfig.load(path: path, environment: Self.environment)
        #expect(config.integration(named: "example")?.rateLimit?.burst == 5)
    }

    @Test("the schema's own examples load, secretsFile included")
    func schemaExamplesLoad() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Self.schemaPath))
        let examples = try #require(try JSONParser.parse([UInt8](data))["examples"]?.arrayValue)
        #expect(examples.count >= 2)
        let folder = Fixtures.temporaryHome()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try "WEATHER_KEY: weather-key-0451\n".write(toFile: folder + "/secrets.yaml", atomically: true, encoding: .utf8)
        for (index, example) in examples.enumerated() {
            let path = folder + "/config-\(index).json"
            try example.serialized().write(toFile: path, atomically: true, encoding: .utf8)
            #expect(throws: Never.self, "\(example.serialized())") {
                _ = try GatewayConfig.load(path: path, environment: Self.environment)
            }
            // What the loader reads back is what the schema saw.
            #expect(try ConfigValue.load(path: path).json == example)
        }
    }

    @Test("configs the schema accepts, the loader accepts", arguments: [
        api("methods: get, Post ,HEAD"),
        api("methods: []"),
        api("auth: [{ query: key, value: \"${env:TOKEN}\" }, { basic: { user: u, password: \"p$$w-${env:TOKEN}\" } }]"),
        api("auth: { header: X-Api-Key, value: \"${env:TOKEN}:${env:CRM_PASSWORD}\" }"),
        api("timeouts: { connect: 0.5, total: 3600 }"),
        api("timeouts: { connect: 250ms, total: 1h }"),
        api("maxResponseSize: 1073741824"),
        api("maxResponseSize: 64K"),
        api("cost: { perRequest: \"0.5\", cacheHit: 0.25 }"),
        api("cost: { perRequest: 1, perKiB: 0 }"),
        api("cost: { perKiB: 0.001, max: \"2\" }"),
        api("rateLimit: { rate: 0.5/s }"),
        api("rateLimit: { rate: 86400/d, burst: 1000000 }"),
        api("quotas: [{ per: month, credits: \"12.5\" }, { per: hour, requests: 1, credits: 0 }]"),
        api("retries: { max: 0, backoff: 0ms, maxBackoff: 1m }"),
        api("breaker: { failures: 10000, coolDown: 0 }"),
        api("cache: { ttl: 1.5s, maxEntries: 1 }"),
        api("cache: { ttl: 1m, scope: shared }"),
        api("cache: { ttl: 1m, scope: team }"),
        api("headers: [Accept, x-trace, If-None-Match, X-Forwarded, X-Originals]"),
        api("headers: []"),
        "integrations:\n  api:\n    baseURL: https://example.com/\n    tunnel: {}\n",
        "integrations:\n  api:\n    baseURL: HTTPS://example.com:8443\n    tunnel: { perConnection: 0.5, perMiB: \"1099511\", maxBytes: 1TiB, idleTimeout: 1h }\n",
        "integrations:\n  a.b_c-9:\n    baseURL: https://[::1]:8443\n  Z:\n    baseURL: HTTP://example.com\n",
    ])
    func goodConfigs(yaml: String) throws {
        let (schema, loader) = try Self.verdicts(yaml)
        #expect(schema.isEmpty, "schema: \(schema)")
        #expect(loader == nil, "loader: \(loader ?? "")")
    }

    @Test("configs the loader refuses, the schema refuses", arguments: [
        api("retry: { max: 1 }"),
        api("rateLimit: { rate: 10/s, burst: 0 }"),
        api("rateLimit: { rate: 10/s, burst: 1000001 }"),
        api("rateLimit: { rate: 10/w }"),
        api("rateLimit: { rate: 0/s }"),
        api("rateLimit: { burst: 5 }"),
        api("quotas: [{ per: week, requests: 5 }]"),
        api("quotas: [{ per: day }]"),
        api("quotas: [{ per: day, requests: 0 }]"),
        api("retries: { max: 11 }"),
        api("retries: { backoff: -1s }"),
        api("maxConcurrent: 0"),
        api("methods: [GET, TRACE]"),
        api("methods: GET, FETCH"),
        api("cost: { fromJSON: { field: usage.tokens, price: 0.01 } }"),
        api("cost: { perKiB: 0.001 }"),
        api("cost: { fromHeader: { name: X-Cost, price: 1 }, perKiB: 0 }"),
        api("cost: { perRequest: \"-1\" }"),
        api("cost: { perRequest: 1, rounding: up }"),
        api("timeouts: { total: 0s }"),
        api("timeouts: { total: 7200 }"),
        api("timeouts: { connect: 5 seconds }"),
        api("maxResponseSize: 0"),
        api("maxResponseSize: 2147483648"),
        api("maxResponseSize: 10 MiB"),
        api("auth: { header: \"Bad Header\", value: x }"),
        api("auth: { value: x }"),
        api("auth: { header: X-Key, value: \"${vault:KEY}\" }"),
        api("auth: { header: X-Key, value: \"${env:TOKEN\" }"),
        api("auth: { basic: { user: u } }"),
        api("cache: { maxEntries: 10 }"),
        api("cache: { ttl: 0 }"),
        api("breaker: { failures: 0 }"),
        api("cache: { ttl: 1m, scope: everyone }"),
        api("headers: Accept"),
        api("headers: [\"Bad Header\"]"),
        api("headers: [Accept, range]"),
        api("headers: [X-Forwarded-Host]"),
        api("headers: [x-original-url]"),
        api("headers: [X-HTTP-Method-Override]"),
        api("headers: [ACCEPT-ENCODING]"),
        api("headers: [Cookie]"),
        api("headers: [Host]"),
        api("tunnel: { perConnection: 1 }"),
        "integrations:\n  api:\n    baseURL: https://example.com/\n    tunnel: { maxBytes: 0 }\n",
        "integrations:\n  api:\n    baseURL: https://example.com/\n    tunnel: { maxBytes: 2199023255552 }\n",
        "integrations:\n  api:\n    baseURL: https://example.com/\n    tunnel: { idleTimeout: 7200 }\n",
        "integrations:\n  api:\n    baseURL: https://example.com/\n    tunnel: { idleTimeout: 0s }\n",
        "integrations:\n  api:\n    baseURL: https://example.com/\n    tunnel: { perMiB: 1099512 }\n",
        "integrations:\n  api:\n    baseURL: https://example.com/\n    tunnel: { perByte: 1 }\n",
        "integrations: {}\n",
        "integrations:\n",
        "secretsFile: \"\"\nintegrations:\n  api:\n    baseURL: http://example.com/\n",
        "integrations:\n  \"bad name\":\n    baseURL: http://example.com/\n",
        "integrations:\n  \(String(repeating: "x", count: 65)):\n    baseURL: http://example.com/\n",
        "integrations:\n  api:\n    baseURL: ftp://example.com/\n",
        "integrations:\n  api:\n    baseURL: http://example.com/?a=1\n",
        "integrations:\n  api:\n    methods: [GET]\n",
        "integrations:\n  api:\n    baseURL: http://example.com/\nsecrets: x.yaml\n",
    ])
    func badConfigs(yaml: String) throws {
        let (schema, loader) = try Self.verdicts(yaml)
        #expect(!schema.isEmpty, "the schema accepts:\n\(yaml)")
        #expect(loader != nil, "the loader accepts:\n\(yaml)")
    }

    /// protocol/GATEWAY.md is the config's one reference; docs/gateway.md and the README link to it.
    @Test("protocol/GATEWAY.md documents every field the schema has")
    func documented() throws {
        let fields = try #require(try Self.integrationFields())
        #expect(fields.count == 14)
        let text = try String(contentsOfFile: Fixtures.file("protocol/GATEWAY.md"), encoding: .utf8)
        for field in fields { #expect(text.contains("| `\(field)` |"), "protocol/GATEWAY.md lacks \(field)") }
    }

    /// The schema's names for an integration's fields.
    static func integrationFields() throws -> Set<String>? {
        let data = try Data(contentsOf: URL(fileURLWithPath: schemaPath))
        let schema = try JSONParser.parse([UInt8](data))
        return (schema["$defs"]?["integration"]?["properties"]?.objectValue?.keys).map { Set($0) }
    }
}

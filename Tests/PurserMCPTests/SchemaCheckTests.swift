import PurserMCP
import PurserProtocol
import Testing

@Suite("SchemaCheck: a tool's input against its inputSchema")
struct SchemaCheckTests {
    @Test("tolerant: what pydantic writes is understood, unknown keywords and formats are passed over")
    func tolerant() {
        let schema: JSONValue = [
            "type": "object", "required": ["n", "when"], "additionalProperties": false, "x-vendor": true,
            "properties": [
                "n": ["type": "integer", "minimum": 1, "maximum": 10], "when": ["type": "string", "format": "date-time"],
                "tags": ["type": "array", "items": ["$ref": "#/$defs/tag"], "maxItems": 2],
                "mode": ["anyOf": [["const": "fast"], ["const": "slow"]]],
            ],
            "$defs": ["tag": ["type": "string", "minLength": 1]],
        ]
        let check = SchemaCheck(schema, mode: .tolerant)
        #expect(check.problems(["n": 3, "when": "now", "tags": ["a"], "mode": "fast"]).isEmpty)
        #expect(check.problems(["n": 3.0, "when": "now"]).isEmpty, "3.0 is an integer in JSON Schema")
        #expect(check.problems(["n": 11, "when": "x", "tags": ["", "b", "c"], "mode": "other", "extra": 1]) == [
            "$.extra: not allowed", "$.mode: matches none of anyOf's 2 schemas", "$.n: maximum is 10",
            "$.tags[0]: minLength is 1, it has 0", "$.tags: maxItems is 2, it has 3",
        ])
        #expect(check.problems([:]) == ["$.n: required", "$.when: required"])
    }

    @Test("a hostile schema cannot make the check loop: a $ref to itself stops at the depth bound")
    func cyclesStop() {
        let schema: JSONValue = ["$ref": "#"]
        let problems = SchemaCheck(schema, mode: .tolerant).problems(["a": 1])
        #expect(problems.count == 1 && problems[0].contains("deeper than"), "\(problems)")
        var nested: JSONValue = ["type": "object"]
        for _ in 0..<100 { nested = ["allOf": [nested]] }
        #expect(!SchemaCheck(nested, mode: .tolerant).problems([:]).isEmpty)
    }

    @Test("strict: an unknown keyword is a problem, so Purser's own schemas say all they check")
    func strict() {
        #expect(SchemaCheck(["type": "object", "frobnicate": 1], mode: .strict).problems([:]) == ["$: validator does not know keyword frobnicate"])
        #expect(SchemaCheck(["type": "object", "frobnicate": 1], mode: .tolerant).problems([:]).isEmpty)
    }
}

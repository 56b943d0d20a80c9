extension PostgresConnection {
    /// `url` with its password, if any, replaced by `***`: in a URL's user information
    /// and `password=` query parameter, or a connection string's `password=` keyword.
    static func redacted(_ url: String) -> String {
        let characters = Array(url)
        for scheme in ["postgresql://", "postgres://"] where url.hasPrefix(scheme) {
            return redactedURI(characters, from: scheme.count)
        }
        return redactedKeywords(characters)
    }

    private static func redactedURI(_ characters: [Character], from start: Int) -> String {
        var output = characters
        let queryStart = characters[start...].firstIndex(of: "?") ?? characters.endIndex
        // user:password@host…: mask from the first ':' to the last '@' before the query.
        if let at = characters[start..<queryStart].lastIndex(of: "@"),
            let colon = characters[start..<at].firstIndex(of: ":")
        {
            output.replaceSubrange((colon + 1)..<at, with: Array("***"))
        }
        let shift = output.count - characters.count
        // …?password=…&…
        var index = queryStart + shift + 1
        while index < output.count {
            let end = output[index...].firstIndex(of: "&") ?? output.endIndex
            if let equals = output[index..<end].firstIndex(of: "="),
                String(output[index..<equals]).lowercased() == "password"
            {
                output.replaceSubrange((equals + 1)..<end, with: Array("***"))
                index = equals + 1 + 3 + 1
            } else {
                index = end + 1
            }
        }
        return String(output)
    }

    /// Masks `password = value` in a `keyword = value …` string, where a value is either
    /// bare or in single quotes with backslash escapes, as libpq reads it.
    private static func redactedKeywords(_ characters: [Character]) -> String {
        var output: [Character] = []
        var index = 0
        func skipSpace() {
            while index < characters.count, characters[index].isWhitespace {
                output.append(characters[index])
                index += 1
            }
        }
        while index < characters.count {
            skipSpace()
            let keywordStart = index
            while index < characters.count, characters[index] != "=", !characters[index].isWhitespace {
                output.append(characters[index])
                index += 1
            }
            let keyword = String(characters[keywordStart..<index])
            skipSpace()
            guard index < characters.count, characters[index] == "=" else { continue }
            output.append("=")
            index += 1
            skipSpace()
            var value: [Character] = []
            if index < characters.count, characters[index] == "'" {
                value.append("'")
                index += 1
                while index < characters.count, characters[index] != "'" {
                    if characters[index] == "\\", index + 1 < characters.count {
                        value.append(characters[index])
                        index += 1
                    }
                    value.append(characters[index])
                    index += 1
                }
                if index < characters.count {
                    value.append("'")
                    index += 1
                }
            } else {
                while index < characters.count, !characters[index].isWhitespace {
                    if characters[index] == "\\", index + 1 < characters.count {
                        value.append(characters[index])
                        index += 1
                    }
                    value.append(characters[index])
                    index += 1
                }
            }
            output += keyword.lowercased() == "password" ? Array("***") : value
        }
        return String(output)
    }
}

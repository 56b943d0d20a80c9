import PurserPluginKit

// Counts the words, lines and characters of a text, and spends 0.001 credits per word.
Plugin.serve(name: "wordcount", version: "1.0.0") { input, context in
    guard let text = input.stringValue ?? input["text"]?.stringValue else {
        throw PluginError.invalidInput("input must be a string or an object with a string field \"text\"")
    }
    var words: Int64 = 0
    var lines: Int64 = 0
    var inWord = false
    for scalar in text.unicodeScalars {
        if scalar == "\n" { lines += 1 }
        let isSpace = scalar.properties.isWhitespace
        if !isSpace && !inWord { words += 1 }
        inWord = !isSpace
    }
    if !text.isEmpty && !text.hasSuffix("\n") { lines += 1 }
    context.reportUsage(Credits(micros: words * 1_000))
    context.progress(1, "counted \(words) words")
    return [
        "words": .number(JSONNumber(words)),
        "lines": .number(JSONNumber(lines)),
        "characters": .number(JSONNumber(Int64(text.count))),
    ]
}

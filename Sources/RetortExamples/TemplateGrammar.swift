import Foundation
import RetortData
import RetortNumerics

/// Utterance templates: `{slot}` takes a random value of that slot, `(a|b)` one alternative, `[x]` is optional
/// (probability 1/2). Groups may hold slots; `[ ]` may hold one `( | )` group; nothing else nests.
public struct TemplateGrammar: Sendable {
    /// Slot values by name.
    public var slots: [String: [String]]
    /// Optional message openers.
    public var openers: [String]
    /// Optional message closers.
    public var closers: [String]
    /// Templates by intent, intents in file order.
    public var intents: [(name: String, templates: [String])]

    /// Loads a templates file (see examples/shop-support/templates.yaml), checking every slot reference.
    public static func load(_ url: URL) throws(DataError) -> TemplateGrammar {
        let root = try YAMLValue.load(url)
        let fields = try root.mapping(
            allowed: ["slots", "openers", "closers", "intents"], required: ["slots", "intents"])
        var slots: [String: [String]] = [:]
        guard let slotsValue = fields["slots"], case .mapping(let slotMapping) = slotsValue.node else {
            throw root.error("slots must be a mapping of slot name → values")
        }
        for (key, value) in slotMapping {
            let wrapped = YAMLValue(node: value, file: root.file, path: "slots.\(key.string ?? "?")")
            slots[key.string ?? ""] = try wrapped.sequence().map { (v) throws(DataError) in try v.string() }
        }
        let openers = try fields["openers"]?.sequence().map { (v) throws(DataError) in try v.string() } ?? []
        let closers = try fields["closers"]?.sequence().map { (v) throws(DataError) in try v.string() } ?? []
        guard let intentsValue = fields["intents"], case .mapping(let intentMapping) = intentsValue.node else {
            throw root.error("intents must be a mapping of intent → templates")
        }
        var intents: [(String, [String])] = []
        for (key, value) in intentMapping {
            let wrapped = YAMLValue(node: value, file: root.file, path: "intents.\(key.string ?? "?")")
            let templates = try wrapped.sequence().map { (v) throws(DataError) in try v.string() }
            for template in templates {
                for name in Self.slotReferences(in: template) where slots[name] == nil {
                    throw wrapped.error("template \"\(template)\" uses undefined slot {\(name)}")
                }
            }
            intents.append((key.string ?? "", templates))
        }
        return TemplateGrammar(slots: slots, openers: openers, closers: closers, intents: intents)
    }

    static func slotReferences(in template: String) -> [String] {
        var names: [String] = []
        var current: String?
        for character in template {
            if character == "{" {
                current = ""
            } else if character == "}" {
                if let name = current { names.append(name) }
                current = nil
            } else if current != nil {
                current?.append(character)
            }
        }
        return names
    }

    /// Expands `template` with `generator`.
    public func expand(_ template: String, generator: inout SeededGenerator) -> String {
        expandCapturing(template, generator: &generator).text
    }

    /// Expands `template` with `generator`, with the value each slot took, in order (a slot inside an optional part
    /// that was left out takes none).
    public func expandCapturing(_ template: String, generator: inout SeededGenerator)
        -> (text: String, captures: [(slot: String, value: String)])
    {
        var output = ""
        var captures: [(slot: String, value: String)] = []
        var characters = Array(template)[...]
        while let character = characters.popFirst() {
            switch character {
            case "{":
                let name = String(characters.prefix { $0 != "}" })
                characters = characters.dropFirst(name.count + 1)
                if let values = slots[name], !values.isEmpty {
                    let value = values[generator.index(below: values.count)]
                    output += value
                    captures.append((name, value))
                }
            case "(":
                let body = String(characters.prefix { $0 != ")" })
                characters = characters.dropFirst(body.count + 1)
                let options = body.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
                let part = expandCapturing(options[generator.index(below: options.count)], generator: &generator)
                output += part.text
                captures += part.captures
            case "[":
                let body = String(characters.prefix { $0 != "]" })
                characters = characters.dropFirst(body.count + 1)
                if generator.index(below: 2) == 0 {
                    let part = expandCapturing(body, generator: &generator)
                    output += part.text
                    captures += part.captures
                }
            default:
                output.append(character)
            }
        }
        return (output.split(whereSeparator: { $0 == " " }).joined(separator: " "), captures)
    }
}

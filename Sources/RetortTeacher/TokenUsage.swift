/// One request's tokens, normalised across wire formats.
///
/// OpenAI counts cached tokens inside `prompt_tokens` and reasoning tokens inside `completion_tokens`; Anthropic
/// reports uncached input, cache reads and cache writes separately. Here `inputUncached`, `cacheRead` and `cacheWrite`
/// never overlap, and `output` includes `reasoning` (FORMATS.md §6).
public struct TokenUsage: Sendable, Equatable {
    /// Input tokens neither read from nor written to a cache.
    public var inputUncached = 0
    /// Input tokens read from a cache.
    public var cacheRead = 0
    /// Input tokens written to a cache.
    public var cacheWrite = 0
    /// Output tokens, reasoning included.
    public var output = 0
    /// Reasoning tokens (inside `output`).
    public var reasoning = 0

    /// Creates a value from its parts.
    public init(inputUncached: Int = 0, cacheRead: Int = 0, cacheWrite: Int = 0, output: Int = 0, reasoning: Int = 0) {
        self.inputUncached = inputUncached
        self.cacheRead = cacheRead
        self.cacheWrite = cacheWrite
        self.output = output
        self.reasoning = reasoning
    }

    /// Every token, each counted once.
    public var total: Int { inputUncached + cacheRead + cacheWrite + output }

    /// From an OpenAI `usage` object.
    public init(openAI usage: JSON) {
        let prompt = usage["prompt_tokens"]?.int ?? 0
        let cached = usage["prompt_tokens_details"]?["cached_tokens"]?.int ?? 0
        inputUncached = max(0, prompt - cached)
        cacheRead = cached
        output = usage["completion_tokens"]?.int ?? 0
        reasoning = usage["completion_tokens_details"]?["reasoning_tokens"]?.int ?? 0
    }

    /// From an Anthropic `usage` object (message or message_delta).
    public init(anthropic usage: JSON) {
        inputUncached = usage["input_tokens"]?.int ?? 0
        cacheRead = usage["cache_read_input_tokens"]?.int ?? 0
        cacheWrite = usage["cache_creation_input_tokens"]?.int ?? 0
        output = usage["output_tokens"]?.int ?? 0
    }

    /// The OpenAI `usage` object for these tokens.
    public var openAIJSON: JSON {
        [
            "prompt_tokens": .int(inputUncached + cacheRead + cacheWrite),
            "completion_tokens": .int(output),
            "total_tokens": .int(total),
            "prompt_tokens_details": ["cached_tokens": .int(cacheRead)],
            "completion_tokens_details": ["reasoning_tokens": .int(reasoning)],
        ]
    }

    /// Merges a later partial report (Anthropic streams send input at the start and output at the end).
    mutating func merge(_ other: TokenUsage) {
        inputUncached = max(inputUncached, other.inputUncached)
        cacheRead = max(cacheRead, other.cacheRead)
        cacheWrite = max(cacheWrite, other.cacheWrite)
        output = max(output, other.output)
        reasoning = max(reasoning, other.reasoning)
    }
}

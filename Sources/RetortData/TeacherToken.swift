/// One token of a structured teacher's answer with its log-probability and the alternatives the provider returned
/// (`teacher.tokens`, an OpenAI `logprobs.content` entry: `token`, `logprob`, `top_logprobs`), for token-level
/// distillation.
public struct TeacherToken: Sendable, Equatable {
    /// An alternative at this position.
    public struct Alternative: Sendable, Equatable {
        /// The alternative token's text.
        public var token: String
        /// Its log-probability (≤ 0).
        public var logprob: Double

        /// An alternative.
        public init(token: String, logprob: Double) {
            self.token = token
            self.logprob = logprob
        }
    }

    /// The token's text.
    public var token: String
    /// Its log-probability (≤ 0).
    public var logprob: Double
    /// The top alternatives, the token itself usually among them; empty when the provider returned none.
    public var alternatives: [Alternative]

    /// A token.
    public init(token: String, logprob: Double, alternatives: [Alternative] = []) {
        self.token = token
        self.logprob = logprob
        self.alternatives = alternatives
    }
}

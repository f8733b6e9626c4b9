/// Whether a task's inputs are texts or numeric vectors, or (structured) texts answered with JSON objects.
public enum TaskKind: String, Sendable, Codable, CaseIterable {
    /// String inputs.
    case text
    /// Fixed-length numeric vector inputs.
    case numeric
    /// String inputs answered with a flat JSON object (FORMATS.md §9).
    case structured
}

/// The teacher's identity, cost and latency (task.json, overridable by the job).
public struct TeacherInfo: Sendable, Codable, Equatable {
    /// Display name.
    public var name: String
    /// Parameter count, when known.
    public var params: Int?
    /// Median latency of one call, in milliseconds.
    public var latencyMsP50: Double?
    /// Price of 1000 calls in USD.
    public var costPer1kRequestsUSD: Double?
    /// Token prices in USD per million tokens, used with per-row `usage`.
    public var inputPerMTokUSD: Double?
    /// Output token price in USD per million tokens.
    public var outputPerMTokUSD: Double?

    /// A teacher description.
    public init(
        name: String, params: Int? = nil, latencyMsP50: Double? = nil, costPer1kRequestsUSD: Double? = nil,
        inputPerMTokUSD: Double? = nil, outputPerMTokUSD: Double? = nil
    ) {
        self.name = name
        self.params = params
        self.latencyMsP50 = latencyMsP50
        self.costPer1kRequestsUSD = costPer1kRequestsUSD
        self.inputPerMTokUSD = inputPerMTokUSD
        self.outputPerMTokUSD = outputPerMTokUSD
    }
}

import Foundation
import RetortNumerics

extension LlamaDecoder {
    /// Runs several sequences' new tokens, each after its own cache, in one pass: the `N` new tokens of all sequences
    /// are the rows of one sgemm per projection (`N × H` by the weights), attention runs per sequence over its own
    /// keys and values, and the LM head projects only each sequence's last row. What batched decoding (``SchemaDecoder``
    /// over many prompts) uses for both the prompts of a batch (of any lengths) and each decode step.
    ///
    /// Sequence `i` gets the logits of the last of `batch[i]` (as ``prefill(_:cache:)`` would return them, up to float
    /// rounding); an empty `batch[i]` skips sequence `i` (its cache untouched, its logits `[]`).
    ///
    /// - Throws: ``StudentError`` when `batch` and `caches` differ in count, a cache is not one of this decoder's, a
    ///   sequence would pass the context length or a token id is outside the vocabulary.
    public func prefill(batch: [[Int32]], caches: inout [Cache]) throws(StudentError) -> [[Float]] {
        guard batch.count == caches.count else {
            throw StudentError("\(batch.count) token lists but \(caches.count) caches; pass one cache per sequence")
        }
        let active = batch.indices.filter { !batch[$0].isEmpty }
        var out = [[Float]](repeating: [], count: batch.count)
        guard !active.isEmpty else { return out }
        let (h, kv) = (config.hiddenSize, config.kvSize)
        var tokens: [Int32] = []
        var rows: [Range<Int>] = []
        var starts: [Int] = []
        var cos: [Float] = []
        var sin: [Float] = []
        for i in active {
            guard caches[i].keys.count == config.layers, caches[i].values.count == config.layers else {
                throw StudentError(
                    "cache \(i) has \(caches[i].keys.count) layers, the decoder \(config.layers); start it with "
                        + "Cache(layers: decoder.config.layers)")
            }
            let (start, n) = (caches[i].count, batch[i].count)
            guard start + n <= config.contextLength else {
                throw StudentError(
                    "sequence \(i): \(start + n) positions exceed the model's context length \(config.contextLength); "
                        + "shorten the input")
            }
            if let bad = batch[i].first(where: { $0 < 0 || Int($0) >= config.vocabularySize }) {
                throw StudentError(
                    "sequence \(i): token id \(bad) is outside the vocabulary of \(config.vocabularySize)")
            }
            rows.append(tokens.count..<(tokens.count + n))
            starts.append(start)
            tokens += batch[i]
            let rotation = rotations(positions: start..<(start + n))
            cos += rotation.cos
            sin += rotation.sin
        }
        var x = embeddings.gatheringRows(tokens.map { Int($0) })
        do {
            for (index, layer) in layers.enumerated() {
                let a = rmsNorm(x, layer.attentionNorm)
                var q = try Self.linear(a, layer.query)
                var k = try Self.linear(a, layer.key)
                let v = try Self.linear(a, layer.value)
                rotate(&q, cos: cos, sin: sin)
                rotate(&k, cos: cos, sin: sin)
                var context = Matrix(rows: tokens.count, columns: h)
                for (slot, i) in active.enumerated() {
                    let r = rows[slot]
                    caches[i].keys[index] += k.storage[(r.lowerBound * kv)..<(r.upperBound * kv)]
                    caches[i].values[index] += v.storage[(r.lowerBound * kv)..<(r.upperBound * kv)]
                    let query = Matrix(
                        rows: r.count, columns: h, storage: Array(q.storage[(r.lowerBound * h)..<(r.upperBound * h)]))
                    let part = try attention(
                        query, keys: caches[i].keys[index], values: caches[i].values[index], start: starts[slot])
                    context.storage.replaceSubrange((r.lowerBound * h)..<(r.upperBound * h), with: part.storage)
                }
                try Self.linear(context, layer.output, addingTo: &x)
                try feedForward(&x, layer)
            }
        } catch {
            throw StudentError("decoder forward pass failed: \(error)")
        }
        for (slot, i) in active.enumerated() { caches[i].count += rows[slot].count }
        let last = rmsNorm(x.gatheringRows(rows.map { $0.upperBound - 1 }), outputNorm)
        let logits = try project(last)
        let vocabulary = logits.columns
        for (slot, i) in active.enumerated() {
            out[i] = Array(logits.storage[(slot * vocabulary)..<((slot + 1) * vocabulary)])
        }
        return out
    }
}

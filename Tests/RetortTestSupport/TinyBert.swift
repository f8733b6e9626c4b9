import Foundation
import RetortNumerics
import RetortStudents

/// A tiny BERT with seeded random weights, written as a Hugging Face folder.
public func tinyBertFolder(layers: Int = 2, hidden: Int = 8, heads: Int = 2, vocabulary: [String]) throws -> URL {
    let folder = SyntheticTasks.temporaryFolder()
    var generator = SeededGenerator(seed: 31)
    func random(_ shape: [Int], scale: Float = 0.3, around center: Float = 0) -> Tensor {
        Tensor((0..<shape.reduce(1, *)).map { _ in center + generator.nextGaussian() * scale }, shape: shape)
    }
    let intermediate = 2 * hidden
    var tensors: [String: Tensor] = [
        "embeddings.word_embeddings.weight": random([vocabulary.count, hidden]),
        "embeddings.position_embeddings.weight": random([16, hidden]),
        "embeddings.token_type_embeddings.weight": random([2, hidden]),
        "embeddings.LayerNorm.weight": random([hidden], scale: 0.1, around: 1),
        "embeddings.LayerNorm.bias": random([hidden]),
    ]
    for layer in 0..<layers {
        let p = "encoder.layer.\(layer)."
        for name in ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"] {
            tensors[p + name + ".weight"] = random([hidden, hidden])
            tensors[p + name + ".bias"] = random([hidden])
        }
        tensors[p + "intermediate.dense.weight"] = random([intermediate, hidden])
        tensors[p + "intermediate.dense.bias"] = random([intermediate])
        tensors[p + "output.dense.weight"] = random([hidden, intermediate])
        tensors[p + "output.dense.bias"] = random([hidden])
        for name in ["attention.output.LayerNorm", "output.LayerNorm"] {
            tensors[p + name + ".weight"] = random([hidden], scale: 0.1, around: 1)
            tensors[p + name + ".bias"] = random([hidden], scale: 0.1)
        }
    }
    try Safetensors.encode(tensors).write(to: folder.appendingPathComponent("model.safetensors"))
    let config: [String: Any] = [
        "hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads,
        "intermediate_size": intermediate, "max_position_embeddings": 16, "vocab_size": vocabulary.count,
        "hidden_act": "gelu", "layer_norm_eps": 1e-12,
    ]
    try JSONSerialization.data(withJSONObject: config).write(to: folder.appendingPathComponent("config.json"))
    try Data((vocabulary.joined(separator: "\n") + "\n").utf8).write(to: folder.appendingPathComponent("vocab.txt"))
    return folder
}

/// A vocabulary for the tiny encoder (the WordPiece tests rely on its ids).
public let tinyVocabulary = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "turn", "on", "the", "light", "##s", "kitchen", "un", "##mute", "!", ",", "?",
    "cafe", "東", "京",
]

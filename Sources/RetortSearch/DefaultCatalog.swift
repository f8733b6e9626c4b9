extension CandidateCatalog {
    /// The text of candidates/default.yaml, built in so `retort` works from any folder (a test keeps them equal).
    static let defaultYAML = """
        # Retort's default candidate catalog (built into the binary; candidates/text.yaml and candidates/numeric.yaml hold
        # the same entries per task kind). List-valued keys form a grid.
        # Text tasks: hashed word 1-2-grams and char 3-5-grams into 2^buckets_log2 buckets.
        text:
          - family: linear
            buckets_log2: [12, 14, 16, 18]
            precision: [fp32, fp16, int8]
          - family: mlp
            hidden: [[32], [64], [128]]
            buckets_log2: [14, 16, 18]
            precision: [fp32, int8]
          - family: embedding-bag
            dim: [16, 32, 64]
            buckets_log2: [14, 16, 18]
            precision: [fp32, fp16, int8]
          - family: prototype
            buckets_log2: [12, 14, 16]
            precision: [fp32, fp16]
          - family: encoder-head
            # all-MiniLM-L6-v2 from `make models` (skipped, with the reason, when it is not there); its first k layers, the
            # pooled sentence vector into a linear head.
            layers: [1, 2, 3, 6]
            max_length: [32]
            precision: [fp32, fp16, int8]
        # Numeric tasks: inputs standardized on train statistics.
        numeric:
          - family: linear
            precision: [fp32, fp16, int8]
          - family: mlp
            hidden: [[16], [32], [64], [128], [256], [512], [256, 128], [512, 256]]
            precision: [fp32, fp16, int8]
          - family: prototype
            precision: [fp32, fp16]
          - family: gbdt
            depth: [3, 5]
            rounds: [100]
            precision: [fp32, fp16]
        # Structured tasks (FORMATS.md §9): nearest retrieves the teacher's answer for the most similar train input (the
        # floor); fields builds a classifier per closed-set key and a span tagger for values copied from the input; slm
        # fine-tunes a small decoder language model.
        structured:
          - family: nearest
            buckets_log2: [14, 18]
          - family: fields
            buckets_log2: [14, 16]
            hidden: [0, 64]
            precision: [fp32, fp16, int8]
          # SmolLM2-135M-Instruct (`make models`) with LoRA on its top 2 blocks, 2 epochs over 512 train rows, answers
          # decoded under the schema; skipped with the reason when the model is missing. Minutes, not seconds.
          - family: slm
            rank: 8
            depth: 2
            epochs: 2
            train_rows: 512
            precision: fp16

        """
}

"""Reading task folders (FORMATS.md §1–2) for the benchmark scripts: rows of a split and the teacher's answer."""
import json
import os


def rows(task, split):
    """The rows of TASK/SPLIT.jsonl."""
    return [json.loads(line) for line in open(os.path.join(task, f"{split}.jsonl"))]


def teacher_label(row):
    """The teacher's answer: a label string, its `label`, or the top of its `probs`/`logprobs`."""
    t = row["teacher"]
    if isinstance(t, str):
        return t
    if "label" in t:
        return t["label"]
    dist = t.get("probs") or t.get("logprobs")
    return max(dist, key=dist.get)

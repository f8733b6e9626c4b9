#!/usr/bin/env python3
"""The structured benchmark (issue 23): a full default `retort search` on a structured task (ha-extract-en), then
one table row per student class — its best candidate on validation exact match — with exact match against gold and
against the teacher (95% bootstrap CIs, test split), field F1, the valid share, size, measured p50 latency and
training seconds, beside the teacher's own figures and the recommendation.

Usage: scripts/bench_structured.py RETORT TASK_DIR OUT_DIR [extra retort search flags...]
Prints the markdown table (for docs/benchmarks.md) and writes it to OUT_DIR/table.md.
"""
import json
import subprocess
import sys
import time
from pathlib import Path


def ci(metric):
    if not metric:
        return "—"
    low, high = metric["ci95"]
    return f"{metric['value']:.3f} [{low:.3f}, {high:.3f}]"


def value(metric):
    return "—" if not metric else f"{metric['value']:.3f}"


def size(n):
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} KB"


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    retort, task, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    if not (task / "task.json").exists():
        sys.exit(f"bench_structured: error: {task}/task.json not found; give a structured task folder")
    out.mkdir(parents=True, exist_ok=True)
    runs = out / "runs"
    command = [retort, "search", "--task", str(task), "--out", str(runs), "--seed", "0", "--no-history"]
    command += sys.argv[4:]
    started = time.time()
    result = subprocess.run(command, capture_output=True, text=True)
    wall = time.time() - started
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-3000:] + result.stderr[-3000:])
        sys.exit(f"bench_structured: error: retort search exited {result.returncode}")
    report = json.loads((runs / "latest" / "report.json").read_text())
    teacher = report["teacher"]
    rows = []
    best = {}
    for trial in report["candidates"]:
        if trial["status"] != "complete":
            continue
        family = trial["family"]
        match = trial["metrics"]["exact_match"]["value"]
        if family not in best or match > best[family]["metrics"]["exact_match"]["value"]:
            best[family] = trial
    lines = [
        "| class: best candidate | test exact_match vs gold [95% CI] | test exact_match vs teacher [95% CI] "
        "| field F1 | valid | size | p50 ms | train s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    tm = teacher["metrics"]
    lines.append(
        f"| teacher: {teacher['name'][:40]}… | {ci(tm.get('exact_match'))} | — | {value(tm.get('field_f1'))} "
        f"| {value(tm.get('valid'))} | — | {teacher.get('latency_ms_p50', '—')} | — |")
    for family, trial in sorted(best.items(), key=lambda kv: -kv[1]["metrics"]["exact_match"]["value"]):
        test = trial.get("test_metrics") or {}
        lines.append(
            f"| {family}: `{trial['id']}` | {ci(test.get('exact_match'))} | {ci(test.get('agreement'))} "
            f"| {value(test.get('field_f1'))} | {value(test.get('valid'))} | {size(trial['size_bytes'])} "
            f"| {trial['latency_ms_p50']:.4f} | {trial.get('train_seconds') or 0:.1f} |")
    rec = report["recommendation"]
    lines.append("")
    lines.append(f"Recommendation: **{rec['kind']}**{' `' + rec['candidate'] + '`' if rec.get('candidate') else ''}: "
                 f"{rec['reason']}.")
    if rec.get("test_metrics", {}).get("exact_match"):
        diff = rec.get("test_difference_to_teacher")
        lines.append(f"Its test exact_match {ci(rec['test_metrics']['exact_match'])}"
                     + (f", paired difference to the teacher {ci(diff)}" if diff else "") + ".")
    invalid = teacher.get("invalid_rows_by_split") or {}
    lines.append(f"Invalid teacher answers: {teacher.get('invalid_rows', 0)} "
                 f"(train {invalid.get('train', 0)}, validation {invalid.get('validation', 0)}, "
                 f"test {invalid.get('test', 0)}). Search wall time {wall:.0f} s "
                 f"({report['search']['trials']} training runs, {len(report['candidates'])} candidates).")
    table = "\n".join(lines) + "\n"
    (out / "table.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()

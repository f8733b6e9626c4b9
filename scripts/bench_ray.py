#!/usr/bin/env python3
"""`make bench-ray`: the Ray executor's overhead per trial, and one search on 1 vs 2 Ray nodes against the local
executor, on bench tasks; then a projection of a 1,000-candidate, 20-task sweep on 16 and 64 nodes.

Usage: bench_ray.py RETORT_BIN OUT_DIR [BENCH_DIR] [ROUNDS] [--tables-only]
Writes OUT_DIR/bench-ray.json and OUT_DIR/bench-ray.md (the table the README quotes). Uses scripts/ray_cluster.sh
(the local loopback cluster: a head and a worker node, one CPU each) and leaves it stopped.
"""

import json
import os
import statistics
import subprocess
import sys
import time

import scriptkit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLUSTER = os.path.join(ROOT, "scripts", "ray_cluster.sh")
ADDRESS = "127.0.0.1:6379"
TASKS = ["letter", "ha-intents-en"]


def sh(*args, **kwargs):
    return subprocess.run(list(args), check=True, text=True, capture_output=True, **kwargs).stdout


def search(binary, task, out, extra):
    started = time.perf_counter()
    subprocess.run([binary, "search", "--task", task, "--no-history", "--strategy", "halving", "--seed", "7",
                    "--out", out] + extra, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    run = os.path.join(out, "latest")
    with open(os.path.join(run, "report.json")) as handle:
        report = json.load(handle)
    with open(os.path.join(run, "frontier.md")) as handle:
        frontier = handle.read()
    return wall, report, frontier


def answers(frontier):
    """The frontier table without the latency-derived columns (p50, p95, $ per 1M) and the executor line."""
    lines = []
    for line in frontier.splitlines():
        if line.startswith("Trials trained") or line.startswith("Encoder vectors"):
            continue  # where trials ran, and how long the encoder pass took: not answers
        if line.startswith("|"):
            cells = line.split("|")
            line = "|".join(cell for index, cell in enumerate(cells) if index not in (5, 6, 9))
        lines.append(line)
    return "\n".join(lines)


def main():
    if len(sys.argv) < 3:
        scriptkit.fail("usage: scripts/bench_ray.py RETORT_BIN OUT_DIR [BENCH_DIR] [ROUNDS] [--tables-only]")
    binary = scriptkit.require_binary(sys.argv[1])
    out = os.path.abspath(sys.argv[2])
    bench = os.path.abspath(scriptkit.require_bench(sys.argv[3] if len(sys.argv) > 3 and not sys.argv[3].startswith("--")
                                                    else os.path.join(ROOT, "..", "shared", "bench")))
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[4].isdigit() else 2
    os.makedirs(out, exist_ok=True)
    ray = ["--executor", "ray", "--ray-address", ADDRESS, "--ray-retort-bin", binary]
    results = {"rounds": rounds, "tasks": {}}
    if "--tables-only" in sys.argv:
        # Rebuild the tables from a finished run's bench-ray.json and run folders (no search runs again).
        with open(os.path.join(out, "bench-ray.json")) as handle:
            previous = json.load(handle)
        rounds = previous["rounds"]
        results["rounds"] = rounds
        overhead = results["overhead"] = previous["overhead"]
        walls = {task: previous["tasks"][task]["all_wall_s"] for task in TASKS}
        reports, same = {}, {}
        for task in TASKS:
            def load(name, index):
                run = os.path.join(out, f"{task}-{name}-{index}", "latest")
                with open(os.path.join(run, "report.json")) as handle, \
                        open(os.path.join(run, "frontier.md")) as frontier:
                    return json.load(handle), frontier.read()
            reports[task] = {"local": load("local", rounds - 1), "ray-2": load("ray-2", rounds - 1)}
            same[task] = all(answers(load(name, index)[1]) == answers(reports[task]["local"][1])
                             for name in ("local", "ray-2", "ray-1") for index in range(rounds))
        return tables(out, results, walls, reports, same, overhead)

    sh("bash", CLUSTER, "up")
    overhead = json.loads(sh(binary, "trial", "ray-overhead", "--ray-address", ADDRESS, "--ray-retort-bin", binary,
                             "--count", "100", "--json"))
    results["overhead"] = overhead
    print(f"empty task p50 {overhead['empty_task_ms']['p50']:.2f} ms, "
          f"empty trial p50 {overhead['empty_trial_ms']['p50']:.2f} ms")

    walls = {task: {"local": [], "ray-2": [], "ray-1": []} for task in TASKS}
    reports = {}
    same = {task: True for task in TASKS}
    for round_index in range(rounds):
        # Two nodes, with the local executor (two workers) in between, then the head alone.
        sh("bash", CLUSTER, "up")
        for task in TASKS:
            folder = os.path.join(bench, task)
            for name, extra in (("local", ["--workers", "2"]), ("ray-2", ray)):
                wall, report, frontier = search(binary, folder, os.path.join(out, f"{task}-{name}-{round_index}"),
                                                extra)
                walls[task][name].append(wall)
                reports.setdefault(task, {})[name] = (report, frontier)
                print(f"round {round_index + 1}: {task} {name} {wall:.1f} s", flush=True)
            same[task] &= answers(reports[task]["local"][1]) == answers(reports[task]["ray-2"][1])
        sh("bash", CLUSTER, "head-only")
        for task in TASKS:
            wall, report, frontier = search(binary, os.path.join(bench, task),
                                            os.path.join(out, f"{task}-ray-1-{round_index}"), ray)
            walls[task]["ray-1"].append(wall)
            same[task] &= answers(reports[task]["local"][1]) == answers(frontier)
            print(f"round {round_index + 1}: {task} ray-1 {wall:.1f} s", flush=True)
    sh("bash", CLUSTER, "down")
    tables(out, results, walls, reports, same, overhead)


def tables(out, results, walls, reports, same, overhead):
    # The projection: per task, W(n) = S + P / n fitted through the 1- and 2-node medians (S: the driver's serial
    # work, P: trial work including the Ray path's overheads), scaled per candidate to 1,000 candidates, and 20
    # such tasks sharing the cluster: W = S_1000 + 20 * P_1000 / nodes.
    per_candidate_serial = []
    per_candidate_parallel = []
    for task in TASKS:
        report = reports[task]["ray-2"][0]
        candidates = len(report["candidates"])
        w1 = statistics.median(walls[task]["ray-1"])
        w2 = statistics.median(walls[task]["ray-2"])
        parallel = max(0.0, 2 * (w1 - w2))
        serial = max(0.0, w1 - parallel)
        per_candidate_serial.append(serial / candidates)
        per_candidate_parallel.append(parallel / candidates)
        results["tasks"][task] = {
            "candidates": candidates, "training_runs": report["search"]["trials"],
            "candidate_epochs": report["search"]["candidate_epochs"],
            "wall_s": {name: statistics.median(values) for name, values in walls[task].items()},
            "all_wall_s": walls[task], "same_frontier_as_local": same[task],
            "serial_s": serial, "parallel_s": parallel,
        }
    serial_1000 = statistics.mean(per_candidate_serial) * 1000
    parallel_1000 = statistics.mean(per_candidate_parallel) * 1000
    projection = {nodes: serial_1000 + 20 * parallel_1000 / nodes for nodes in (1, 16, 64)}
    results["projection"] = {"serial_per_task_s": serial_1000, "parallel_per_task_s": parallel_1000,
                             "wall_s": projection}

    lines = [
        "| task | candidates | training runs | local, 2 workers | Ray, 1 node | Ray, 2 nodes | 1→2 nodes | same frontier |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for task in TASKS:
        figures = results["tasks"][task]
        wall = figures["wall_s"]
        lines.append(
            f"| {task} | {figures['candidates']} | {figures['training_runs']} | {wall['local']:.1f} s | "
            f"{wall['ray-1']:.1f} s | {wall['ray-2']:.1f} s | {wall['ray-1'] / wall['ray-2']:.2f}× | "
            f"{'yes' if figures['same_frontier_as_local'] else 'NO'} |")
    lines.append("")
    lines.append(
        f"Empty Ray task, submit to result through the bridge: p50 {overhead['empty_task_ms']['p50']:.2f} ms "
        f"(p10 {overhead['empty_task_ms']['p10']:.2f}, p90 {overhead['empty_task_ms']['p90']:.2f}); empty trial "
        f"(the task also starts `retort`): p50 {overhead['empty_trial_ms']['p50']:.2f} ms "
        f"(p10 {overhead['empty_trial_ms']['p10']:.2f}, p90 {overhead['empty_trial_ms']['p90']:.2f}); "
        f"{overhead['count']} of each, one at a time.")
    lines.append("")
    lines.append(
        f"Projection, 1,000 candidates × 20 tasks: serial driver work {serial_1000:.0f} s per task, trial work "
        f"{parallel_1000:.0f} s per task → 1 node {projection[1] / 3600:.1f} h, 16 nodes {projection[16] / 60:.0f} min, "
        f"64 nodes {projection[64] / 60:.0f} min.")
    with open(os.path.join(out, "bench-ray.md"), "w") as handle:
        handle.write("\n".join(lines) + "\n")
    with open(os.path.join(out, "bench-ray.json"), "w") as handle:
        json.dump(results, handle, indent=2)
    print("\n".join(lines))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Retort's Ray bridge: runs trials (`retort trial serve`) as Ray tasks for `retort search --executor ray`.

The Swift driver starts this script and speaks JSON lines to it: requests on stdin, events on stdout (one JSON
object per line; nothing else is ever printed there). The rows, encoder folders and trial states travel through
Ray's object store, so workers need no shared file system: each worker node writes what a trial needs into its own
temporary folder (content-addressed, so a node writes each data set once).

Protocol version 2 (the `bridge` key of `ready`): a trial's whole OUT folder comes back (version 1: result.json and
state.safetensors only), so structured trials (a folder per student) run too; a returned file that is a hard link to
a shipped input (a student's copy of its base model) comes back as a link to the driver's own file.

Requests (stdin):
  {"op": "hello", "data": {"task": PATH} | {"files": [TRAIN, VALIDATION, TEST]}, "folders_paths": {NAME: PATH}}
  {"op": "trial", "id": N, "spec": {...}, "state": PATH|null, "out": DIR, "folders": [NAME, ...], "cpus": C}
  {"op": "noop", "id": N, "exec": false}      # an empty Ray task (exec: true also starts `retort --help`)
Events (stdout):
  {"event": "ready", "address", "ray", "nodes", "cpus", "hosts", "bridge"}  after hello
  {"event": "done", "id", "node", "host", "seconds", "attempt"}         OUT holds what the trial wrote
  {"event": "retry", "id", "attempt", "of", "message", "seconds"}       a trial was lost; resubmitted after seconds
  {"event": "failed", "id", "message", "lost"}                          the trial failed (lost: retries exhausted)
  {"event": "fatal", "message"}                                         the bridge cannot go on

A closed stdin (the driver exited, or was killed) ends the bridge and cancels its running tasks.
"""

import argparse
import hashlib
import json
import os
import queue
import socket
import sys
import threading
import time
import traceback

BRIDGE_VERSION = 2

# Events go to the driver on the real stdout; anything else printed (Ray's own messages) goes to stderr.
_stdout = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
sys.stdout = sys.stderr


def emit(event):
    _stdout.write(json.dumps(event, separators=(",", ":")) + "\n")
    _stdout.flush()


def fatal(message):
    emit({"event": "fatal", "message": message})
    sys.exit(1)


def reachable(address, timeout):
    """None when a TCP connection to host:port opens within `timeout` seconds, else why not."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return "not HOST:PORT"
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return None
    except OSError as error:
        return error.strerror or str(error)


def read_tree(path):
    """{relative path: bytes} of a file or of every file under a folder, and their SHA-256."""
    files = {}
    if os.path.isdir(path):
        for root, _, names in os.walk(path):
            for name in sorted(names):
                full = os.path.join(root, name)
                with open(full, "rb") as handle:
                    files[os.path.relpath(full, path)] = handle.read()
    else:
        with open(path, "rb") as handle:
            files[""] = handle.read()
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return files, digest.hexdigest()


def materialize(digest, name, files):
    """Writes a shipped file or folder under this node's temporary folder once; returns its local path."""
    import shutil
    import tempfile

    target = os.path.join(tempfile.gettempdir(), "retort-ray", digest[:32], name)
    if os.path.exists(target):
        return target
    os.makedirs(os.path.dirname(target), exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".staging-", dir=os.path.dirname(target))
    staged = os.path.join(staging, name)
    if "" in files:
        with open(staged, "wb") as handle:
            handle.write(files[""])
    else:
        for relative, data in files.items():
            full = os.path.join(staged, relative)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "wb") as handle:
                handle.write(data)
    try:
        os.rename(staged, target)
    except OSError:
        pass  # another worker on this node wrote it first
    shutil.rmtree(staging, ignore_errors=True)
    return target


class Collector:
    """Holds finished trials' results on the driver's node until the bridge takes them. A trial hands its result
    here before it returns, so what it returns is small (inline in the task's reply): a node lost after a trial
    finished cannot strand its result in that node's object store (Ray would try to rebuild it by re-running the
    task, which these tasks forbid)."""

    def __init__(self):
        self.results = {}

    def deliver(self, key, files):
        self.results[key] = files
        return True

    def take(self, key):
        return self.results.pop(key)


# This Ray worker process's `retort trial serve` (it keeps the rows and features loaded between trials), by binary.
_servers = {}


def trial_server(binary, folder):
    """The worker's running `retort trial serve`, started when there is none (or it died)."""
    import ctypes
    import signal
    import subprocess

    server = _servers.get(binary)
    if server is not None and server.poll() is None:
        return server
    libc = ctypes.CDLL("libc.so.6", use_errno=True)

    def die_with_parent():
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: no orphaned trials when this worker dies

    log = open(os.path.join(folder, f"trial-serve-{os.getpid()}.log"), "ab")
    server = subprocess.Popen([binary, "trial", "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                              preexec_fn=die_with_parent, cwd=folder)
    server.log_path = log.name
    _servers[binary] = server
    return server


def run_trial(spec, binary, collector, key, data_digest, data_layout, data, folder_digests, state, *folder_blobs):
    """One trial on a worker: materialize its rows (and encoder folders), run it in the worker's `retort trial serve`
    (as `retort trial run` would, with the rows and features kept loaded), hand the result and the trained state to
    the collector on the driver's node, return where it ran."""
    import tempfile

    import ray

    started = time.time()
    if data_layout == "task":
        spec["task"] = materialize(data_digest, "task", data)
        spec["files"] = None
    else:
        names = ["train.jsonl", "validation.jsonl", "test.jsonl"]
        folder = materialize(data_digest, "files", {n: data[n] for n in names})
        spec["files"] = [os.path.join(folder, n) for n in names]
        spec["task"] = None
    spec["paths"] = {
        name: materialize(digest, os.path.basename(name.rstrip("/")) or "folder", blob)
        for (name, digest), blob in zip(folder_digests, folder_blobs)
    } or None
    shipped = {}  # (device, inode) of every materialized input file -> (name, path inside it)
    for name, local in (spec["paths"] or {}).items():
        if os.path.isdir(local):
            for root, _, names in os.walk(local):
                for file_name in names:
                    full = os.path.join(root, file_name)
                    info = os.stat(full)
                    shipped[(info.st_dev, info.st_ino)] = (name, os.path.relpath(full, local))
        else:
            info = os.stat(local)
            shipped[(info.st_dev, info.st_ino)] = (name, "")
    work = tempfile.mkdtemp(prefix="retort-trial-")
    try:
        if state is not None:
            spec["checkpoint"] = os.path.join(work, "input.safetensors")
            with open(spec["checkpoint"], "wb") as handle:
                handle.write(state)
        else:
            spec["checkpoint"] = None
        spec_path = os.path.join(work, "spec.json")
        with open(spec_path, "w") as handle:
            json.dump(spec, handle)
        out = os.path.join(work, "out")
        os.makedirs(os.path.join(tempfile.gettempdir(), "retort-ray"), exist_ok=True)
        server = trial_server(binary, os.path.join(tempfile.gettempdir(), "retort-ray"))
        try:
            server.stdin.write((json.dumps({"spec": spec_path, "out": out}) + "\n").encode())
            server.stdin.flush()
            answer = server.stdout.readline()
        except (BrokenPipeError, OSError):
            answer = b""
        if not answer:
            server.wait()
            with open(server.log_path, "rb") as handle:
                lines = [line for line in handle.read().decode(errors="replace").splitlines() if line.strip()]
            raise RuntimeError(f"{binary} trial serve exited {server.returncode}" + (f": {lines[-1]}" if lines else ""))
        reply = json.loads(answer)
        if not reply.get("ok"):
            raise RuntimeError(reply.get("message", "the trial failed"))
        files = {}
        for root, _, names in os.walk(out):
            for file_name in sorted(names):
                full = os.path.join(root, file_name)
                info = os.stat(full)
                link = shipped.get((info.st_dev, info.st_ino)) if info.st_nlink > 1 else None
                if link is not None:
                    files[os.path.relpath(full, out)] = {"link": list(link)}
                else:
                    with open(full, "rb") as handle:
                        files[os.path.relpath(full, out)] = handle.read()
        ray.get(collector.deliver.remote(key, files))
        context = ray.get_runtime_context()
        return {"key": key, "node": context.get_node_id(), "host": socket.gethostname(),
                "seconds": time.time() - started}
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


def noop(binary, run):
    import subprocess

    import ray

    if run:
        subprocess.run([binary, "--help"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return {"node": ray.get_runtime_context().get_node_id(), "host": socket.gethostname()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", required=True, help="the Ray cluster's GCS address, HOST:PORT")
    parser.add_argument("--retort-bin", default="retort", help="the retort binary on the workers (PATH lookup)")
    parser.add_argument("--retries", type=int, default=3, help="resubmissions of a trial lost with its node")
    parser.add_argument("--retry-delay", type=float, default=5,
                        help="seconds before the first resubmission of a lost trial (doubling after each)")
    parser.add_argument("--connect-timeout", type=float, default=5, help="seconds to reach the cluster")
    args = parser.parse_args()

    why = reachable(args.address, args.connect_timeout)
    if why is not None:
        fatal(f"cannot reach the Ray cluster at {args.address} ({why}); start one (`make ray-up` for a local "
              f"two-node cluster, `ray start --head` on a real one) or pass the head's address with --ray-address")
    try:
        import ray
        import ray.exceptions
    except ImportError:
        fatal(f"{sys.executable} has no `ray` package; install the cluster's version (pip install 'ray==2.40.0') "
              f"or pass --ray-python")
    try:
        import logging

        ray.init(address=args.address, logging_level=logging.ERROR, log_to_driver=False, namespace="retort",
                 configure_logging=True)
    except Exception as error:  # noqa: BLE001 (any failure to connect ends the bridge with its reason)
        fatal(f"cannot connect to the Ray cluster at {args.address}: {str(error).splitlines()[0] if str(error) else type(error).__name__}")

    requests = queue.Queue()

    def read_stdin():
        for line in sys.stdin:
            if line.strip():
                requests.put(line)
        requests.put(None)

    threading.Thread(target=read_stdin, daemon=True).start()

    remote_trial = ray.remote(max_retries=0)(run_trial)
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    collector = ray.remote(num_cpus=0)(Collector).options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    ).remote()
    remote_noop = ray.remote(num_cpus=0, max_retries=0)(noop)
    data = None  # (digest, layout, object ref)
    folders = {}  # name -> (digest, object ref)
    pending = {}  # object ref -> (request, attempt, submitted)
    delayed = []  # (when, request, attempt): lost trials waiting to be resubmitted

    def submit(request, attempt):
        if request["op"] == "noop":
            ref = remote_noop.remote(args.retort_bin, bool(request.get("exec")))
        else:
            state = None
            if request.get("state"):
                with open(request["state"], "rb") as handle:
                    state = ray.put(handle.read())
            names = request.get("folders") or []
            refs = [folders[name][1] for name in names]
            ref = remote_trial.options(num_cpus=request.get("cpus", 1)).remote(
                request["spec"], args.retort_bin, collector, f"{request['id']}.{attempt}", data[0], data[1], data[2],
                [(name, folders[name][0]) for name in names], state, *refs)
        pending[ref] = (request, attempt, time.time())

    def finish(ref):
        request, attempt, submitted = pending.pop(ref)
        try:
            value = ray.get(ref)
        except ray.exceptions.RayTaskError as error:
            cause = error.cause if getattr(error, "cause", None) is not None else error
            emit({"event": "failed", "id": request["id"], "message": str(cause).strip().splitlines()[-1],
                  "lost": False})
            return
        except ray.exceptions.RayError as error:
            message = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
            if attempt < args.retries:
                # Wait before resubmitting: until Ray has marked a lost node dead, it may still place tasks there.
                delay = args.retry_delay * 2 ** attempt
                emit({"event": "retry", "id": request["id"], "attempt": attempt + 1, "of": args.retries,
                      "message": message, "seconds": delay})
                delayed.append((time.time() + delay, request, attempt + 1))
            else:
                emit({"event": "failed", "id": request["id"], "lost": True,
                      "message": f"lost {attempt + 1} times, last: {message}"})
            return
        if request["op"] == "trial":
            out = request["out"]
            os.makedirs(out, exist_ok=True)
            # result.json last: a reader that finds it finds everything else.
            files = ray.get(collector.take.remote(value["key"]))
            for name in sorted(files, key=lambda name: name == "result.json"):
                target = os.path.join(out, name)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                content = files[name]
                if isinstance(content, dict):
                    folder_name, inside = content["link"]
                    source = os.path.join(folders[folder_name][2], inside) if inside else folders[folder_name][2]
                    try:
                        os.link(source, target)
                    except OSError:
                        import shutil

                        shutil.copyfile(source, target)
                    continue
                with open(target + ".tmp", "wb") as handle:
                    handle.write(content)
                os.replace(target + ".tmp", target)
        emit({"event": "done", "id": request["id"], "node": value["node"], "host": value["host"],
              "seconds": time.time() - submitted, "attempt": attempt})

    while True:
        # Take every waiting request, then wait briefly for a finished task.
        closed = False
        for item in [item for item in delayed if item[0] <= time.time()]:
            delayed.remove(item)
            submit(item[1], item[2])
        while True:
            try:
                line = requests.get(timeout=0 if pending or delayed else 0.5)
            except queue.Empty:
                break
            if line is None:
                closed = True
                break
            try:
                request = json.loads(line)
                op = request.get("op")
                if op == "hello":
                    layout = "task" if request["data"].get("task") else "files"
                    if layout == "task":
                        blob, digest = read_tree(request["data"]["task"])
                    else:
                        paths = request["data"]["files"]
                        blob = {}
                        for name, path in zip(["train.jsonl", "validation.jsonl", "test.jsonl"], paths):
                            with open(path, "rb") as handle:
                                blob[name] = handle.read()
                        digest = hashlib.sha256(b"".join(hashlib.sha256(blob[n]).digest() for n in sorted(blob))).hexdigest()
                    data = (digest, layout, ray.put(blob))
                    for name, path in (request.get("folders_paths") or {}).items():
                        files, folder_digest = read_tree(path)
                        folders[name] = (folder_digest, ray.put(files), path)
                    nodes = [node for node in ray.nodes() if node.get("Alive")]
                    emit({"event": "ready", "address": args.address, "ray": ray.__version__, "nodes": len(nodes),
                          "bridge": BRIDGE_VERSION,
                          "cpus": int(ray.cluster_resources().get("CPU", 0)),
                          "hosts": sorted({node.get("NodeManagerHostname", "") for node in nodes})})
                elif op in ("trial", "noop"):
                    if op == "trial" and data is None:
                        emit({"event": "failed", "id": request.get("id"), "lost": False,
                              "message": "a trial before hello"})
                        continue
                    submit(request, 0)
                else:
                    emit({"event": "fatal", "message": f"unknown request {op!r}"})
            except (KeyError, TypeError, ValueError, OSError) as error:
                emit({"event": "failed", "id": request.get("id") if isinstance(request, dict) else None,
                      "lost": False, "message": f"bad request: {error}"})
        if closed:
            for ref in pending:
                ray.cancel(ref, force=True)
            break
        if not pending and delayed:
            time.sleep(0.05)
        if pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.05)
            for ref in ready:
                finish(ref)
    os._exit(0)


if __name__ == "__main__":
    try:
        main()
    except SystemExit:
        raise
    except BaseException:  # noqa: BLE001 (the driver reads one line, not a traceback)
        emit({"event": "fatal", "message": traceback.format_exc().strip().splitlines()[-1]})
        sys.exit(1)

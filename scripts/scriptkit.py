"""What every user-facing script in scripts/ shares: an expected failure ends in one line, never a traceback.

`import scriptkit` (first, before the script does anything) installs an exception hook that prints

    SCRIPT: error: what went wrong; what to do

on stderr and exits non-zero (1; 130 when interrupted) for the failures a user can meet: a missing folder or
binary, a command that failed, pip without a network, a port in use. Anything else is a bug in the script and still
ends in one line naming the exception; RETORT_SCRIPT_TRACEBACK=1 prints the traceback instead. The helpers below
check what a script needs before it starts, so the line can say what to do.
"""
import atexit
import json
import os
import shutil
import subprocess
import sys
import traceback

NAME = os.path.basename(sys.argv[0]) or "script"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ScriptError(Exception):
    """An expected failure: the message says what went wrong and what to do."""


def fail(message):
    """Stops the script with one line (raises ScriptError, so `finally` blocks still clean up)."""
    raise ScriptError(message)


def _last_line(text):
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def describe(error):
    """The one line (without the `SCRIPT: error:` prefix) for an exception."""
    if isinstance(error, ScriptError):
        return str(error)
    if isinstance(error, subprocess.CalledProcessError):
        command = error.cmd if isinstance(error.cmd, str) else " ".join(str(part) for part in error.cmd)
        said = _last_line(error.stderr if isinstance(error.stderr, str) else "") or _last_line(
            error.output if isinstance(error.output, str) else "")
        if len(command) > 160:
            command = command[:157] + "…"
        return f"`{command}` exited with {error.returncode}" + (f": {said}" if said else " (its output is above)")
    if isinstance(error, subprocess.TimeoutExpired):
        return f"`{error.cmd if isinstance(error.cmd, str) else ' '.join(map(str, error.cmd))}` took longer than {error.timeout} s"
    if isinstance(error, FileNotFoundError):
        return f"{error.filename or error}: no such file or folder"
    if isinstance(error, PermissionError):
        return f"{error.filename or error}: permission denied"
    if isinstance(error, ConnectionError):
        return f"connection failed ({error}); is the server it talks to running?"
    if isinstance(error, OSError):
        return f"{error.strerror or error}" + (f": {error.filename}" if error.filename else "")
    return f"internal error in the script, {type(error).__name__}: {error} (RETORT_SCRIPT_TRACEBACK=1 shows where)"


def _hook(kind, error, trace):
    if os.environ.get("RETORT_SCRIPT_TRACEBACK") == "1":
        traceback.print_exception(kind, error, trace)
        return
    sys.stdout.flush()
    if isinstance(error, KeyboardInterrupt):
        print(f"{NAME}: interrupted", file=sys.stderr, flush=True)
        os._exit(130)
    print(f"{NAME}: error: {describe(error)}", file=sys.stderr, flush=True)


sys.excepthook = _hook


def require_binary(path):
    """The absolute path of an executable; a one-line failure naming `make build` when it is missing."""
    path = os.path.abspath(path)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        fail(f"{path} is missing or not executable; run `make build` first (or pass the binary as the first argument)")
    return path


def require_bench(folder):
    """The benchmark tasks folder (../shared/bench by default); a one-line failure saying how to point at it."""
    if not os.path.isdir(folder):
        fail(f"no benchmark folder {folder}: the bench tasks live in ../shared/bench beside the checkout; "
             "pass another folder as the first argument")
    return folder


def label_tasks(bench):
    """The task folders under BENCH whose kind Retort searches today (text, numeric), sorted; each other kind (the
    structured extraction task, FORMATS.md §9) is named on stderr as skipped instead of failing the whole benchmark."""
    import glob
    import json
    tasks = []
    for task_json in sorted(glob.glob(os.path.join(bench, "*", "task.json"))):
        task = os.path.dirname(task_json)
        try:
            kind = json.load(open(task_json)).get("kind")
        except (OSError, ValueError) as error:
            fail(f"{task_json}: {describe(error)}")
        if kind in ("text", "numeric"):
            tasks.append(task)
        else:
            print(f"skipping {os.path.basename(task)}: task kind {kind!r} is not searched by this benchmark "
                  "(only text and numeric tasks)", file=sys.stderr)
    return tasks


def catalog_without_encoders(out):
    """candidates/default.yaml without its encoder-head entry (whose encoder pass would dominate every text run's
    time), written to OUT/catalog.yaml; returns that path (the catalog of make bench-learning and bench-confidence)."""
    lines, skip = [], False
    for line in open("candidates/default.yaml"):
        if line.startswith("  - family:"):
            skip = "encoder-head" in line
        elif not line.startswith("    ") and not line.startswith("  #"):
            skip = False
        if not skip:
            lines.append(line)
    catalog = os.path.join(out, "catalog.yaml")
    open(catalog, "w").write("".join(lines))
    return catalog


def learning_tasks(bench, retort, variants, bases):
    """The label tasks of BENCH, the bundled example (made by `retort demo` when missing) and the variants of each of
    BASES (scripts/make_variants.py into VARIANTS): the task set of make bench-learning."""
    tasks = label_tasks(bench)
    if not os.path.exists("examples/shop-support/task/task.json"):
        subprocess.run([retort, "demo", "--no-history"], check=True, capture_output=True)
    tasks.append("examples/shop-support/task")
    for name in bases:
        base = os.path.join(bench, name)
        if os.path.isdir(base):
            made = subprocess.run([sys.executable, "scripts/make_variants.py", base, variants], check=True,
                                  capture_output=True, text=True).stdout.split()
            tasks.extend(made)
    return tasks


def require_file(path, hint):
    """A file the script reads; a one-line failure with HINT (what makes it) when it is missing."""
    if not os.path.isfile(path):
        fail(f"{path} is missing; {hint}")
    return path


VARIANT_SUFFIXES = ("-sub50", "-merge", "-drop", "-noisy", "-llm")
BENCH_DATASETS = {"satimage": "keel:satimage", "letter": "keel:letter", "ha-intents-en": "ha-intents:en"}


def dataset_of(name):
    """The base dataset a task belongs to: its name without a variant suffix (ha-intents-en-llm: ha-intents-en)."""
    for suffix in VARIANT_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def dataset_key(task):
    """The task folder TASK's source dataset as the starter history names it: task.json `dataset`, or for a bench task
    and its variants the keel or ha-intents dataset it was made from (satimage: keel:satimage); None when unknown."""
    spec = json.load(open(os.path.join(task, "task.json")))
    return spec.get("dataset") or BENCH_DATASETS.get(dataset_of(spec["name"]))


def held_out_history(retort, source, path, forgotten):
    """Copies the history SOURCE to PATH and forgets there each name in FORGOTTEN (a task or a dataset, with `retort
    history forget`): how the learning benchmarks hold a task out. A name may be absent (a starter task is only in the
    starter, or a dataset's only task already went by name); forget says so with exit code 66."""
    shutil.copy(source, path)
    for name in forgotten:
        done = subprocess.run([retort, "history", "forget", name, "--history", path], capture_output=True, text=True)
        if done.returncode not in (0, 66):
            fail(f"retort history forget {name} failed: {done.stderr.strip()}")


STUDENT_FAMILIES = ("embedding-bag", "encoder-head", "linear", "mlp", "prototype", "gbdt")


def student_family(candidate_id):
    """The student family a candidate id names ("linear-b12-int8": linear); None or a cascade ("cascade: ID (90%)")
    is "no-distillation", the teacher still answering; an id of no known family is returned as it is."""
    if candidate_id is None or candidate_id.startswith("cascade: "):
        return "no-distillation"
    for name in STUDENT_FAMILIES:
        if candidate_id.startswith(name):
            return name
    return candidate_id


def ensure_venv(venv, imports, packages):
    """Makes VENV (a Python venv) and installs PACKAGES into it unless `import IMPORTS` already works there.

    A failed venv or pip (no network, no python3-venv) is one line saying what to install and how."""
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(python):
        made = subprocess.run([sys.executable, "-m", "venv", venv], capture_output=True, text=True)
        if made.returncode != 0:
            fail(f"could not make the venv {venv} ({_last_line(made.stderr) or 'python3 -m venv failed'}); "
                 "install python3-venv (apt-get install python3-venv) and run again")
    if subprocess.call([python, "-c", f"import {imports}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) == 0:
        return python
    print(f"installing {' '.join(packages)} into {venv}…", file=sys.stderr, flush=True)
    pip = subprocess.run([python, "-m", "pip", "install", "-q"] + list(packages), capture_output=True, text=True)
    if pip.returncode != 0:
        fail(f"pip could not install {' '.join(packages)} into {venv} ({_last_line(pip.stderr) or 'no output'}); "
             "this needs the network (or a pip mirror via PIP_INDEX_URL); run again when it is reachable")
    return python


def reexec_in(python):
    """Runs this script again under PYTHON (a venv's interpreter) unless it already runs there."""
    if os.environ.get("RETORT_IN_VENV") != "1":
        os.environ["RETORT_IN_VENV"] = "1"
        sys.stdout.flush()
        os.execv(python, [python] + sys.argv)


_started = []


def stop_at_exit(process):
    """Terminates PROCESS (a Popen) when the script ends, however it ends, so a failure leaves no server behind."""
    _started.append(process)
    return process


def _stop_started():
    for process in _started:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()


atexit.register(_stop_started)

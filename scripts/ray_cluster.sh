#!/usr/bin/env bash
# A local two-node Ray cluster on loopback for trying `retort search --executor ray` and for `make test-ray`:
# a head node and a worker node, each its own `ray start` (own raylet, one CPU), from a virtual environment under
# .build-bench/ray. Usage: scripts/ray_cluster.sh up|down|status|running|head-only|kill-worker|add-worker
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.build-bench/ray
RAY_VERSION=2.40.0
HEAD_PORT=${RETORT_RAY_PORT:-6379}
WORKER_NODE_MANAGER_PORT=${RETORT_RAY_WORKER_PORT:-6381}
RAY="$VENV/bin/ray"
WORKER_PIDS="$VENV/worker-node.pids"
export RAY_USAGE_STATS_ENABLED=0

install() {
    if ! "$VENV/bin/python" -c "import ray, sys; sys.exit(ray.__version__ != '$RAY_VERSION')" 2>/dev/null; then
        echo "installing ray==$RAY_VERSION into $VENV"
        python3 -m venv "$VENV" || { echo "ray_cluster: error: could not make the venv $VENV; install python3-venv (apt-get install python3-venv) and run again" >&2; exit 1; }
        "$VENV/bin/pip" install -q "ray==$RAY_VERSION" 2>"$VENV.pip.log" || {
            echo "ray_cluster: error: pip could not install ray==$RAY_VERSION ($(grep -v '^\s*$' "$VENV.pip.log" | tail -1)); this needs the network (or PIP_INDEX_URL), see $VENV.pip.log" >&2
            exit 1
        }
    fi
}

alive_nodes() {
    "$VENV/bin/python" - "$HEAD_PORT" <<'PY' 2>/dev/null || echo 0
import logging, sys, ray
ray.init(address=f"127.0.0.1:{sys.argv[1]}", logging_level=logging.ERROR, log_to_driver=False)
print(sum(1 for node in ray.nodes() if node["Alive"]))
PY
}

# Two raylets on one host is a test set-up, not a real cluster: the worker node gets its own loopback address
# (127.0.0.2), and the host's recorded node address is put back to the head's afterwards, so drivers started here
# attach to the head node (as on a real cluster, where the driver runs on the head) and killing the worker's raylet
# takes only the worker node down.
add_worker() {
    local recorded=/tmp/ray/session_latest/node_ip_address.json saved
    saved=$(cat "$recorded" 2>/dev/null || true)
    local before
    before=$(pgrep -f "ray/_private/log_monitor.py" | sort || true)
    "$RAY" start --address="127.0.0.1:$HEAD_PORT" --node-ip-address=127.0.0.2 --num-cpus=1 --object-store-memory=2000000000 \
        --node-manager-port="$WORKER_NODE_MANAGER_PORT" --disable-usage-stats >/dev/null || start_failed worker
    if [ -n "$saved" ]; then printf '%s' "$saved" >"$recorded"; fi
    # The worker node's own daemons outside its raylet (its log monitor), so kill-worker can take the whole node.
    comm -13 <(echo "$before") <(pgrep -f "ray/_private/log_monitor.py" | sort) >"$WORKER_PIDS"
}

start_failed() {
    echo "ray_cluster: error: \`ray start\` for the $1 node failed (its output is above); a port in use? RETORT_RAY_PORT and RETORT_RAY_WORKER_PORT pick others, \`make ray-down\` stops a cluster left running" >&2
    exit 1
}

wait_nodes() {
    for _ in $(seq 1 60); do
        [ "$(alive_nodes)" -ge "$1" ] && return 0
        sleep 1
    done
    echo "ray_cluster: the cluster did not reach $1 alive nodes" >&2
    return 1
}

case "${1:-up}" in
up)
    install
    if (exec 3<>"/dev/tcp/127.0.0.1/$HEAD_PORT") 2>/dev/null; then
        echo "a Ray head is already listening on 127.0.0.1:$HEAD_PORT"
    else
        "$RAY" start --head --node-ip-address=127.0.0.1 --port="$HEAD_PORT" --num-cpus=1 --object-store-memory=2000000000 \
            --include-dashboard=false --disable-usage-stats >/dev/null || start_failed head
    fi
    if [ "$(alive_nodes)" -lt 2 ]; then add_worker; fi
    wait_nodes 2
    echo "Ray cluster up: 2 nodes (head + worker, 1 CPU each) at 127.0.0.1:$HEAD_PORT"
    echo "  try: .build/release/retort search --task examples/shop-support/task --executor ray --ray-address 127.0.0.1:$HEAD_PORT --ray-retort-bin \$PWD/.build/release/retort"
    ;;
down)
    if [ -x "$RAY" ]; then "$RAY" stop --force >/dev/null 2>&1 || true; fi
    echo "Ray cluster stopped"
    ;;
status)
    echo "alive nodes: $(alive_nodes)"
    ;;
running)
    # Exit 0 when a head is listening (make test-ray leaves such a cluster up).
    (exec 3<>"/dev/tcp/127.0.0.1/$HEAD_PORT") 2>/dev/null
    ;;
head-only)
    # One node: the head alone (for the 1-node benchmark).
    "$0" down >/dev/null
    install
    "$RAY" start --head --node-ip-address=127.0.0.1 --port="$HEAD_PORT" --num-cpus=1 --object-store-memory=2000000000 \
        --include-dashboard=false --disable-usage-stats >/dev/null || start_failed head
    wait_nodes 1
    ;;
kill-worker)
    # The worker node's raylet (found by its node manager port), as a lost machine would take it.
    pid=$(pgrep -f "raylet.*--node_manager_port=$WORKER_NODE_MANAGER_PORT" | head -1)
    [ -n "$pid" ] || { echo "ray_cluster: no worker raylet on port $WORKER_NODE_MANAGER_PORT" >&2; exit 1; }
    kill -9 "$pid"
    # The rest of the node goes with it, as when a machine is lost.
    if [ -f "$WORKER_PIDS" ]; then xargs -r kill -9 <"$WORKER_PIDS" 2>/dev/null || true; rm -f "$WORKER_PIDS"; fi
    echo "killed the worker node's raylet (pid $pid) and its log monitor"
    ;;
add-worker)
    add_worker
    wait_nodes 2
    ;;
*)
    echo "usage: $0 up|down|status|running|head-only|kill-worker|add-worker" >&2
    exit 64
    ;;
esac

#!/usr/bin/env bash
# Side by side with etcd: runs the notify, fan-out and cluster workloads of
# `catalogue bench` against catalogue and against etcd (installed from the
# system packages if absent), on loopback, then prints every table and the
# ratios catalogue/etcd. etcd is driven through both of its client APIs:
# native gRPC (the etcd-client crate; watchers multiplexed on one stream)
# and the v3 JSON gateway over HTTP/1.1 (one watcher per connection).
#
# etcd runs twice: with its defaults (data dir on disk, fsync on every
# commit) and with its fastest settings that are still safe to benchmark
# (data dir on tmpfs /dev/shm, a larger snapshot count and backend quota;
# etcd 3.4 has no --unsafe-no-fsync, so on tmpfs the fsyncs are cheap
# rather than skipped). Workloads 1-2 use a single member, workload 3 a
# three-member cluster (put at member 1, watch at member 3).
#
# Usage: bench/compare-etcd.sh            (from the repository root)
# Environment: CATALOGUE (binary, default target/release/catalogue),
# EVENTS (default 2000), SUBSCRIPTIONS (default 1,100,1000,10000),
# SATURATION_EVENTS (default 20000), INFLIGHT (default 32), RATE (1000),
# OUT (directory for the raw outputs, default a new temporary one), APIS
# (default "grpc gateway").
# Needs python3 (standard library) for the ratios (bench/compare-json.py).
set -euo pipefail

CATALOGUE=${CATALOGUE:-target/release/catalogue}
EVENTS=${EVENTS:-2000}
SUBSCRIPTIONS=${SUBSCRIPTIONS:-1,100,1000,10000}
SATURATION_EVENTS=${SATURATION_EVENTS:-20000}
INFLIGHT=${INFLIGHT:-32}
RATE=${RATE:-1000}
OUT=${OUT:-$(mktemp -d /tmp/compare-etcd.XXXXXX)}
APIS=${APIS:-grpc gateway}
HERE=$(cd "$(dirname "$0")" && pwd)
BASE_PORT=${BASE_PORT:-23790}

die() { echo "compare-etcd: $*" >&2; exit 1; }

if [ ! -x "$CATALOGUE" ]; then
    # The bench's etcd gRPC client (etcd-client) needs protoc to build.
    if ! command -v protoc >/dev/null; then
        echo "installing protobuf-compiler (protoc, for the etcd-client crate's build)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y protobuf-compiler >/dev/null ||
            die "no protoc and apt-get install protobuf-compiler failed (are you root?)"
    fi
    echo "building $CATALOGUE (cargo build --release -p catalogue --features etcd-grpc; needs protoc)"
    cargo build --release -p catalogue --features etcd-grpc || die "cargo build --release -p catalogue --features etcd-grpc failed (protoc: apt-get install protobuf-compiler)"
fi
command -v python3 >/dev/null || die "python3 is needed for the ratios (bench/compare-json.py)"

# --- etcd from the system packages ---------------------------------------
if ! command -v etcd >/dev/null; then
    candidate=$(apt-cache policy etcd-server 2>/dev/null | awk '/Candidate:/ {print $2}')
    if [ -z "$candidate" ] || [ "$candidate" = "(none)" ]; then
        die "etcd is not installed and this system offers no etcd-server package (apt-cache policy etcd-server); install etcd >= 3.4 by hand and re-run"
    fi
    echo "installing etcd-server $candidate from the system packages"
    DEBIAN_FRONTEND=noninteractive apt-get install -y etcd-server etcd-client >/dev/null ||
        die "apt-get install etcd-server etcd-client failed (are you root?)"
fi
version=$(etcd --version | awk '/etcd Version:/ {print $3}')
case "$version" in
    3.[4-9].*|3.[1-9][0-9].*) ;;
    *) die "etcd $version: the bench needs the /v3/ JSON gateway of etcd >= 3.4" ;;
esac
echo "etcd $version; raw outputs in $OUT"

# --- members -------------------------------------------------------------
PIDS=()
SHM_DIRS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
    for dir in "${SHM_DIRS[@]}"; do rm -rf "$dir"; done
    SHM_DIRS=()
}
trap cleanup EXIT
# The fan-out workload opens one connection per watcher (10,000 by
# default): etcd, started from here, inherits this limit.
ulimit -n "$(ulimit -Hn)"

# wait_for_line FILE PATTERN: waits (at most 60 s) until a line of FILE
# matches, following the file as it grows; stops its tail afterwards.
wait_for_line() {
    local file=$1 pattern=$2 follower found=1
    exec 3< <(exec timeout 60 tail -n +1 -f "$file")
    follower=$!
    if grep -q -m1 "$pattern" <&3; then found=0; fi
    kill "$follower" 2>/dev/null || true
    exec 3<&-
    return $found
}

# start_cluster MODE N: starts N members (ports from BASE_PORT) and waits
# until each logs that it serves clients.
start_cluster() {
    local mode=$1 n=$2 initial="" i
    for i in $(seq 1 "$n"); do
        initial="${initial:+$initial,}m$i=http://127.0.0.1:$((BASE_PORT + 10 + i))"
    done
    for i in $(seq 1 "$n"); do
        local dir extra=()
        if [ "$mode" = fast ]; then
            dir=$(mktemp -d /dev/shm/etcd-bench.XXXXXX)
            SHM_DIRS+=("$dir")
            extra=(--snapshot-count 1000000 --quota-backend-bytes 8589934592)
        else
            dir=$(mktemp -d "$OUT/etcd-data.XXXXXX")
        fi
        local log="$OUT/etcd-$mode-$n-m$i.log"
        etcd --name "m$i" --data-dir "$dir" \
            --listen-client-urls "http://127.0.0.1:$((BASE_PORT + i))" \
            --advertise-client-urls "http://127.0.0.1:$((BASE_PORT + i))" \
            --listen-peer-urls "http://127.0.0.1:$((BASE_PORT + 10 + i))" \
            --initial-advertise-peer-urls "http://127.0.0.1:$((BASE_PORT + 10 + i))" \
            --initial-cluster "$initial" --initial-cluster-state new \
            --log-outputs stderr "${extra[@]}" 2>"$log" &
        PIDS+=($!)
    done
    for i in $(seq 1 "$n"); do
        wait_for_line "$OUT/etcd-$mode-$n-m$i.log" "ready to serve client requests" ||
            die "etcd member m$i ($mode) did not start; see $OUT/etcd-$mode-$n-m$i.log"
    done
}

sizes=(--events "$EVENTS" --rate "$RATE" --subscriptions "$SUBSCRIPTIONS"
    --saturation-events "$SATURATION_EVENTS" --inflight "$INFLIGHT")

echo "== catalogue ($(uptime))"
"$CATALOGUE" bench --only notify,fanout,cluster "${sizes[@]}" --json "$OUT/catalogue.json" |
    tee "$OUT/catalogue.txt"

for mode in default fast; do
    echo "== etcd ($mode settings), one member"
    start_cluster "$mode" 1
    for api in $APIS; do
        CATALOGUE_LOG=${CATALOGUE_LOG:-warn} "$CATALOGUE" bench --etcd "http://127.0.0.1:$((BASE_PORT + 1))" --etcd-api "$api" \
            --only notify,fanout "${sizes[@]}" --json "$OUT/etcd-$api-$mode-1.json" |
            tee "$OUT/etcd-$api-$mode-1.txt"
    done
    cleanup
    echo "== etcd ($mode settings), three members"
    start_cluster "$mode" 3
    for api in $APIS; do
        CATALOGUE_LOG=${CATALOGUE_LOG:-warn} "$CATALOGUE" bench --etcd "http://127.0.0.1:$((BASE_PORT + 1))" --etcd-api "$api" \
            --etcd-watch "http://127.0.0.1:$((BASE_PORT + 3))" --only cluster \
            "${sizes[@]}" --json "$OUT/etcd-$api-$mode-3.json" | tee "$OUT/etcd-$api-$mode-3.txt"
    done
    cleanup
done

# --- ratios ----------------------------------------------------------------
echo
echo "== ratios catalogue / etcd (thr x: catalogue's events/s / etcd's, higher is better for catalogue;"
echo "   p99 x: etcd's p99 / catalogue's p99, higher is better for catalogue)"
for api in $APIS; do
    echo
    echo "-- catalogue vs etcd $api (disk: defaults; tmpfs: fast settings)"
    python3 "$HERE/compare-json.py" "catalogue=$OUT/catalogue.json" \
        "$api-disk=$OUT/etcd-$api-default-1.json+$OUT/etcd-$api-default-3.json" \
        "$api-tmpfs=$OUT/etcd-$api-fast-1.json+$OUT/etcd-$api-fast-3.json"
done
echo "(load at the end: $(uptime); $(nproc) cores; raw outputs and JSON in $OUT)"

#!/usr/bin/env bash
# Side by side with ZooKeeper: runs the notify, fan-out and cluster
# workloads of `catalogue bench` against catalogue and against ZooKeeper
# (Debian's `zookeeper` package, installed with apt-get if absent; Java must
# be there), on loopback, then prints every table and the ratios
# catalogue/ZooKeeper.
#
# ZooKeeper runs as a standalone server (notify, fan-out) and as a
# three-server ensemble (cluster: create at server 1, watch at server 3),
# server i on 127.0.0.i, each time twice: data and transaction log on disk
# (under OUT) and on tmpfs (/dev/shm); forceSync stays on in both, so on
# tmpfs the fsyncs are cheap rather than skipped. The bench drives it with
# the zookeeper-client crate: ephemeral znodes and persistent recursive
# watches (ZooKeeper >= 3.6).
#
# Usage: bench/compare-zookeeper.sh            (from the repository root)
# Environment: CATALOGUE (binary, default target/release/catalogue),
# EVENTS (default 2000), SUBSCRIPTIONS (default 1,100,1000,10000),
# SATURATION_EVENTS (default 20000), INFLIGHT (default 32), RATE (1000),
# OUT (directory for the raw outputs, default a new temporary one),
# ZK_PORT (client port, default 22181), ZK_HEAP (JVM heap per server,
# default 1g). Needs python3 (standard library) for the ratios.
set -euo pipefail

CATALOGUE=${CATALOGUE:-target/release/catalogue}
EVENTS=${EVENTS:-2000}
SUBSCRIPTIONS=${SUBSCRIPTIONS:-1,100,1000,10000}
SATURATION_EVENTS=${SATURATION_EVENTS:-20000}
INFLIGHT=${INFLIGHT:-32}
RATE=${RATE:-1000}
OUT=${OUT:-$(mktemp -d /tmp/compare-zookeeper.XXXXXX)}
ZK_PORT=${ZK_PORT:-22181}
ZK_HEAP=${ZK_HEAP:-1g}
HERE=$(cd "$(dirname "$0")" && pwd)
ZK_JAR=/usr/share/java/zookeeper.jar

die() { echo "compare-zookeeper: $*" >&2; exit 1; }

if [ ! -x "$CATALOGUE" ]; then
    # The bench's etcd gRPC client (etcd-client) needs protoc to build.
    if ! command -v protoc >/dev/null; then
        echo "installing protobuf-compiler (protoc, for the etcd-client crate's build)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y protobuf-compiler >/dev/null ||
            die "no protoc and apt-get install protobuf-compiler failed (are you root?)"
    fi
    echo "building $CATALOGUE (cargo build --release -p catalogue)"
    cargo build --release -p catalogue || die "cargo build --release -p catalogue failed"
fi
command -v python3 >/dev/null || die "python3 is needed for the ratios (bench/compare-json.py)"
command -v java >/dev/null || die "ZooKeeper needs Java (apt-get install default-jre-headless)"

# --- ZooKeeper from the system packages ------------------------------------
if [ ! -f "$ZK_JAR" ]; then
    candidate=$(apt-cache policy zookeeper 2>/dev/null | awk '/Candidate:/ {print $2}')
    if [ -z "$candidate" ] || [ "$candidate" = "(none)" ]; then
        die "ZooKeeper is not installed and this system offers no zookeeper package; install ZooKeeper >= 3.6 by hand and re-run"
    fi
    echo "installing zookeeper $candidate from the system packages"
    DEBIAN_FRONTEND=noninteractive apt-get install -y zookeeper >/dev/null ||
        die "apt-get install zookeeper failed (are you root?)"
fi
version=$(dpkg-query -W -f '${Version}' zookeeper 2>/dev/null || echo unknown)
echo "zookeeper $version; raw outputs in $OUT"

# --- servers ---------------------------------------------------------------
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
# The fan-out workload opens one session (one connection) per watcher.
ulimit -n "$(ulimit -Hn)"

# four_letter HOST COMMAND: the server's answer to a four-letter command.
four_letter() {
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1" && printf %s "$2" >&3 && cat <&3' \
        "$1" "$ZK_PORT" "$2" 2>/dev/null || true
}

# wait_serving HOST: waits (at most 60 s) until the server at HOST serves
# clients: `srvr` names its mode (standalone, leader or follower).
wait_serving() {
    local deadline=$((SECONDS + 60))
    while [ $SECONDS -lt $deadline ]; do
        if four_letter "$1" srvr | grep -q '^Mode:'; then return 0; fi
        sleep 0.2
    done
    return 1
}

# start_servers MODE N: starts N servers (server i on 127.0.0.i) and waits
# until each serves clients.
start_servers() {
    local mode=$1 n=$2 i
    for i in $(seq 1 "$n"); do
        local dir
        if [ "$mode" = tmpfs ]; then
            dir=$(mktemp -d /dev/shm/zookeeper-bench.XXXXXX)
            SHM_DIRS+=("$dir")
        else
            dir=$(mktemp -d "$OUT/zookeeper-data.XXXXXX")
        fi
        local conf="$dir/zoo.cfg"
        {
            echo "tickTime=2000"
            echo "initLimit=10"
            echo "syncLimit=5"
            echo "dataDir=$dir"
            echo "clientPortAddress=127.0.0.$i"
            echo "clientPort=$ZK_PORT"
            echo "maxClientCnxns=0"
            echo "maxSessionTimeout=120000"
            echo "admin.enableServer=false"
            echo "4lw.commands.whitelist=srvr"
            if [ "$n" -gt 1 ]; then
                local j
                for j in $(seq 1 "$n"); do echo "server.$j=127.0.0.$j:2888:3888"; done
            fi
        } >"$conf"
        echo "$i" >"$dir/myid"
        local log="$OUT/zookeeper-$mode-$n-s$i.log"
        java "-Xmx$ZK_HEAP" -cp "$ZK_JAR" \
            org.apache.zookeeper.server.quorum.QuorumPeerMain "$conf" >"$log" 2>&1 &
        PIDS+=($!)
    done
    for i in $(seq 1 "$n"); do
        wait_serving "127.0.0.$i" ||
            die "ZooKeeper server $i ($mode) did not start; see $OUT/zookeeper-$mode-$n-s$i.log"
        echo "server $i: $(four_letter "127.0.0.$i" srvr | grep '^Mode:')"
    done
}

sizes=(--events "$EVENTS" --rate "$RATE" --subscriptions "$SUBSCRIPTIONS"
    --saturation-events "$SATURATION_EVENTS" --inflight "$INFLIGHT")

echo "== catalogue ($(uptime))"
"$CATALOGUE" bench --only notify,fanout,cluster "${sizes[@]}" --json "$OUT/catalogue.json" |
    tee "$OUT/catalogue.txt"

for mode in disk tmpfs; do
    echo "== ZooKeeper (data on $mode), standalone"
    start_servers "$mode" 1
    CATALOGUE_LOG=${CATALOGUE_LOG:-warn} "$CATALOGUE" bench --zookeeper "127.0.0.1:$ZK_PORT" --only notify,fanout "${sizes[@]}" \
        --json "$OUT/zookeeper-$mode-1.json" | tee "$OUT/zookeeper-$mode-1.txt"
    cleanup
    echo "== ZooKeeper (data on $mode), three servers"
    start_servers "$mode" 3
    CATALOGUE_LOG=${CATALOGUE_LOG:-warn} "$CATALOGUE" bench --zookeeper "127.0.0.1:$ZK_PORT" --zookeeper-watch "127.0.0.3:$ZK_PORT" \
        --only cluster "${sizes[@]}" --json "$OUT/zookeeper-$mode-3.json" |
        tee "$OUT/zookeeper-$mode-3.txt"
    cleanup
done

# --- ratios ----------------------------------------------------------------
echo
echo "== ratios catalogue / ZooKeeper (thr x: catalogue's events/s / ZooKeeper's, higher is"
echo "   better for catalogue; p99 x: ZooKeeper's p99 / catalogue's p99, higher is better for catalogue)"
python3 "$HERE/compare-json.py" "catalogue=$OUT/catalogue.json" \
    "zk-disk=$OUT/zookeeper-disk-1.json+$OUT/zookeeper-disk-3.json" \
    "zk-tmpfs=$OUT/zookeeper-tmpfs-1.json+$OUT/zookeeper-tmpfs-3.json"
echo "(load at the end: $(uptime); $(nproc) cores; raw outputs and JSON in $OUT)"

#!/usr/bin/env bash
# The real Docker daemons the peer tests talk to: Debian's 20.10 (the machine's docker.io)
# and 26.1.5 / 28.5.2 in both image stores (fetched privately by shared/peers/docker-daemons.sh).
#
#   .ci/peers.sh start    start every daemon that is not running; prints the two variables
#                         the tests read (eval it, or `export $(.ci/peers.sh start)`)
#   .ci/peers.sh env      print them for daemons already running
#   .ci/peers.sh stop     stop every daemon this script started, by its pid file
#
# Sockets, pid files and exec roots live under $TX_PEERS_RUN (default /run/tarexport-peers),
# data roots under $TX_PEERS_DATA (default /var/tmp/tarexport-peers); nothing system-wide.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SHARED_PEERS=${TX_SHARED_PEERS:-$here/../../shared/peers/docker-daemons.sh}
RUN=${TX_PEERS_RUN:-/run/tarexport-peers}
DATA=${TX_PEERS_DATA:-/var/tmp/tarexport-peers}
export TX_PEERS_RUN=$RUN TX_PEERS_DATA=$DATA

say() { printf '[peers] %s\n' "$*" >&2; }

start_2010() {
    local n=20 sock="$RUN/20.sock" pidf="$RUN/20.pid"
    if [[ -s $pidf ]] && kill -0 "$(<"$pidf")" 2>/dev/null; then return 0; fi
    mkdir -p "$RUN/$n/x" "$DATA/$n/root"
    echo '{}' >"$RUN/$n/daemon.json" # the machine's /etc/docker/daemon.json stays out of it
    setsid nohup dockerd --config-file "$RUN/$n/daemon.json" --data-root "$DATA/$n/root" \
        --exec-root "$RUN/$n/x" --pidfile "$pidf" --host "unix://$sock" --storage-driver vfs \
        --iptables=false --ip6tables=false --bridge=none \
        </dev/null >>"$DATA/$n/dockerd.log" 2>&1 &
    local t0=$SECONDS
    for _ in $(seq 120); do
        if docker -H "unix://$sock" version >/dev/null 2>&1; then
            say "docker 20.10 up in $((SECONDS - t0)) s"
            return 0
        fi
        sleep 0.5
    done
    tail -n 20 "$DATA/$n/dockerd.log" >&2
    say "dockerd 20.10 did not answer"
    return 1
}

stop_2010() {
    local pidf="$RUN/20.pid" pid cpid=""
    [[ -s $pidf ]] || return 0
    pid=$(<"$pidf")
    [[ -s $RUN/20/x/containerd/containerd.pid ]] && cpid=$(<"$RUN/20/x/containerd/containerd.pid")
    if kill "$pid" 2>/dev/null; then
        for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
    fi
    if [[ -n $cpid ]] && kill -0 "$cpid" 2>/dev/null; then kill "$cpid" 2>/dev/null || true; fi
    rm -f "$pidf"
    say "stopped docker 20.10"
}

# One JSON object the tests read: name -> socket, CLI, data root, image store.
print_env() {
    local cli26 cli28
    cli26=$("$SHARED_PEERS" cli 26)
    cli28=$("$SHARED_PEERS" cli 28)
    local d2010 d26 d26c d28 d28c
    d2010=$(printf '"20.10":{"host":"unix://%s/20.sock","cli":"%s","data_root":"%s/20/root","containerd":false}' "$RUN" "$(command -v docker)" "$DATA")
    d26=$(printf '"26":{"host":"unix://%s/26.sock","cli":"%s","data_root":"%s/26/root","containerd":false}' "$RUN" "$cli26" "$DATA")
    d26c=$(printf '"26c":{"host":"unix://%s/26c.sock","cli":"%s","data_root":"%s/26c/root","containerd":true}' "$RUN" "$cli26" "$DATA")
    d28=$(printf '"28":{"host":"unix://%s/28.sock","cli":"%s","data_root":"%s/28/root","containerd":false}' "$RUN" "$cli28" "$DATA")
    d28c=$(printf '"28c":{"host":"unix://%s/28c.sock","cli":"%s","data_root":"%s/28c/root","containerd":true}' "$RUN" "$cli28" "$DATA")
    echo "TAREXPORT_TEST_DOCKER_HOST=unix://$RUN/20.sock"
    echo "TAREXPORT_TEST_DAEMONS={$d2010,$d26,$d26c,$d28,$d28c}"
}

case ${1:-} in
start)
    "$SHARED_PEERS" fetch 26 >&2
    "$SHARED_PEERS" fetch 28 >&2
    start_2010
    for spec in "26" "26 --containerd" "28" "28 --containerd"; do
        # shellcheck disable=SC2086
        "$SHARED_PEERS" start $spec >/dev/null
    done
    print_env
    ;;
env) print_env ;;
stop)
    "$SHARED_PEERS" stop >&2 || true
    stop_2010
    ;;
*)
    sed -n '2,10p' "$0" >&2
    exit 2
    ;;
esac

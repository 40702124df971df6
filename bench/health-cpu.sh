#!/bin/sh
# Design §10: "100 services with 1 s HTTP checks: <= 1 % of one core". Runs the real `init`
# supervising 100 `sleep` services whose [healthiness] polls one busybox httpd on loopback every
# second, waits until all 100 are healthy (`init health`), then reports init's CPU share of one
# core, its wake-ups (context switches) and its RSS over SECONDS (default 60), sampling RSS every
# 10 s. With Horust available (HORUST=/path, `horust` in PATH, or $BENCH_CACHE/cargo/bin/horust as
# bench/peers.sh installs it), runs Horust on the same service files (its interval is a fixed 1 s)
# and prints the ratio. Nothing is built or installed here.
# Usage: bench/health-cpu.sh [SECONDS]
# Needs: busybox (httpd), python3 (to find a free port). Only processes started here are signalled.
set -eu
SECS="${1:-60}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
if [ -z "${INIT_BIN:-}" ]; then
    INIT_BIN="$TARGET/dist/init" # scripts/dist.sh: the shipped binary
    [ -x "$INIT_BIN" ] || INIT_BIN="$TARGET/x86_64-unknown-linux-musl/release/init"
fi
INIT="$INIT_BIN"
BENCH_CACHE="${BENCH_CACHE:-/var/tmp/ankh-bench}"
HORUST="${HORUST:-$(command -v horust || true)}"
[ -n "$HORUST" ] || { [ -x "$BENCH_CACHE/cargo/bin/horust" ] && HORUST="$BENCH_CACHE/cargo/bin/horust"; } || true
BB="$(command -v busybox)"
TMP="$(mktemp -d /tmp/ankh-health-bench.XXXXXX)"
PIDS=""
cleanup() { for p in $PIDS; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT INT TERM

[ -x "$INIT" ] || { echo "no init binary at $INIT (bash scripts/dist.sh, or set INIT_BIN)" >&2; exit 1; }
HZ="$(getconf CLK_TCK)"
echo "init: $INIT ($(stat -c %s "$INIT") bytes); $(nproc) cores; $(uname -r)"

# One loopback HTTP server for all checks (busybox httpd forks per request: its cost is not init's).
mkdir -p "$TMP/www" "$TMP/services" "$TMP/horust"
echo ok > "$TMP/www/healthz"
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$BB" httpd -f -p "127.0.0.1:$PORT" -h "$TMP/www" &
PIDS="$PIDS $!"

i=0
while [ "$i" -lt 100 ]; do
    cat > "$TMP/services/s$i.toml" <<TOML
command = "$BB sleep 100000"
[healthiness]
http-endpoint = "http://127.0.0.1:$PORT/healthz"
TOML
    # Horust rejects unknown [healthiness] keys; its interval is a fixed 1 s.
    cp "$TMP/services/s$i.toml" "$TMP/horust/s$i.toml"
    echo 'interval = "1s"' >> "$TMP/services/s$i.toml"
    i=$((i + 1))
done

# cpu_ticks PID: utime+stime of the whole process (all threads).
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
# Context switches summed over every thread.
switches() { cat /proc/"$1"/task/*/status | awk '/ctxt_switches/ { s += $2 } END { print s }'; }

measure() { # NAME PID -> prints "NAME: cpu% ..." and keeps the figure in $TMP/NAME.pct
    t0="$(cpu_ticks "$2")"
    w0="$(switches "$2")"
    rss="$(rss_kb "$2")"
    curve="$rss"
    left="$SECS"
    while [ "$left" -gt 0 ]; do
        step=10
        [ "$left" -lt 10 ] && step="$left"
        sleep "$step"
        left=$((left - step))
        curve="$curve $(rss_kb "$2")"
    done
    t1="$(cpu_ticks "$2")"
    w1="$(switches "$2")"
    pct="$(awk -v a="$t0" -v b="$t1" -v hz="$HZ" -v s="$SECS" 'BEGIN { printf "%.2f", (b - a) * 100 / hz / s }')"
    wps="$(awk -v a="$w0" -v b="$w1" -v s="$SECS" 'BEGIN { printf "%.1f", (b - a) / s }')"
    echo "$1: CPU ${pct}% of one core over ${SECS}s ($((t1 - t0)) ticks of 1/${HZ}s), ${wps} wake-ups/s, RSS kB every 10 s: $curve"
    echo "$pct" > "$TMP/$1.pct"
}

"$INIT" --config "$TMP/services" --socket "$TMP/init.sock" 2> "$TMP/init.log" &
IPID=$!
PIDS="$PIDS $IPID"
# Steady state: every service Running and healthy (first probes passed), then measure.
n=0
until "$INIT" --socket "$TMP/init.sock" health > /dev/null 2>&1; do
    n=$((n + 1))
    [ "$n" -lt 600 ] || { echo "init never became healthy:" >&2; tail "$TMP/init.log" >&2; exit 1; }
    sleep 0.1
done
measure init "$IPID"
kill -TERM "$IPID"
wait "$IPID" || true

if [ -n "$HORUST" ] && [ -x "$HORUST" ]; then
    "$HORUST" --services-path "$TMP/horust" --uds-folder-path "$TMP" 2> "$TMP/horust.log" &
    HPID=$!
    PIDS="$PIDS $HPID"
    sleep 5 # Horust has no readiness query: give it its first probes
    measure horust "$HPID"
    kill -TERM "$HPID"
    wait "$HPID" || true
    awk -v a="$(cat "$TMP/init.pct")" -v b="$(cat "$TMP/horust.pct")" \
        'BEGIN { if (a > 0) printf "horust / init CPU: %.1fx\n", b / a }'
else
    echo "horust: not found (HORUST=, PATH, $BENCH_CACHE/cargo/bin/horust): not measured"
fi

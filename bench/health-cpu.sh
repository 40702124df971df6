#!/bin/sh
# Design §10: "100 services with 1 s HTTP checks: <= 1 % of one core". Runs the real `init`
# supervising 100 `sleep` services whose [healthiness] polls a busybox httpd on loopback every
# second, and reports init's CPU share and RSS over SECONDS (default 60). With `horust` in PATH
# (or HORUST=/path), runs Horust on the same service files (its interval is fixed at 1 s) and
# prints the ratio.
# Usage: bench/health-cpu.sh [SECONDS]
# Needs: busybox (httpd, sleep). Only processes started here are signalled (by pid).
set -eu
SECS="${1:-60}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
INIT="${INIT_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/x86_64-unknown-linux-musl/release/init}"
HORUST="${HORUST:-$(command -v horust || true)}"
BB="$(command -v busybox)"
TMP="$(mktemp -d /tmp/ankh-health-bench.XXXXXX)"
PIDS=""
cleanup() { for p in $PIDS; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT INT TERM

[ -x "$INIT" ] || (cd "$ROOT" && cargo build --release >/dev/null)
HZ="$(getconf CLK_TCK)"

# One loopback HTTP server for all checks.
mkdir -p "$TMP/www" "$TMP/services" "$TMP/horust"
echo ok > "$TMP/www/healthz"
PORT=18080
while "$BB" nc -z 127.0.0.1 "$PORT" 2>/dev/null; do PORT=$((PORT + 1)); done
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

measure() { # NAME PID -> prints "NAME cpu% rss"
    sleep 5 # start-up and first probes are not the steady state
    t0="$(cpu_ticks "$2")"
    sleep "$SECS"
    t1="$(cpu_ticks "$2")"
    pct="$(awk -v a="$t0" -v b="$t1" -v hz="$HZ" -v s="$SECS" 'BEGIN { printf "%.2f", (b - a) * 100 / hz / s }')"
    echo "$1: CPU ${pct}% of one core over ${SECS}s, RSS $(rss_kb "$2") kB"
    echo "$pct" > "$TMP/$1.pct"
}

"$INIT" --config "$TMP/services" --socket "$TMP/init.sock" &
IPID=$!
PIDS="$PIDS $IPID"
measure init "$IPID"
kill -TERM "$IPID"; wait "$IPID" || true

if [ -n "$HORUST" ]; then
    "$HORUST" --services-path "$TMP/horust" &
    HPID=$!
    PIDS="$PIDS $HPID"
    measure horust "$HPID"
    kill -TERM "$HPID"; wait "$HPID" || true
    awk -v a="$(cat "$TMP/init.pct")" -v b="$(cat "$TMP/horust.pct")" \
        'BEGIN { if (a > 0) printf "horust / init CPU: %.1fx\n", b / a }'
else
    echo "horust: not found (cargo install horust; needs protobuf-compiler): skipped"
fi

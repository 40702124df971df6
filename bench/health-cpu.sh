#!/bin/sh
# Design §10: "100 services with 1 s HTTP checks: <= 1 % of one core". Runs the real `init`
# supervising 100 `sleep` services whose [healthiness] polls one busybox httpd on loopback every
# second, waits until all 100 are healthy (`init health`), then reports init's CPU share of one
# core, its wake-ups (context switches) and its RSS over SECONDS (default 60), sampling RSS every
# 10 s. With Horust available (HORUST=/path, `horust` in PATH, or $BENCH_CACHE/cargo/bin/horust as
# bench/peers.sh installs it), runs Horust on the same service files against the same server (its
# interval is a fixed 1 s) and prints the ratios. Each window also reports the probes the server
# answered (it logs one line per request), the load average and the thread count.
# ROUNDS=N (default 1) repeats init then Horust N times, alternating which goes first.
# Nothing is built or installed here.
# Usage: [ROUNDS=N] bench/health-cpu.sh [SECONDS]
# Needs: busybox (the services: `busybox sleep`), python3 (the loopback HTTP server). Only processes started here are signalled.
set -eu
SECS="${1:-60}"
ROUNDS="${ROUNDS:-1}"
. "$(dirname "$0")/init-bin.sh"
BENCH_CACHE="${BENCH_CACHE:-/var/tmp/ankh-bench}"
HORUST="${HORUST:-$(command -v horust || true)}"
[ -n "$HORUST" ] || { [ -x "$BENCH_CACHE/cargo/bin/horust" ] && HORUST="$BENCH_CACHE/cargo/bin/horust"; } || true
BB="$(command -v busybox)"
TMP="$(mktemp -d /tmp/ankh-health-bench.XXXXXX)"
PIDS=""
cleanup() { for p in $PIDS; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT INT TERM

HZ="$(getconf CLK_TCK)"
echo "init: $INIT ($(stat -c %s "$INIT") bytes); $(nproc) cores; $(uname -r)"

# One loopback HTTP server for all checks. Not busybox httpd: its listen backlog is 9, so 100 probes
# that connect in the same millisecond overflow it, the kernel drops SYNs, and the 1 s SYN
# retransmission makes probes time out (ankh and Horust both give up after 1 s). Python's threading
# server with a backlog of 1024 answers them all; one log line per request on stderr lets us count
# the probes each supervisor really made. Its cost is not the supervisor's.
mkdir -p "$TMP/www" "$TMP/services" "$TMP/horust"
echo ok > "$TMP/www/healthz"
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
python3 -u -c '
import functools, http.server, sys
class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 1024
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[2])
Server(("127.0.0.1", int(sys.argv[1])), handler).serve_forever()
' "$PORT" "$TMP/www" 2> "$TMP/httpd.log" &
PIDS="$PIDS $!"
n=0
until python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$PORT" 2> /dev/null; do
    n=$((n + 1))
    [ "$n" -lt 100 ] || { echo "the loopback server did not start:" >&2; cat "$TMP/httpd.log" >&2; exit 1; }
    sleep 0.1
done
: > "$TMP/httpd.log" # forget the readiness connection

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

threads() { awk '/^Threads/ { print $2 }' "/proc/$1/status"; }
# Requests the loopback server answered so far, and how many of them were not 200.
answered() { grep -c '" [0-9][0-9][0-9] ' "$TMP/httpd.log" || true; }
failed() { grep '" [0-9][0-9][0-9] ' "$TMP/httpd.log" | grep -vc '" 200 ' || true; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

measure() { # NAME PID -> prints "NAME: cpu% ..." and keeps the figure in $TMP/NAME.pct
    la0="$(loadavg)"
    r0="$(answered)"
    f0="$(failed)"
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
    r1="$(answered)"
    f1="$(failed)"
    pct="$(awk -v a="$t0" -v b="$t1" -v hz="$HZ" -v s="$SECS" 'BEGIN { printf "%.2f", (b - a) * 100 / hz / s }')"
    wps="$(awk -v a="$w0" -v b="$w1" -v s="$SECS" 'BEGIN { printf "%.1f", (b - a) / s }')"
    rps="$(awk -v a="$r0" -v b="$r1" -v s="$SECS" 'BEGIN { printf "%.1f", (b - a) / s }')"
    echo "$1: CPU ${pct}% of one core over ${SECS}s ($((t1 - t0)) ticks of 1/${HZ}s), ${wps} wake-ups/s, RSS kB every 10 s: $curve"
    echo "$1:   probes answered ${rps}/s ($((f1 - f0)) not 200), $(threads "$2") threads, load average $la0 -> $(loadavg)"
    echo "$pct" > "$TMP/$1.pct"
    echo "$rss $(rss_kb "$2")" > "$TMP/$1.rss"
}

run_init() {
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
}

run_horust() {
    "$HORUST" --services-path "$TMP/horust" --uds-folder-path "$TMP" 2> "$TMP/horust.log" &
    HPID=$!
    PIDS="$PIDS $HPID"
    # Horust has no readiness query: poll until the server has answered 3 rounds of its probes
    # (a service becomes Running on its first healthy probe), then give it one more second.
    base="$(answered)"
    n=0
    until [ "$(($(answered) - base))" -ge 300 ]; do
        n=$((n + 1))
        [ "$n" -lt 600 ] || { echo "horust never probed 100 services:" >&2; tail "$TMP/horust.log" >&2; exit 1; }
        sleep 0.1
    done
    sleep 1
    measure horust "$HPID"
    kill -TERM "$HPID"
    wait "$HPID" || true
}

ratios() {
    awk -v a="$(cat "$TMP/init.pct")" -v b="$(cat "$TMP/horust.pct")" \
        'BEGIN { if (a > 0) printf "horust / init CPU: %.1fx\n", b / a; else print "horust / init CPU: init used 0 ticks" }'
    awk -v a="$(cut -d' ' -f2 "$TMP/init.rss")" -v b="$(cut -d' ' -f2 "$TMP/horust.rss")" \
        'BEGIN { if (a > 0) printf "horust / init RSS (end of window): %.1fx (%d kB / %d kB)\n", b / a, b, a }'
}

echo "load average at start: $(loadavg)"
if [ -n "$HORUST" ] && [ -x "$HORUST" ]; then
    echo "horust: $HORUST ($(stat -c %s "$HORUST") bytes)"
    r=1
    while [ "$r" -le "$ROUNDS" ]; do
        [ "$ROUNDS" -gt 1 ] && echo "round $r"
        if [ $((r % 2)) -eq 1 ]; then run_init; run_horust; else run_horust; run_init; fi
        ratios
        r=$((r + 1))
    done
else
    run_init
    echo "horust: not found (HORUST=, PATH, $BENCH_CACHE/cargo/bin/horust): not measured"
fi

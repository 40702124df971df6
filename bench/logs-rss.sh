#!/bin/sh
# Design §10: "RSS with 100 services logging 1,000 lines/s: ring buffers + fixed overhead, flat over
# time". Runs the real `init` twice on 100 services:
#   1. silent: 100 `sleep`s, RSS after SETTLE seconds: the fixed overhead;
#   2. logging: 100 shell loops each printing 100 lines then sleeping 0.1 s (~1,000 lines/s each,
#      ~15 bytes a line), for SECONDS (default 30), RSS sampled every STEP seconds (default 3).
# init's stdout (every line, prefixed) goes through a FIFO to `wc -l`, which gives the rate
# achieved. The bound is the fixed overhead + 100 x the ring size (`log-buffer`, default 16 KiB)
# + the 64 KiB shared read buffer; what RSS holds beyond it is printed per ring.
# Usage: bench/logs-rss.sh [SECONDS] [STEP]
# Needs: /bin/sh, sleep. Only processes started here are signalled (by pid).
set -eu
SECS="${1:-30}"
STEP="${2:-3}"
SETTLE="${SETTLE:-3}"
PAD="${PAD:-0}" # PAD=N: N more bytes on every line (longer lines, fewer of them per ring)
. "$(dirname "$0")/init-bin.sh"
TMP="$(mktemp -d /tmp/ankh-logs-bench.XXXXXX)"
PIDS=""
cleanup() { for p in $PIDS; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT INT TERM
echo "init: $INIT ($(stat -c %s "$INIT") bytes); $(nproc) cores; $(uname -r)"

rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
anon_kb() { awk '/^RssAnon/ { print $2 }' "/proc/$1/status"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
HZ="$(getconf CLK_TCK)"

mkdir -p "$TMP/silent" "$TMP/loud"
pad="$(printf "%${PAD}s" "" | tr ' ' x)"
i=0
while [ "$i" -lt 100 ]; do
    echo 'command = ["/bin/sleep", "100000"]' > "$TMP/silent/s$i.toml"
    # 100 lines, then 0.1 s: ~1,000 lines/s. echo, [ and $(( )) are shell builtins: one fork
    # (sleep) per 100 lines.
    cat > "$TMP/loud/s$i.toml" <<TOML
command = ["/bin/sh", "-c", "n=0; while :; do j=0; while [ \$j -lt 100 ]; do echo \"s$i line \$n $pad\"; n=\$((n+1)); j=\$((j+1)); done; sleep 0.1; done"]
TOML
    i=$((i + 1))
done

# run DIR: start init on DIR with stdout into a FIFO read by `wc -l`; sets IPID and WCPID.
run() {
    rm -f "$TMP/out" "$TMP/count"
    mkfifo "$TMP/out"
    wc -l < "$TMP/out" > "$TMP/count" &
    WCPID=$!
    "$INIT" --config "$1" --socket "$TMP/init.sock" > "$TMP/out" 2> "$TMP/init.log" &
    IPID=$!
    PIDS="$PIDS $IPID"
    n=0
    until "$INIT" --socket "$TMP/init.sock" health > /dev/null 2>&1; do
        n=$((n + 1))
        [ "$n" -lt 300 ] || { echo "init never had its services up" >&2; exit 1; }
        sleep 0.1
    done
}

stop() {
    kill -TERM "$IPID"
    wait "$IPID" || true
    wait "$WCPID" || true
}

run "$TMP/silent"
sleep "$SETTLE"
FIXED="$(rss_kb "$IPID")"
FIXED_ANON="$(anon_kb "$IPID")"
stop
echo "silent: 100 services, RSS ${FIXED} kB (RssAnon ${FIXED_ANON} kB) after ${SETTLE}s"

# The counter in the last line of a service: how many lines it has written so far.
seqno() { "$INIT" --socket "$TMP/init.sock" logs "$1" -n 1 | awk '{ print $3 + 0 }'; }
run "$TMP/loud"
t0="$(cpu_ticks "$IPID")"
n0="$(( $(seqno s0) + $(seqno s50) + $(seqno s99) ))"
echo "logging: RSS kB (RssAnon kB) every ${STEP}s for ${SECS}s:"
curve=""
el=0
while [ "$el" -lt "$SECS" ]; do
    sleep "$STEP"
    el=$((el + STEP))
    r="$(rss_kb "$IPID")"
    a="$(anon_kb "$IPID")"
    curve="$curve $r"
    printf '  t=%3ss  %6s kB  (anon %6s kB)\n' "$el" "$r" "$a"
done
t1="$(cpu_ticks "$IPID")"
n1="$(( $(seqno s0) + $(seqno s50) + $(seqno s99) ))"
PEAK="$(awk '/^VmHWM/ { print $2 }' "/proc/$IPID/status")"
RING_KB="$("$INIT" --socket "$TMP/init.sock" logs s0 | wc -c)"
stop
LINES="$(cat "$TMP/count")"
awk -v l="$LINES" -v s="$SECS" -v st="$SETTLE" -v f="$FIXED" -v p="$PEAK" -v t0="$t0" -v t1="$t1" -v hz="$HZ" \
    -v ring="$RING_KB" -v curve="$curve" -v dn="$((n1 - n0))" 'BEGIN {
    n = split(curve, c, " "); min = c[1]; max = c[1]
    for (i = 1; i <= n; i++) { if (c[i] < min) min = c[i]; if (c[i] > max) max = c[i] }
    bound = f + 100 * 16 + 64
    printf "rate: %.0f lines/s per service (s0, s50, s99 over the %ds window); %d lines reached init'"'"'s stdout in the whole run\n", dn / 3 / s, s, l
    printf "init CPU while logging: %.1f%% of one core\n", (t1 - t0) * 100 / hz / s
    printf "RSS while logging: min %d kB, max %d kB, peak (VmHWM) %d kB; spread after the first sample %d kB\n", min, max, p, max - min
    printf "bound: fixed %d kB + 100 x 16 KiB rings + 64 KiB read buffer = %d kB -> %s", f, bound, (max <= bound ? "within" : "OVER")
    if (max > bound) printf " by %d kB (%.0f bytes per ring)", max - bound, (max - bound) * 1024 / 100
    printf "\n"
    printf "one ring now holds %d bytes of output (s0, as `init logs` prints it)\n", ring
}'

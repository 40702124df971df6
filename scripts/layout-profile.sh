#!/usr/bin/env bash
# scripts/layout-profile.sh: regenerates scripts/hot-functions.txt, the functions that scripts/dist.sh
# places together at the start of `.text` (docs/design.md, "Code layout").
#
# Why: the kernel maps a static binary's pages on first touch, 64 KiB or a whole page-cache folio at
# a time, so idle RSS is the number of those windows that hold any code init ever ran. With the
# linker's default order, the code a supervisor runs is spread over the whole binary and every
# window is mapped; with the code it runs packed together, the windows that hold only the client,
# `--check` output, probes, proxy and pid-1 code are never mapped (nor read from disk).
#
# How: runs the unstripped shipped binary under valgrind's callgrind, as PID 1 of a new PID namespace
# (a container) and as an ordinary process (standalone, as bench/peers.sh measures it), on two
# configurations, and dumps each phase separately (callgrind_control; inside the namespace for PID 1):
#   1. hot: start-up and idle supervision of 100 plain services (`command = [...]`, nothing else):
#      what every init runs, the idle-RSS benchmark's case;
#   2. variants: start-up of a richer set (dependencies, a oneshot, a service that logs 2,000 lines,
#      a zinit-format file, a Horust-style string command with escapes, an environment table);
#   3. warm: `init status`, `init health` (Docker's HEALTHCHECK), `init logs`, `init start` of a
#      service that fails, restarts with backoff and is given up, `init restart`, `status --json`;
#   4. stop: SIGTERM and the ordered shutdown.
# Each group's new functions, demangled and sorted, are appended to the list, so dist.sh places
# them in that order, then everything else: code a config uses beyond the plain case maps the
# windows right after the hot ones. A function missing from the list (renamed since) still works:
# it only lands in the cold part and may map one more window when it runs.
#
# Needs: root (unshare, nsenter), valgrind, /bin/sh and sleep. Usage: bash scripts/layout-profile.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${CARGO_TARGET_DIR:-$PWD/target}
command -v valgrind > /dev/null || { echo "layout-profile.sh: needs valgrind" >&2; exit 1; }
bash scripts/dist.sh > /dev/null
BIN="$OUT/dist/init.unstripped"
[ -x "$BIN" ] || { echo "layout-profile.sh: no $BIN (the rebuilt-std build failed?)" >&2; exit 1; }
D=$(mktemp -d /tmp/ankh-layout.XXXXXX)
trap 'rm -rf "$D"' EXIT
mkdir -p "$D/plain" "$D/rich"
for i in $(seq 1 100); do echo 'command = ["/bin/sleep", "1000000"]' > "$D/plain/s$i.toml"; done
svc() { printf '%s\n' "$2" > "$D/rich/$1.toml"; }
svc migrate $'command = ["/bin/sh", "-c", "echo migrated"]\noneshot = true'
# db logs 2,000 lines (its ring fills and wraps), then sleeps
svc db $'command = ["/bin/sh", "-c", "i=0; while [ $i -lt 2000 ]; do echo db line $i; i=$((i+1)); done; exec sleep 1000000"]\nrequires = ["migrate"]'
svc web $'command = ["/bin/sleep", "1000000"]\nrequires = ["db"]\nafter = ["migrate"]'
svc flaky $'command = ["/bin/sh", "-c", "echo flaky; exit 3"]\nautostart = false\n[restart]\nstrategy = "on-failure"\nbackoff = "100ms"\nattempts = 3'
cat > "$D/rich/cache.toml" << 'TOML'
[service]
name = "cache"
exec = "/bin/sh -c \"exec sleep 1000000\""
dir = "/"
[dependencies]
after = ["db"]
[lifecycle]
restart = "on-failure"
stop_signal = "SIGTERM"
restart_delay_ms = 500
[logging]
buffer_lines = 100
TOML
cat > "$D/rich/worker.toml" << 'TOML'
# a Horust-style service
command = "/bin/sh -c 'echo \"worker\tstarted $GREETING\"; exec sleep 1000000'"
start-after = ["db.toml"]
[environment]
keep-env = false
additional = { GREETING = "h\u00e9llo", 'RAW' = '''multi
line''' }
[termination]
signal = "TERM"
wait = "5s"
[restart]
strategy = "always"
backoff = "1s"
TOML
for i in $(seq 1 94); do svc "s$i" 'command = ["/bin/sleep", "1000000"]'; done
ctl() { "$BIN" --socket "$D/$run.sock" "$@"; }
up() { pgrep -P "$V" | wc -l; }
dump() {
	if [ "$mode" = pid1 ]; then
		nsenter -t "$V" -p -m callgrind_control -d 1 > /dev/null 2>&1
	else
		callgrind_control -d "$V" > /dev/null 2>&1
	fi
}
# profile MODE CONFIG: MODE pid1 (PID 1 of a new PID namespace) or standalone; CONFIG plain or
# rich. Writes $D/MODE-CONFIG.cg.out.1 (up and idle), for rich also .cg.out.2 (the control verbs),
# and .cg.out (the shutdown).
profile() {
	mode=$1 run=$1-$2
	local cg=(valgrind --tool=callgrind --callgrind-out-file="$D/$run.cg.out" "$BIN" --socket "$D/$run.sock" --config "$D/$2")
	if [ "$mode" = pid1 ]; then
		unshare --pid --fork --mount-proc --kill-child "${cg[@]}" > "$D/$run.log" 2>&1 &
	else
		"${cg[@]}" > "$D/$run.log" 2>&1 &
	fi
	U=$!
	V=
	for _ in $(seq 1 600); do
		if [ "$mode" = pid1 ]; then V=$(pgrep -P "$U" | head -1) || true; else V=$U; fi
		[ -n "$V" ] && [ "$(up)" -ge 98 ] && break
		sleep 0.1
	done
	[ "$(up)" -ge 98 ] || { echo "layout-profile.sh: services did not start:" >&2; cat "$D/$run.log" >&2; exit 1; }
	sleep 1 # let init finish the last exec reports and go idle before the dump
	dump
	if [ "$2" = rich ]; then
		ctl status > /dev/null
		ctl health > /dev/null || true
		ctl logs db > /dev/null
		ctl start flaky > /dev/null
		for _ in $(seq 1 600); do
			ctl status 2> /dev/null | grep -q '^flaky  *Failed' && break
			sleep 0.1
		done
		ctl restart web > /dev/null
		ctl status --json > /dev/null
		dump
	fi
	kill -TERM "$V"
	wait "$U" || true
	for f in "$D/$run.cg.out.1" "$D/$run.cg.out"; do
		[ -s "$f" ] || { echo "layout-profile.sh: no $f; init's output:" >&2; cat "$D/$run.log" >&2; exit 1; }
	done
}
for mode in pid1 standalone; do
	profile $mode plain
	profile $mode rich
done
# valgrind calls musl's __libc_start_main "(below main)", names code that has no symbol size (musl's
# assembly: _start, __set_thread_area) by its address, which addr2line turns back into a name,
# and does not list musl's memcpy, memmove and memset at all; and it hides the vDSO, so musl's
# lookup of clock_gettime in it (checkver, strcmp) never runs: those are added by name. LLVM's
# outlined sequences (OUTLINED_FUNCTION_n, 8.5 KB) are numbered anew by every build: dist.sh places
# all of them first, so they are left out here.
fns() {
	local f
	for f in "$@"; do
		grep -oP '^c?fn=\(\d+\) \K.*' "$f" | sed 's/^(below main)$/__libc_start_main/' > "$D/names"
		grep -v '^0x\|^OUTLINED_FUNCTION_' "$D/names" || true
		grep '^0x' "$D/names" | xargs -r addr2line -f -C -e "$BIN" | awk 'NR % 2 == 1 && $0 != "??"' || true
	done | LC_ALL=C sort -u
}
{ printf '%s\n' memcpy memmove memset checkver strcmp __vdsosym cgt_init; fns "$D"/*-plain.cg.out.1; } |
	LC_ALL=C sort -u > "$D/hot"
fns "$D"/*-rich.cg.out.1 | LC_ALL=C comm -23 - "$D/hot" > "$D/variants"
cat "$D/hot" "$D/variants" | LC_ALL=C sort -u > "$D/seen"
fns "$D"/*-rich.cg.out.2 | LC_ALL=C comm -23 - "$D/seen" > "$D/warm"
cat "$D/seen" "$D/warm" | LC_ALL=C sort -u > "$D/seen2"
fns "$D"/*.cg.out | LC_ALL=C comm -23 - "$D/seen2" > "$D/stop"
cat "$D/hot" "$D/variants" "$D/warm" "$D/stop" > scripts/hot-functions.txt
echo "layout-profile.sh: scripts/hot-functions.txt: $(wc -l < "$D/hot") hot, $(wc -l < "$D/variants") variants," \
	"$(wc -l < "$D/warm") warm, $(wc -l < "$D/stop") stop functions"

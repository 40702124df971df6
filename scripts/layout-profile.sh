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
# How: runs the unstripped shipped binary under valgrind's callgrind twice, as PID 1 of a new PID
# namespace (a container) and as an ordinary process (standalone, as bench/peers.sh measures it),
# each in three phases dumped separately (callgrind_control; inside the namespace for the first):
#   1. hot: start-up and idle supervision of 100 services (dependencies, a oneshot, a service that
#      logs a line): what every running init has executed, the idle-RSS benchmark's case;
#   2. warm: `init status`, `init logs`, `init start` of a service that fails, restarts with
#      backoff and is given up, `init restart`, `init status --json`;
#   3. stop: SIGTERM and the ordered shutdown.
# Each phase's new functions, demangled and sorted, are appended to the list, so dist.sh places
# hot, then warm, then stop code, then everything else. A function missing from the list (renamed
# since) still works: it only lands in the cold part and may map one more window when it runs.
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
mkdir -p "$D/svc"
svc() { printf '%s\n' "$2" > "$D/svc/$1.toml"; }
svc migrate $'command = ["/bin/sh", "-c", "echo migrated"]\noneshot = true'
svc db $'command = ["/bin/sh", "-c", "echo db up; exec sleep 1000000"]\nrequires = ["migrate"]'
svc web $'command = ["/bin/sleep", "1000000"]\nrequires = ["db"]\nafter = ["migrate"]'
svc flaky $'command = ["/bin/sh", "-c", "echo flaky; exit 3"]\nautostart = false\n[restart]\nstrategy = "on-failure"\nbackoff = "100ms"\nattempts = 3'
for i in $(seq 1 96); do svc "s$i" 'command = ["/bin/sleep", "1000000"]'; done
ctl() { "$BIN" --socket "$D/$mode.sock" "$@"; }
up() { pgrep -P "$V" | wc -l; }
# One run of the workload; MODE pid1: init is PID 1 of a new PID namespace (a container), MODE
# standalone: an ordinary process (a subreaper), as bench/peers.sh runs it. Writes $D/MODE.cg.out.{1,2}
# and $D/MODE.cg.out (the three phases).
profile() {
	mode=$1
	local cg=(valgrind --tool=callgrind --callgrind-out-file="$D/$mode.cg.out" "$BIN" --socket "$D/$mode.sock" --config "$D/svc")
	if [ "$mode" = pid1 ]; then
		unshare --pid --fork --mount-proc --kill-child "${cg[@]}" > "$D/$mode.log" 2>&1 &
	else
		"${cg[@]}" > "$D/$mode.log" 2>&1 &
	fi
	U=$!
	V=
	for _ in $(seq 1 600); do
		if [ "$mode" = pid1 ]; then V=$(pgrep -P "$U" | head -1) || true; else V=$U; fi
		[ -n "$V" ] && [ "$(up)" -ge 98 ] && break
		sleep 0.1
	done
	[ "$(up)" -ge 98 ] || { echo "layout-profile.sh: services did not start:" >&2; cat "$D/$mode.log" >&2; exit 1; }
	sleep 1 # let init finish the last exec reports and go idle before the dump
	dump
	ctl status > /dev/null
	ctl logs db > /dev/null
	ctl start flaky > /dev/null
	for _ in $(seq 1 600); do
		ctl status 2> /dev/null | grep -q '^flaky  *Failed' && break
		sleep 0.1
	done
	ctl restart web > /dev/null
	ctl status --json > /dev/null
	dump
	kill -TERM "$V"
	wait "$U" || true
	for f in "$D/$mode.cg.out.1" "$D/$mode.cg.out.2" "$D/$mode.cg.out"; do
		[ -s "$f" ] || { echo "layout-profile.sh: no $f; init's output:" >&2; cat "$D/$mode.log" >&2; exit 1; }
	done
}
dump() {
	if [ "$mode" = pid1 ]; then
		nsenter -t "$V" -p -m callgrind_control -d 1 > /dev/null 2>&1
	else
		callgrind_control -d "$V" > /dev/null 2>&1
	fi
}
profile pid1
profile standalone
# valgrind calls musl's __libc_start_main "(below main)", names code that has no symbol size (musl's
# assembly: _start, __set_thread_area) by its address, which addr2line turns back into a name,
# and does not list musl's memcpy, memmove and memset at all; and it hides the vDSO, so musl's
# lookup of clock_gettime in it (checkver, strcmp) never runs: those are added by name. LLVM's
# outlined sequences (OUTLINED_FUNCTION_n, 8.5 KB) are numbered anew by every build: dist.sh places
# all of them first, so they are left out here.
fns() {
	grep -oP '^c?fn=\(\d+\) \K.*' "$1" | sed 's/^(below main)$/__libc_start_main/' > "$D/names"
	grep -v '^0x\|^OUTLINED_FUNCTION_' "$D/names" || true
	grep '^0x' "$D/names" | xargs -r addr2line -f -C -e "$BIN" | awk 'NR % 2 == 1 && $0 != "??"' || true
}
{ printf '%s\n' memcpy memmove memset checkver strcmp __vdsosym cgt_init; fns "$D/pid1.cg.out.1"; fns "$D/standalone.cg.out.1"; } | LC_ALL=C sort -u > "$D/hot"
{ fns "$D/pid1.cg.out.2"; fns "$D/standalone.cg.out.2"; } | LC_ALL=C sort -u | LC_ALL=C comm -23 - "$D/hot" > "$D/warm"
{ fns "$D/pid1.cg.out"; fns "$D/standalone.cg.out"; } | LC_ALL=C sort -u | LC_ALL=C comm -23 - <(LC_ALL=C sort -u "$D/hot" "$D/warm") > "$D/stop"
cat "$D/hot" "$D/warm" "$D/stop" > scripts/hot-functions.txt
echo "layout-profile.sh: scripts/hot-functions.txt: $(wc -l < "$D/hot") hot, $(wc -l < "$D/warm") warm, $(wc -l < "$D/stop") stop functions"

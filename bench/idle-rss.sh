#!/usr/bin/env bash
# bench/idle-rss.sh: init's idle RSS (DESIGN.md §10: ≤ 600 kB with 10 services, ≤ 1 MiB with 100),
# split into RssAnon (init's own memory) and RssFile (the binary's pages), for 1, 10 and 100 silent
# services, each measured twice:
#   warm: the binary's page cache as it is (just built or just run);
#   cold: its page cache dropped first (`dd iflag=nocache`), as after a boot or an image pull.
# How many of the binary's pages are resident depends on the page-cache folios it lies in (the
# kernel maps a whole folio, or 64 KiB around a fault), hence both; docs/design.md "Code layout".
# init runs as PID 1 of a new PID namespace, as in a container; figures are read from
# /proc/PID/status 1 s after all N services are up (polled). Only processes started here are
# signalled, by pid.
#   usage (root, repo root): bench/idle-rss.sh [ROUNDS]    env: INIT_BIN (default target/dist/init)
set -euo pipefail
ROUNDS=${1:-2}
. "$(dirname "$0")/init-bin.sh"
T=$(mktemp -d /tmp/ankh-idle-rss.XXXXXX)
P=
cleanup() { [ -n "$P" ] && kill "$P" 2> /dev/null; rm -rf "$T"; }
trap cleanup EXIT INT TERM
echo "init: $INIT ($(stat -c %s "$INIT") bytes); kernel $(uname -r)"
echo
echo "| services | cache | VmRSS kB | RssAnon kB | RssFile kB | binary pages resident |"
echo "|---:|---|---:|---:|---:|---:|"
for n in 1 10 100; do
	rm -rf "$T/svc" && mkdir -p "$T/svc"
	for i in $(seq 1 "$n"); do echo 'command = ["/bin/sleep", "1000000"]' > "$T/svc/s$i.toml"; done
	for round in $(seq 1 "$ROUNDS"); do
		for cache in warm cold; do
			[ $cache = cold ] && dd if="$INIT" iflag=nocache count=0 status=none
			unshare --pid --fork --mount-proc --kill-child "$INIT" --socket "$T/sock" --config "$T/svc" \
				> /dev/null 2>&1 &
			U=$!
			P=
			for _ in $(seq 1 200); do
				P=$(pgrep -P "$U" | head -1) || true
				[ -n "$P" ] && [ "$(pgrep -c -P "$P")" -ge "$n" ] && break
				sleep 0.05
			done
			sleep 1
			st=/proc/$P/status
			res=$(awk -v f="$INIT" '/^[0-9a-f]+-/ { cur = ($6 == f) } cur && /^Rss:/ { s += $2 } END { print s / 4 }' "/proc/$P/smaps")
			echo "| $n | $cache | $(awk '/^VmRSS/ {print $2}' $st) | $(awk '/^RssAnon/ {print $2}' $st) | $(awk '/^RssFile/ {print $2}' $st) | $res of $(($(stat -c %s "$INIT") / 4096 + 1)) |"
			kill "$P"
			wait "$U" 2> /dev/null || true
			P=
		done
	done
done

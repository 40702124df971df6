#!/usr/bin/env bash
# bench/core.sh: the figures of issue 4 (supervisor core) for docs/benchmarks.md, in one run: builds
# the shipped binary (scripts/dist.sh: target/dist/init) and runs bench/peers.sh on it beside the
# single-child inits that are installed
# (tini, tini-static, dumb-init, catatonit), with a 60 s idle window. Slow peers (Horust, zinit:
# cargo builds of many minutes) are left out unless --with-slow is given.
#   usage (from the repo root, as root):  bench/core.sh [--with-slow] [--install] [peers.sh options]
#     --install     let peers.sh apt-get what is missing (default: --no-install, measure what is there)
#     --with-slow   build and measure Horust and zinit too (cargo install, 10+ minutes the first time)
#   env: as peers.sh (REPS 5, IDLE_S 60 here, ORPHANS 5000, BENCH_OUT target/bench-core.md, ...);
#        ANKH_INIT to measure a given binary instead of building one (e.g. the plain release build).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
cd "$REPO"
mode=(--no-install) rest=()
for a in "$@"; do
	case $a in
	--install) mode=(--skip-slow) ;;
	--with-slow) mode=() ;;
	*) rest+=("$a") ;;
	esac
done
if [ -z "${ANKH_INIT:-}" ]; then
	bash scripts/dist.sh >&2
	ANKH_INIT=${CARGO_TARGET_DIR:-$REPO/target}/dist/init
fi
export ANKH_INIT IDLE_S=${IDLE_S:-60} BENCH_OUT=${BENCH_OUT:-${CARGO_TARGET_DIR:-$REPO/target}/bench-core.md}
echo "core.sh: ANKH_INIT=$ANKH_INIT IDLE_S=$IDLE_S bench/peers.sh ${mode[*]} ${rest[*]}" >&2
exec "$HERE/peers.sh" "${mode[@]}" "${rest[@]}"

#!/usr/bin/env bash
# bench/peers.sh: ankh and its peers side by side, in one run (the machine is noisy: compare ratios
# taken in the same run). Installs the peers into $BENCH_CACHE (idempotent), measures binary size,
# idle RSS (1/10/100 services), idle wake-ups, start and shutdown of 100 services, orphan reaping;
# prints a markdown table per figure and writes them to $BENCH_OUT (default ./bench-peers.md).
#   usage (from the repo root, after `cargo build --release`):
#     ANKH_INIT=target/x86_64-unknown-linux-musl/release/init bench/peers.sh [--quick] [--skip-slow]
#     bench/peers.sh [--skip-slow] [--no-install] [--install-only] [--quick] [--peers "horust nitro ..."]
#     --skip-slow   build nothing slow (cargo installs, dinit); peers not yet built are skipped
#     --no-install  no apt-get either: measure only what is already there (sh, ankh, built peers)
#     --quick       REPS=1 IDLE_S=3 ORPHANS=1000: a smoke run of a minute or two
#   env: ANKH_INIT=path/to/init (the ankh slot, skipped when unset), BENCH_CACHE (/var/tmp/ankh-bench),
#        REPS (5), IDLE_S (10), ORPHANS (5000), STOP_S (20), ORPHAN_S (10),
#        BENCH_OUT (the report; default target/bench-peers.md). See bench/README.md.
# Root only (unshare --pid). Every measurement is a fresh PID namespace whose PID 1 is nsbench
# (nsbench.c), run under `timeout -s KILL` with --kill-child, so nothing outlives a run.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
CACHE=${BENCH_CACHE:-/var/tmp/ankh-bench}
OUT=$(realpath -m "${BENCH_OUT:-$REPO/target/bench-peers.md}")
# every run cds into its own scratch dir: a relative ANKH_INIT must be made absolute first
[ -n "${ANKH_INIT:-}" ] && ANKH_INIT=$(realpath -m "$ANKH_INIT")
REPS=${REPS:-5} IDLE_S=${IDLE_S:-10} ORPHANS=${ORPHANS:-5000} STOP_S=${STOP_S:-20} ORPHAN_S=${ORPHAN_S:-10}
SKIP_SLOW=0 INSTALL_ONLY=0 NO_INSTALL=0 ONLY=""
while [ $# -gt 0 ]; do
	case $1 in
	--skip-slow) SKIP_SLOW=1 ;;
	--install-only) INSTALL_ONLY=1 ;;
	--no-install) NO_INSTALL=1 SKIP_SLOW=1 ;;
	--quick) REPS=1 IDLE_S=3 ORPHANS=1000 ;;
	--peers) ONLY=" $2 " && shift ;;
	-h | --help) sed -n '2,17p' "$0" && exit 0 ;;
	*) echo "peers.sh: unknown argument: $1" >&2 && exit 2 ;;
	esac
	shift
done
log() { printf 'peers.sh: %s\n' "$*" >&2; }
[ "$(id -u)" = 0 ] || { log "needs root (unshare --pid)"; exit 2; }
BIN=$CACHE/bin && mkdir -p "$BIN"
T0=$SECONDS

# ---------------------------------------------------------------- install (idempotent)
need=()
for p in tini dumb-init catatonit musl-tools protobuf-compiler binutils; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ] && [ $NO_INSTALL = 1 ]; then
	log "not installing ${need[*]} (--no-install): peers that need them are skipped"
elif [ ${#need[@]} -gt 0 ]; then
	log "apt-get install ${need[*]}"
	{ timeout 300 apt-get update -q && DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -q \
		--no-install-recommends "${need[@]}"; } \
		> "$CACHE/apt.log" 2>&1 || log "apt-get failed: see $CACHE/apt.log"
fi
NSB=$BIN/nsbench
if [ ! -x "$NSB" ] || [ "$HERE/nsbench.c" -nt "$NSB" ]; then
	{ musl-gcc -O2 -static -o "$NSB" "$HERE/nsbench.c" || gcc -O2 -static -o "$NSB" "$HERE/nsbench.c"; } \
		2> "$CACHE/nsbench.log" || { log "cannot build nsbench: see $CACHE/nsbench.log"; exit 1; }
fi
cargo_peer() { # CRATE VERSION: cargo install into $CACHE/cargo unless that version is there
	cargo install --list --root "$CACHE/cargo" 2>/dev/null | grep -q "^$1 v$2:" && return 0
	[ $SKIP_SLOW = 1 ] && { log "$1 not built (--skip-slow)"; return 0; }
	log "cargo install $1 $2 (a few minutes)"
	timeout 1800 cargo install --locked --root "$CACHE/cargo" --version "$2" "$1" > "$CACHE/build-$1.log" 2>&1 ||
		log "cargo install $1 failed: see $CACHE/build-$1.log"
}
cargo_peer horust 0.1.14
cargo_peer zinit 0.3.9 # zinit-pid1 needs feature pid1, which does not compile in 0.3.9: server only
if [ -x "$HERE/fetched-peers.sh" ]; then # nitro, dinit: from fetched source, never committed
	fa=() && [ $SKIP_SLOW = 1 ] && fa=(--skip-slow)
	BENCH_CACHE=$CACHE "$HERE/fetched-peers.sh" "${fa[@]}"
fi
declare -A B=([tini]=/usr/bin/tini [tini-static]=/usr/bin/tini-static [dumb-init]=/usr/bin/dumb-init
	[catatonit]=/usr/bin/catatonit [horust]=$CACHE/cargo/bin/horust [zinit]=$CACHE/cargo/bin/zinit-server
	[nitro]=$BIN/nitro [dinit]=$BIN/dinit [ankh]=${ANKH_INIT:-})
B[zinit-term]=${B[zinit]}
have() { [ -n "${B[$1]:-}" ] && [ -x "${B[$1]}" ] && { [ -z "$ONLY" ] || [[ $ONLY == *" ${1%-*} "* || $ONLY == *" $1 "* ]]; }; }
[ $INSTALL_ONLY = 1 ] && { log "installed into $CACHE"; exit 0; }

# ---------------------------------------------------------------- running one namespace
WORK=$(mktemp -d /tmp/ankh-bench.XXXXXX) RES=$WORK/res CUR=""
mkdir -p "$RES"
cleanup() { # the running `timeout`, its unshare (whose death SIGKILLs the namespace), then files
	if [ -n "$CUR" ]; then
		for c in $(cat /proc/"$CUR"/task/*/children 2>/dev/null); do kill -KILL "$c" 2>/dev/null; done
		kill -KILL "$CUR" 2>/dev/null
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ns() { # DIR BUDGET_S OUTFILE CMD...: CMD as PID 1 of a new PID namespace, in DIR, SIGKILLed at BUDGET_S
	local d=$1 b=$2 out=$3 rc
	shift 3
	(cd "$d" && export NSB_LOG=$d/log && exec timeout -s KILL "$b" unshare --pid --fork --mount-proc --kill-child=SIGKILL "$@") \
		< /dev/null > "$out" 2>> "$d/log" &
	CUR=$!
	wait "$CUR"
	rc=$? CUR=""
	return $rc
}
kv() { sed -n "s/^$2=//p" "$1" 2>/dev/null | head -1; }
quote() { # ARGS: one shell-readable line
	local a o=""
	for a; do if [[ $a =~ ^[A-Za-z0-9_./=:@%+,-]+$ ]]; then o+="$a "; else o+="'${a//\'/\'\\\'\'}' "; fi; done
	printf '%s' "${o% }"
}
generic() { sed -e "s|$WORK/[^/ ]*|\$W|g" -e "s|$CACHE|\$BENCH_CACHE|g" ${ANKH_INIT:+-e "s|$ANKH_INIT|\$ANKH_INIT|g"}; }
declare -A CMDLINE FAILED

setup() { # PEER N DIR: write N trivial services in PEER's own format; set CMD and STOP
	local p=$1 n=$2 d=$3 i
	mkdir -p "$d/svc"
	STOP=term
	case $p in
	shell)
		CMD=(/bin/sh -c "i=0; while [ \$i -lt $n ]; do /bin/sleep 1000000 & i=\$((i+1)); done; wait") STOP=all ;;
	horust)
		mkdir -p "$d/uds"
		for ((i = 1; i <= n; i++)); do echo 'command = "/bin/sleep 1000000"' > "$d/svc/s$i.toml"; done
		CMD=("${B[horust]}" --services-path "$d/svc" --uds-folder-path "$d/uds") ;;
	zinit | zinit-term) # the CLI finds the server's socket only through $HOME
		mkdir -p "$d/hero/var"
		for ((i = 1; i <= n; i++)); do
			printf '[service]\nname = "s%d"\nexec = "/bin/sleep 1000000"\n' $i > "$d/svc/s$i.toml"
		done
		CMD=(env HOME="$d" "${B[zinit]}" -c "$d/svc" -s "$d/hero/var/zinit.sock")
		[ $p = zinit ] && STOP="HOME=$d exec ${B[zinit]%-server} shutdown" ;;
	nitro)
		for ((i = 1; i <= n; i++)); do
			mkdir -p "$d/svc/s$i" && printf '#!/bin/sh\nexec /bin/sleep 1000000\n' > "$d/svc/s$i/run"
			chmod +x "$d/svc/s$i/run"
		done
		CMD=(env NITRO_SOCK="$d/nitro.sock" "${B[nitro]}" "$d/svc") ;;
	dinit)
		for ((i = 1; i <= n; i++)); do printf 'type = process\ncommand = /bin/sleep 1000000\n' > "$d/svc/s$i"; done
		{ echo 'type = internal' && for ((i = 1; i <= n; i++)); do echo "waits-for = s$i"; done; } > "$d/svc/boot"
		CMD=("${B[dinit]}" -u -q -d "$d/svc" -p "$d/dinit.sock") ;;
	ankh)
		for ((i = 1; i <= n; i++)); do echo 'command = ["/bin/sleep", "1000000"]' > "$d/svc/s$i.toml"; done
		CMD=("${B[ankh]}" --socket "$d/init.sock" --config "$d/svc") ;;
	esac
}
sup() { # PEER N SETTLE_MS IDLE_S STOP(0/1) REP
	local p=$1 n=$2 settle=$3 idle=$4 rep=$6 d=$WORK/$1-$2-$6 stop_s=$STOP_S out=$RES/$1.$2.$6
	[ "${FAILED[$p.$n]:-}" ] && return
	setup "$p" "$n" "$d"
	[ "$5" = 1 ] || STOP=none
	[ $p = zinit-term ] && stop_s=5
	local c=("$NSB" sup "$n" "$settle" "$idle" "$stop_s" "$STOP" -- "${CMD[@]}")
	ns "$d" $((45 + settle / 1000 + idle + stop_s)) "$out" "${c[@]}" || log "$p: nsbench exited $?"
	[ "$n" = 100 ] && [ "$rep" = 1 ] && CMDLINE[$p]=$(quote "${c[@]}" | generic)
	if grep -q '=fail' "$out" 2> /dev/null || [ ! -s "$out" ]; then # no more repetitions of a failure
		FAILED[$p.$n]=1 && log "$p N=$n: $(tr '\n' ' ' < "$out" 2> /dev/null)"
		cp "$d/log" "$RES/log.$p.$n" 2> /dev/null
	fi
	rm -rf "$d"
}
orph() { # INIT REP MODE: ORPHANS orphans to reap (MODE storm or batch, see nsbench.c) under INIT as PID 1
	local p=$1 m=$3 d=$WORK/orph-$1 c
	[ "${FAILED[$m.$p]:-}" ] && return
	mkdir -p "$d"
	case $p in
	floor) c=() ;;
	dumb-init) c=("${B[$p]}") ;;
	horust) c=("${B[$p]}" --uds-folder-path "$d" --) ;;
	*) c=("${B[$p]}" --) ;;
	esac
	c+=("$NSB" orphans "$ORPHANS" "$ORPHAN_S" "$m")
	ns "$d" $((ORPHAN_S + 40)) "$RES/$m.$p.$2" "${c[@]}"
	[ "$2" = 1 ] && CMDLINE[$m.$p]=$(quote "${c[@]}" | generic)
	grep -q 'reap_ms=[0-9]' "$RES/$m.$p.$2" 2> /dev/null || FAILED[$m.$p]=1
	rm -rf "$d"
}

# ---------------------------------------------------------------- the runs, peers interleaved
SUPS=(shell) INITS=(floor)
for p in horust zinit nitro dinit ankh; do have $p && SUPS+=("$p"); done
for p in tini tini-static dumb-init catatonit horust ankh; do have $p && INITS+=("$p"); done
log "supervisors: ${SUPS[*]}; single-child inits: ${INITS[*]}; $REPS repetitions"
for n in 1 10; do for p in "${SUPS[@]:1}"; do sup $p $n 1000 0 0 1; done; done
for ((r = 1; r <= REPS; r++)); do
	log "round $r/$REPS ($((SECONDS - T0)) s)"
	for p in "${SUPS[@]}"; do
		if [ $r = 1 ]; then sup $p 100 2500 "$IDLE_S" 1 1; else sup $p 100 500 0 1 $r; fi
	done
	[ $r = 1 ] && have zinit && sup zinit-term 100 500 0 1 1
	for p in "${INITS[@]}"; do orph $p $r storm; orph $p $r batch; done
done

# ---------------------------------------------------------------- tables
num() { grep -E '^[0-9.]+$' | sort -g; }
med() { num | awk '{v[NR] = $1} END {if (NR) printf "%.1f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
rng() { num | awk 'NR == 1 {a = $1} {b = $1} END {if (NR > 1) printf "%.0f–%.0f", a, b}'; }
vals() { for f in "$RES/$1".*; do kv "$f" "$2"; done 2> /dev/null; } # PREFIX KEY: one value per repetition
ms() { awk -v v="$1" 'BEGIN {if (v == "") print "✘"; else if (v < 10) printf "%.1f", v; else printf "%.0f", v}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a == "" || b == "" || b == 0) print "–"; else printf "%.1f×", a / b}'; }
name() { case $1 in shell) echo "sh (baseline)" ;; floor) echo "nsbench reaps them itself (reference)" ;; zinit) echo zinit-server ;; zinit-term) echo "zinit-server (SIGTERM)" ;; *) echo "$1" ;; esac; }
version() {
	case $1 in
	tini | tini-static | dumb-init | catatonit) echo "$(dpkg-query -W -f='${Version}' "${1%-static}" 2>/dev/null) (Debian)" ;;
	horust | zinit) cargo install --list --root "$CACHE/cargo" | sed -n "s/^$1 \(v[^:]*\):/\1 (crates.io)/p" ;;
	nitro) echo "$(cat "$BIN/nitro.version") (git, make tiny, musl-gcc)" ;;
	dinit) echo "$(cat "$BIN/dinit.version") = $("${B[dinit]}" --version | head -1) (git, g++ -Os -flto)" ;;
	ankh) # as PID 1 of its own namespace, in case it takes itself for a system init
		timeout -s KILL 5 unshare --pid --fork --mount-proc --kill-child=SIGKILL "${B[ankh]}" --version 2>&1 < /dev/null | head -1 ;;
	esac
}
why() {
	case $1 in
	ankh) echo "ANKH_INIT unset or not executable" ;;
	horust | zinit) [ -n "$ONLY" ] && echo "not in --peers" || echo "not built: --skip-slow, or see \$BENCH_CACHE/build-$1.log" ;;
	*) [ -n "$ONLY" ] && echo "not in --peers" || echo "not built here: build it from its source to include it" ;;
	esac
}
note() { local v; v=$(for f in "$RES/$1".*; do kv "$f" "$2"; done 2> /dev/null | head -1); echo "${v:-}"; }
tables() {
	echo "### Binary size"
	echo && echo "| peer | version | linkage | stripped bytes | file bytes |" && echo "|---|---|---|---:|---:|"
	for p in tini tini-static dumb-init catatonit horust zinit nitro dinit ankh; do
		have $p || continue
		local f=${B[$p]} link libs
		strip -s -o "$WORK/stripped" "$f" 2>/dev/null || cp "$f" "$WORK/stripped"
		libs=$(readelf -dW "$f" 2>/dev/null | sed -n 's/.*Shared library: \[\([^].]*\).*/\1/p' | tr '\n' ' ')
		link=static && [ -n "$libs" ] && link="dynamic: ${libs% }"
		readelf -h "$f" > /dev/null 2>&1 || link="not ELF"
		echo "| $(name $p) | $(version $p) | $link | $(stat -c %s "$WORK/stripped") | $(stat -c %s "$f") |"
	done
	echo && echo "### Idle RSS of the supervisor (VmRSS, kB)"
	echo && echo "| peer | 1 service | 10 services | 100 services | RssAnon at 100 | threads | processes for 100 services |"
	echo "|---|---:|---:|---:|---:|---:|---:|"
	for p in "${SUPS[@]:1}"; do
		echo "| $(name $p) | $(kv $RES/$p.1.1 rss_kb) | $(kv $RES/$p.10.1 rss_kb) | $(kv $RES/$p.100.1 rss_kb) | $(kv $RES/$p.100.1 rss_anon_kb) | $(kv $RES/$p.100.1 threads) | $(kv $RES/$p.100.1 procs) |"
	done
	echo && echo "### Idle wake-ups, 100 services, no health checks (context switches of all threads in ${IDLE_S} s)"
	echo && echo "| peer | wake-ups in ${IDLE_S} s | per second | CPU ticks (10 ms) |" && echo "|---|---:|---:|---:|"
	for p in "${SUPS[@]:1}"; do
		local w; w=$(kv $RES/$p.100.1 wakeups)
		echo "| $(name $p) | ${w:-✘} | $(awk -v w="$w" -v s="$IDLE_S" 'BEGIN {if (w == "") print "–"; else printf "%.1f", w / s}') | $(kv $RES/$p.100.1 cpu_ticks) |"
	done
	local base; base=$(vals shell.100 start_ms | med)
	echo && echo "### Start 100 services until 100 \`sleep\` processes run (ms, median of $REPS; from fork of the supervisor)"
	echo && echo "| peer | median | min–max | × sh baseline |" && echo "|---|---:|---:|---:|"
	for p in "${SUPS[@]}"; do
		local m; m=$(vals $p.100 start_ms | med)
		echo "| $(name $p) | $(ms "$m") | $(vals $p.100 start_ms | rng) | $(ratio "$m" "$base") |"
	done
	base=$(vals shell.100 stop_ms | med)
	echo && echo "### Shutdown with 100 services (ms from the stop request until the supervisor exited and no service is left)"
	echo && echo "| peer | stopped by | supervisor exited | all gone: median | min–max | × floor | note |"
	echo "|---|---|---:|---:|---:|---:|---|"
	for p in "${SUPS[@]}" $(have zinit && echo zinit-term); do
		local m by=SIGTERM; m=$(vals $p.100 stop_ms | med)
		case $p in shell) by="SIGTERM to every process" ;; zinit) by="\`zinit shutdown\`" ;; esac
		echo "| $(name $p) | $by | $(ms "$(vals $p.100 exit_ms | med)") | $(ms "$m") | $(vals $p.100 stop_ms | rng) | $(ratio "$m" "$base") | $(note $p.100 stop_note)$(note $p.100 start_note) |"
	done
	echo && echo "### Orphan reaping as PID 1, $ORPHANS orphans (ms until all are reaped, median of $REPS)"
	echo && echo "Storm: $ORPHANS orphans exit at once. Batch: their one parent exits, handing PID 1 $ORPHANS zombies at once."
	echo && echo "| init | storm: median | min–max | batch: median | min–max | batch: orphans/s | × reference (batch) | note |"
	echo "|---|---:|---:|---:|---:|---:|---:|---|"
	base=$(vals batch.floor reap_ms | med)
	for p in "${INITS[@]}"; do
		local m n="" k l
		m=$(vals batch.$p reap_ms | med)
		for k in storm batch; do l=$(note $k.$p left) && [ "${l:-0}" != 0 ] && n+="$k: $l left after ${ORPHAN_S} s ($(note $k.$p per_s)/s); "; done
		n=${n%; }
		echo "| $(name $p) | $(ms "$(vals storm.$p reap_ms | med)") | $(vals storm.$p reap_ms | rng) | $(ms "$m") | $(vals batch.$p reap_ms | rng) | $(vals batch.$p per_s | med | cut -d. -f1) | $(ratio "$m" "$base") | $n |"
	done
}
tables > "$WORK/tables.md"
cat "$WORK/tables.md"
{
	echo "# Peers side by side ($(date -u +%Y-%m-%d), bench/peers.sh)"
	echo
	echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), kernel $(uname -r), $(. /etc/os-release && echo "$PRETTY_NAME")."
	echo "One run, peers interleaved in each round; $REPS rounds for the timings; whole run $((SECONDS - T0)) s."
	echo "Services are coreutils \`/bin/sleep 1000000\` ($(/bin/sleep --version | head -1)); each measurement is a fresh"
	echo "\`unshare --pid --fork --mount-proc\` namespace whose PID 1 is \`nsbench\` (bench/nsbench.c), so /proc shows"
	echo "only that run. The supervisor is PID 2 there (not PID 1), so a supervisor that exits without"
	echo "stopping its services leaves them running and is reported so. ankh: $([ -n "${ANKH_INIT:-}" ] && echo measured || echo "not measured (ANKH_INIT unset)")."
	echo
	cat "$WORK/tables.md"
	echo
	echo "### How each figure is taken"
	echo
	echo "- Size: \`strip -s\` of a copy; linkage from \`readelf -d\`. RSS: VmRSS/RssAnon/Threads from /proc/PID/status of the"
	echo "  supervisor 1 s (N = 1, 10) or 2.5 s (N = 100) after the last service appeared."
	echo "- Wake-ups: voluntary + nonvoluntary context switches summed over /proc/PID/task/*/status, over ${IDLE_S} s"
	echo "  right after that; CPU ticks: utime + stime from /proc/PID/stat over the same window."
	echo "- Start: from nsbench's fork of the supervisor until /proc shows 100 live processes named \`sleep\` (1 ms polls)."
	echo "- Shutdown: from the stop request until the supervisor is reaped and no other process is left (1 ms polls);"
	echo "  the floor is nsbench sending SIGTERM to all 100 \`sleep\`s of the sh baseline itself."
	echo "- Orphans: the init's child (nsbench) makes $ORPHANS orphans, all blocked on one pipe (storm: each its own"
	echo "  process whose parent already exited; batch: zombies of one parent that blocks), starts the clock, closes"
	echo "  the pipe, and polls \`kill(pid, 0)\` until every one is reaped (ESRCH). Storm includes the kernel's cost"
	echo "  of $ORPHANS exits; batch is the reaping loop alone. The reference row is nsbench as PID 1 reaping them itself."
	echo
	echo "### Exact commands (\$BENCH_CACHE: the install cache; \$W: a scratch dir under /tmp)"
	echo
	echo "Each one runs as \`timeout -s KILL T unshare --pid --fork --mount-proc --kill-child=SIGKILL <command>\`:"
	echo
	keys=("${SUPS[@]}" zinit-term)
	for p in "${INITS[@]}"; do keys+=("storm.$p" "batch.$p"); done
	for k in "${keys[@]}"; do
		[ -n "${CMDLINE[$k]:-}" ] && echo "- $k: \`${CMDLINE[$k]}\`"
	done
	echo
	echo "### Service files (N of them, s1 … sN)"
	echo
	echo "- horust: \`svc/sI.toml\`: \`command = \"/bin/sleep 1000000\"\`"
	echo "- zinit 0.3.x: \`svc/sI.toml\`: \`[service]\` \`name = \"sI\"\` \`exec = \"/bin/sleep 1000000\"\` (zinit runs it under \`/bin/sh -c\`)"
	echo "- nitro: \`svc/sI/run\`, mode 755: \`#!/bin/sh\` \`exec /bin/sleep 1000000\`"
	echo "- dinit: \`svc/sI\`: \`type = process\` \`command = /bin/sleep 1000000\`; \`svc/boot\`: \`type = internal\` and one \`waits-for = sI\` per service"
	echo "- ankh (native format): \`svc/sI.toml\`: \`command = [\"/bin/sleep\", \"1000000\"]\`"
	echo
	echo "Not measured: zinit-pid1 (its feature \`pid1\` does not compile in zinit 0.3.9, so zinit is measured as"
	echo "\`zinit-server\` alone)$(for p in horust zinit nitro dinit ankh; do have $p || printf '; %s (%s)' "$p" "$(why $p)"; done)."
} > "$WORK/report.md"
mkdir -p "$(dirname "$OUT")" && cp "$WORK/report.md" "$OUT" && log "wrote $OUT in $((SECONDS - T0)) s"

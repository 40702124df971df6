#!/usr/bin/env bash
# scripts/dist.sh: the binary we ship, target/dist/init: static musl, and std rebuilt with
# `panic=immediate-abort` so that std's panic and backtrace machinery (about 340 KB that init
# never uses: it is built not to panic) is left out. That needs `-Zbuild-std`, which we enable on
# the stable toolchain with RUSTC_BOOTSTRAP=1 and the rust-src component (docs/design.md, "Size").
# std is also built with its `optimize_for_size` feature (small O(n log n) sorts instead of one
# driftsort/quicksort per element type), and linked by the toolchain's own rust-lld with identical
# code folding, LLVM's machine outliner and no inlining beyond what is free: all code-size choices,
# none changes what the program does.
#
# The code layout (docs/design.md, "Code layout"): rust-lld places the functions listed in
# scripts/hot-functions.txt (made by scripts/layout-profile.sh) first in `.text`, in that order, so
# the code a running supervisor never touches is never mapped. Symbol names are only known after a
# build, so the binary is linked twice: the second link (only the `init` crate is rebuilt, seconds)
# uses the order file made from the first one's symbols. Without `nm -C`: the linker's own order
# (same behaviour, more pages mapped).
#
# Each step falls back to the one before when the toolchain refuses it: without rust-lld, the
# rebuilt std with the system linker; without rust-src (or a toolchain that renamed a flag), the
# plain `cargo build --release` binary, and says so: bigger, same behaviour.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${CARGO_TARGET_DIR:-$PWD/target}
BUILD="$OUT/dist-build"
BIN="$BUILD/x86_64-unknown-linux-musl/release/init"
ORDER="$BUILD/symbol-order.txt"
mkdir -p "$OUT/dist" "$BUILD"
[ -f "$ORDER" ] || : > "$ORDER"
BASE="-C target-feature=+crt-static -C relocation-model=static -C force-unwind-tables=no -Zlocation-detail=none -Zunstable-options -Cpanic=immediate-abort -Cllvm-args=-inline-threshold=0 -Cllvm-args=-enable-machine-outliner=always"
LLD="-Clinker-features=+lld -Clink-self-contained=+linker -Clink-arg=-Wl,--icf=all"
LLD="$LLD -Clink-arg=-Wl,--symbol-ordering-file=$ORDER -Clink-arg=-Wl,--no-warn-symbol-ordering"
LLD="$LLD -Clink-arg=-Wl,-T,$PWD/scripts/init-first.ld"
small() { # RUSTFLAGS CARGO-ARGS...
	local flags=$1
	shift
	RUSTC_BOOTSTRAP=1 RUSTFLAGS="$flags" CARGO_TARGET_DIR="$BUILD" CARGO_PROFILE_RELEASE_STRIP=false \
		cargo build --release --locked -Zbuild-std=std,panic_abort -Zbuild-std-features=optimize_for_size "$@"
}
# $BIN's symbol table, one `symbol<TAB>demangled name` per line.
symbols() {
	paste -d '\t' <(nm --defined-only "$BIN" | cut -d' ' -f3-) <(nm -C --defined-only "$BIN" | cut -d' ' -f3-)
}
# The order file from that table: LLVM's outlined sequences (OUTLINED_FUNCTION_n, numbered anew by
# each build, 8.5 KB in all, called from everywhere), then every symbol whose demangled name is
# listed, in the list's order.
order() {
	awk -F '\t' 'NR == FNR { hot[$0] = NR; next } /^OUTLINED_FUNCTION_/ { print 0 "\t" $1 }
		($2 in hot) { print hot[$2] "\t" $1 }' scripts/hot-functions.txt "$BUILD/symbols.tsv" | sort -n -s -k1,1 | cut -f2
}
# Copies a binary into place by rename, so that a copy still running (a test, a benchmark) does not
# make the copy fail with ETXTBSY.
install_as() {
	cp "$1" "$2.new"
	mv -f "$2.new" "$2"
}
# Keeps the unstripped binary (for scripts/layout-profile.sh) and ships a stripped copy.
ship() {
	local objcopy
	objcopy="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/rust-objcopy"
	install_as "$BIN" "$OUT/dist/init.unstripped"
	strip -s -o "$BUILD/init.stripped" "$BIN" 2> /dev/null || "$objcopy" --strip-all "$BIN" "$BUILD/init.stripped"
	install_as "$BUILD/init.stripped" "$OUT/dist/init"
}
rustup component add rust-src > /dev/null 2>&1 || true
if small "$BASE $LLD" "$@"; then
	symbols > "$BUILD/symbols.tsv" 2> /dev/null || : > "$BUILD/symbols.tsv"
	if order > "$ORDER.new" && [ -s "$ORDER.new" ] && ! cmp -s "$ORDER.new" "$ORDER"; then
		mv "$ORDER.new" "$ORDER"
		touch src/main.rs # relink with the new order (the symbols stay the same)
		small "$BASE $LLD" "$@"
	fi
	rm -f "$ORDER.new"
	listed=$(wc -l < scripts/hot-functions.txt)
	found=$(cut -f2 "$BUILD/symbols.tsv" | sort -u |
		awk 'NR == FNR { hot[$0] = 1; next } ($0 in hot) { n++ } END { print n + 0 }' scripts/hot-functions.txt -)
	echo "dist.sh: code layout: $(wc -l < "$ORDER") symbols placed first; $found of $listed listed functions found"
	if [ $((found * 10)) -lt $((listed * 9)) ]; then
		echo "dist.sh: warning: the layout list is stale (idle RSS grows): run scripts/layout-profile.sh" >&2
	fi
	ship
elif echo "dist.sh: linking with rust-lld failed; trying the system linker" >&2 && small "$BASE" "$@"; then
	ship
else
	echo "dist.sh: the rebuilt-std build failed; shipping the plain release build instead" >&2
	cargo build --release --locked "$@"
	install_as "$OUT/x86_64-unknown-linux-musl/release/init" "$OUT/dist/init"
fi
echo "dist.sh: $OUT/dist/init ($(stat -c %s "$OUT/dist/init") bytes)"
# Every build is the static musl binary the product ships: `cargo build --release` gives
# target/x86_64-unknown-linux-musl/release/init, and the tests run that same kind of binary.
# (`rustup target add x86_64-unknown-linux-musl` once; `.ci/run` does it.)

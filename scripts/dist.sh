#!/usr/bin/env bash
# scripts/dist.sh: the binary we ship, target/dist/init: static musl, and std rebuilt with
# `panic=immediate-abort` so that std's panic and backtrace machinery (about 340 KB that init
# never uses: it is built not to panic) is left out. That needs `-Zbuild-std`, which we enable on
# the stable toolchain with RUSTC_BOOTSTRAP=1 and the rust-src component (docs/design.md, "Size").
# std is also built with its `optimize_for_size` feature (small O(n log n) sorts instead of one
# driftsort/quicksort per element type), and linked by the toolchain's own rust-lld with identical
# code folding, LLVM's machine outliner and no inlining beyond what is free: all code-size choices,
# none changes what the program does.
# Each step falls back to the one before when the toolchain refuses it: without rust-lld, the
# rebuilt std with the system linker; without rust-src (or a toolchain that renamed a flag), the
# plain `cargo build --release` binary, and says so: bigger, same behaviour.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${CARGO_TARGET_DIR:-$PWD/target}
mkdir -p "$OUT/dist"
BASE="-C target-feature=+crt-static -C relocation-model=static -C force-unwind-tables=no -Zlocation-detail=none -Zunstable-options -Cpanic=immediate-abort -Cllvm-args=-inline-threshold=0 -Cllvm-args=-enable-machine-outliner=always"
LLD="-Clinker-features=+lld -Clink-self-contained=+linker -Clink-arg=-Wl,--icf=all"
small() { # RUSTFLAGS CARGO-ARGS...
	local flags=$1
	shift
	RUSTC_BOOTSTRAP=1 RUSTFLAGS="$flags" CARGO_TARGET_DIR="$OUT/dist-build" \
		cargo build --release --locked -Zbuild-std=std,panic_abort -Zbuild-std-features=optimize_for_size "$@"
}
rustup component add rust-src > /dev/null 2>&1 || true
if small "$BASE $LLD" "$@"; then
	cp "$OUT/dist-build/x86_64-unknown-linux-musl/release/init" "$OUT/dist/init"
elif echo "dist.sh: linking with rust-lld failed; trying the system linker" >&2 && small "$BASE" "$@"; then
	cp "$OUT/dist-build/x86_64-unknown-linux-musl/release/init" "$OUT/dist/init"
else
	echo "dist.sh: the rebuilt-std build failed; shipping the plain release build instead" >&2
	cargo build --release --locked "$@"
	cp "$OUT/x86_64-unknown-linux-musl/release/init" "$OUT/dist/init"
fi
echo "dist.sh: $OUT/dist/init ($(stat -c %s "$OUT/dist/init") bytes)"

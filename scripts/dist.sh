#!/usr/bin/env bash
# scripts/dist.sh: the binary we ship, target/dist/init: static musl, and std rebuilt with
# `panic=immediate-abort` so that std's panic and backtrace machinery (about 340 KB that init
# never uses: it is built not to panic) is left out. That needs `-Zbuild-std`, which we enable on
# the stable toolchain with RUSTC_BOOTSTRAP=1 and the rust-src component (docs/design.md, "Size").
# When that build is impossible (no rust-src, a toolchain that renamed the flag), it falls back to
# the plain `cargo build --release` binary and says so: bigger, same behaviour.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${CARGO_TARGET_DIR:-$PWD/target}
mkdir -p "$OUT/dist"
small() {
	rustup component add rust-src > /dev/null 2>&1 || true
	RUSTC_BOOTSTRAP=1 \
		RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static -C force-unwind-tables=no -Zlocation-detail=none -Zunstable-options -Cpanic=immediate-abort" \
		CARGO_TARGET_DIR="$OUT/dist-build" \
		cargo build --release --locked -Zbuild-std=std,panic_abort "$@"
}
if small "$@"; then
	cp "$OUT/dist-build/x86_64-unknown-linux-musl/release/init" "$OUT/dist/init"
else
	echo "dist.sh: the rebuilt-std build failed; shipping the plain release build instead" >&2
	cargo build --release --locked "$@"
	cp "$OUT/x86_64-unknown-linux-musl/release/init" "$OUT/dist/init"
fi
echo "dist.sh: $OUT/dist/init ($(stat -c %s "$OUT/dist/init") bytes)"

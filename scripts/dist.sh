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
# The code layout (docs/design.md, "Code layout"): with rust-lld, the functions listed in
# scripts/hot-functions.txt (made by scripts/layout-profile.sh) are placed first in `.text`, so the
# code a running supervisor never touches stays unmapped. Symbol names are only known after a
# build, so the binary is linked twice: the second link (only the `init` crate is rebuilt) uses
# the order file made from the first one's symbols. Without rust-lld or `nm -C`: one link, the
# linker's own order (same behaviour, more pages mapped).
BUILD="$OUT/dist-build"
ORDER="$BUILD/symbol-order.txt"
BIN="$BUILD/x86_64-unknown-linux-musl/release/init"
host=$(rustc -vV | sed -n 's/^host: //p')
gccld="$(rustc --print sysroot)/lib/rustlib/$host/bin/gcc-ld"
small() {
	rustup component add rust-src > /dev/null 2>&1 || true
	local flags="-C target-feature=+crt-static -C relocation-model=static -C force-unwind-tables=no -Zlocation-detail=none -Zunstable-options -Cpanic=immediate-abort"
	if [ -x "$gccld/ld.lld" ]; then
		mkdir -p "$BUILD"
		[ -f "$ORDER" ] || : > "$ORDER"
		flags="$flags -Clink-arg=-fuse-ld=lld -Clink-arg=-B$gccld"
		flags="$flags -Clink-arg=-Wl,--symbol-ordering-file=$ORDER -Clink-arg=-Wl,--no-warn-symbol-ordering"
	fi
	RUSTC_BOOTSTRAP=1 RUSTFLAGS="$flags" CARGO_TARGET_DIR="$BUILD" CARGO_PROFILE_RELEASE_STRIP=false \
		cargo build --release --locked -Zbuild-std=std,panic_abort "$@"
}
# The order file for $BIN's symbols: every symbol whose demangled name is listed, in the list's order.
order() {
	paste -d '\t' <(nm --defined-only "$BIN" | cut -d' ' -f3-) <(nm -C --defined-only "$BIN" | cut -d' ' -f3-) |
		awk -F '\t' 'NR == FNR { hot[$0] = NR; next } ($2 in hot) { print hot[$2] "\t" $1 }' \
			scripts/hot-functions.txt - | sort -n -s -k1,1 | cut -f2
}
if small "$@"; then
	if [ -x "$gccld/ld.lld" ] && command -v nm > /dev/null && order > "$ORDER.new" 2> /dev/null &&
		[ -s "$ORDER.new" ] && ! cmp -s "$ORDER.new" "$ORDER"; then
		mv "$ORDER.new" "$ORDER"
		touch src/main.rs # relink with the new order: only the `init` crate is rebuilt
		small "$@"
	fi
	rm -f "$ORDER.new"
	cp "$BIN" "$OUT/dist/init.unstripped"
	strip -s -o "$BUILD/init.stripped" "$BIN" 2> /dev/null || "$gccld/../rust-objcopy" --strip-all "$BIN" "$BUILD/init.stripped"
	cp "$BUILD/init.stripped" "$OUT/dist/init"
else
	echo "dist.sh: the rebuilt-std build failed; shipping the plain release build instead" >&2
	cargo build --release --locked "$@"
	cp "$OUT/x86_64-unknown-linux-musl/release/init" "$OUT/dist/init"
fi
echo "dist.sh: $OUT/dist/init ($(stat -c %s "$OUT/dist/init") bytes)"

# bench/init-bin.sh, sourced by the bench scripts: sets INIT, the binary to measure: $INIT_BIN, else
# the shipped binary (scripts/dist.sh), else the plain release build; made absolute, or exits when
# there is none.
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
if [ -z "${INIT_BIN:-}" ]; then
    INIT_BIN="$TARGET/dist/init"
    [ -x "$INIT_BIN" ] || INIT_BIN="$TARGET/x86_64-unknown-linux-musl/release/init"
fi
[ -x "$INIT_BIN" ] || { echo "no init binary at $INIT_BIN (bash scripts/dist.sh, or set INIT_BIN)" >&2; exit 1; }
INIT="$(realpath "$INIT_BIN")"

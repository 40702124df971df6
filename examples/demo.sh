#!/bin/sh
# The README demo: a few services that show dependencies (migrate -> db -> web), a oneshot
# (migrate), a health check (web, an HTTP server on 127.0.0.1:18080), a crash-and-restart with
# backoff (flaky) and a steady logger (ticker). Press Ctrl+C: init stops them in reverse
# dependency order and exits.
#
#   usage: examples/demo.sh            (from anywhere; builds the release binary first)
#
# Needs a POSIX sh and busybox (for httpd) on the host. Runs as any user: the control socket goes
# to a temp file instead of /run/init.sock, so nothing needs /run.
set -eu
cd "$(dirname "$0")/.."
# A new machine may lack the musl target (the build is static) or busybox (for httpd).
command -v rustup > /dev/null && rustup target add x86_64-unknown-linux-musl > /dev/null 2>&1 || true
if ! command -v busybox > /dev/null && [ "$(id -u)" = 0 ]; then
	apt-get update -q > /dev/null && apt-get install -y -q --no-install-recommends busybox-static > /dev/null
fi
cargo build --release
bin=${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-musl/release/init
sock=${TMPDIR:-/tmp}/ankh-demo.$$.sock
"$bin" --check examples/demo
echo "demo: starting; in another terminal try:  $bin --socket $sock status"
echo "demo: press Ctrl+C to stop everything"
exec "$bin" --socket "$sock" --config examples/demo

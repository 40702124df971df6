#!/bin/sh
# CPU cost of the health-probe machinery alone: 100 services with 1 s HTTP checks against one
# loopback server, driven by an epoll loop like the reactor's (tests/health.rs,
# bench_100_http_checks_per_second). Prints the loop thread's CPU share, wake-ups, and the
# floor: the same HTTP exchange done with blocking sockets at the same pace.
# Usage: bench/health-probe-loop.sh [SECONDS]   (default 30)
set -eu
cd "$(dirname "$0")/.."
BENCH_SECS="${1:-30}" exec cargo test --release --test health bench_100_http_checks_per_second \
    -- --ignored --nocapture

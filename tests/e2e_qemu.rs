//! Level 3, boot: the static binary as the kernel's first process. An initramfs (a newc cpio
//! written by the test: /init, /bin/busybox + applet links, /etc/init, empty mount points) is
//! booted by `qemu-system-x86_64 -accel tcg -m 256` with Debian's cloud kernel
//! (`$INIT_E2E_KERNEL`, fetched by `.ci/run`), console on ttyS0 → the test's pipe.
//!
//! ONE boot (~3 s under TCG) checks everything a system PID 1 must do, through marker lines the
//! services print on the console:
//! - system mode is detected on its own (no flag): /proc, /sys, /dev (devtmpfs), /run are mounted
//!   by init before any service runs;
//! - dependency order: `second` (requires the oneshot `first`) starts after `first` finished;
//! - a restart: `flaky` fails on its first run and is restarted (`on-failure`);
//! - then `checks` asks for a power-off (`init poweroff` when the binary has that command, else
//!   SIGTERM to PID 1, which powers a system off): services are stopped (`flaky` says so), and
//!   the kernel prints `reboot: Power down` with no `Kernel panic` (init must never exit).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stderr)]

mod common;

use std::time::{Duration, Instant};

use common::{Rootfs, boot, boot_prereqs};

/// A guest script as a oneshot service (`sh -c`, so `$(...)` and `$!` reach the shell; `${` would
/// be init's templating and is avoided).
fn oneshot(script: &str, extra: &str) -> String {
    let script = script.replace('\\', "\\\\").replace('"', "\\\"");
    format!("command = [\"/bin/sh\", \"-c\", \"{script}\"]\noneshot = true\n{extra}")
}

#[test]
fn boots_mounts_orders_restarts_and_powers_off() {
    let Some(kernel) = boot_prereqs() else { return };
    // The guest asks for the power-off as users would: through the control socket.
    let poweroff = "/init poweroff";

    let rootfs = Rootfs::new();
    rootfs.file("etc/hostname", "ankh-e2e\n");
    rootfs.service("first", &oneshot("sleep 0.3; echo MARK-first-done", ""));
    rootfs.service("second", &oneshot("echo MARK-second-start", "requires = [\"first\"]\n"));
    // Fails on its first run, keeps running on its second; counts runs in /run (a tmpfs init mounted).
    rootfs.service(
        "flaky",
        "command = [\"/bin/sh\", \"-c\", \"n=$(cat /run/flaky-runs 2>/dev/null || echo 0); n=$((n+1)); \
         echo $n > /run/flaky-runs; echo MARK-flaky-run-$n; [ $n -ge 2 ] || exit 1; \
         trap 'echo MARK-flaky-stopping; exit 0' TERM; while :; do sleep 1 & wait $!; done\"]\n\
         [restart]\nstrategy = \"on-failure\"\nbackoff = \"100ms\"\n",
    );
    let checks = format!(
        "for m in /proc /sys /dev /run; do grep -q \" $m \" /proc/mounts && echo MARK-mounted-$m || echo MARK-NOT-mounted-$m; done; \
         grep -q ' /dev devtmpfs ' /proc/mounts && echo MARK-devtmpfs; \
         [ -c /dev/null ] && echo MARK-dev-null; \
         echo MARK-pid1-is-$(cat /proc/1/comm); \
         echo MARK-hostname-$(hostname); \
         i=0; while [ \"$(cat /run/flaky-runs 2>/dev/null)\" != 2 ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; \
         echo MARK-checks-done; {poweroff}"
    );
    rootfs.service("checks", &oneshot(&checks, "requires = [\"second\"]\n"));

    let t0 = Instant::now();
    let b = boot(&kernel, &rootfs, "", Duration::from_secs(120));
    let wall = t0.elapsed();
    let console = &b.console;
    eprintln!("MEASURE qemu boot-to-poweroff (wall, qemu start to exit): {} ms", wall.as_millis());
    if let Some(line) = console.lines().find(|l| l.contains("reboot: Power down")) {
        eprintln!("MEASURE guest clock at power-off: {}", line.trim());
    }

    let pos = |needle: &str| {
        console.find(needle).unwrap_or_else(|| panic!("{needle:?} not on the console:\n{console}"))
    };
    for m in ["/proc", "/sys", "/dev", "/run"] {
        pos(&format!("MARK-mounted-{m}"));
    }
    pos("MARK-devtmpfs");
    pos("MARK-dev-null");
    pos("MARK-pid1-is-init");
    pos("MARK-hostname-ankh-e2e");
    assert!(pos("MARK-first-done") < pos("MARK-second-start"), "second requires first:\n{console}");
    assert!(pos("MARK-flaky-run-1") < pos("MARK-flaky-run-2"), "flaky is restarted:\n{console}");
    assert!(
        pos("MARK-checks-done") < pos("MARK-flaky-stopping"),
        "services are stopped at power-off:\n{console}"
    );
    assert!(!console.contains("Kernel panic"), "init must never exit:\n{console}");
    assert!(b.powered_off(), "no clean power-off (code {:?}):\n{console}", b.code);
}
